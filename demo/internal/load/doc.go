// Package load drives traffic at a gateway the way users do: requests
// arrive at a fixed rate whether or not earlier ones have been answered
// (open loop), so a gateway that slows down piles up work, as in the
// incident, instead of being politely waited for.
package load
