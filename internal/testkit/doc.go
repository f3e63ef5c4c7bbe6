// Package testkit holds the few helpers every test package of telltale
// needs — waiting for a condition, finding an attribute, a log sink safe
// for concurrent writers — so that each is written once. Only tests import
// it.
package testkit
