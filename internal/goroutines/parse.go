package goroutines

import (
	"bytes"
	"strconv"
	"strings"
)

// A Group is one record of the profile: Count goroutines with the same
// stack and the same labels.
type Group struct {
	Count int
	// Labels are the goroutines' runtime/pprof labels; nil when they have
	// none.
	Labels map[string]string
	// Frames is the stack, innermost call first. The runtime hides the
	// runtime frames a blocked goroutine sits in, and keeps at most the
	// innermost 128 program counters of a deeper stack, so the goroutine's
	// own function is missing from the Frames of a very deep stack.
	Frames []Frame
}

// A Frame is one call in a goroutine's stack.
type Frame struct {
	// Function is the package-path-qualified name, as
	// "net/http.(*persistConn).readLoop" or "main.main.func1".
	Function string
	File     string
	Line     int
}

var (
	labelsPrefix = []byte("# labels: ")
	framePrefix  = []byte("#\t")
	headerSep    = []byte(" @ ")
)

// Parse parses text, a profile as pprof.Lookup("goroutine").WriteTo(w, 1)
// writes it:
//
//	goroutine profile: total 4
//	2 @ 0x47d92e 0x480b25 0x4dbf3d 0x483e41
//	# labels: {"http.route":"/x", "telltale.request":"42"}
//	#	0x480b24	time.Sleep+0x164	/usr/local/go/src/runtime/time.go:363
//	#	0x4dbf3c	main.main.func1+0x1c	/tmp/main.go:13
//
// keep, when not nil, is asked about each group's labels (nil for a group
// without) before its frames are read: a group it refuses costs no
// allocation beyond its labels, which is what makes a check cheap in a
// process where most goroutines are none of the caller's business.
//
// Parse does not fail: it reads what it can. A group whose count is not a
// number is skipped whole; a frame line without a function or a file:line
// is skipped; a labels line keeps the pairs it holds whole; any other line
// is ignored. A profile cut short loses only what is missing.
func Parse(text []byte, keep func(labels map[string]string) bool) []Group {
	p := parser{keep: keep}
	for line := range bytes.Lines(text) {
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			p.endGroup()
		case bytes.HasPrefix(line, labelsPrefix):
			if p.cur != nil && !p.decided {
				p.decide(parseLabels(line[len(labelsPrefix):]))
			}
		case bytes.HasPrefix(line, framePrefix):
			if p.cur != nil && !p.decided {
				p.decide(nil)
			}
			if p.cur != nil {
				if f, ok := p.parseFrame(line[len(framePrefix):]); ok {
					p.cur.Frames = append(p.cur.Frames, f)
				}
			}
		default:
			count, _, isHeader := bytes.Cut(line, headerSep)
			if !isHeader {
				continue // "goroutine profile: total N", or no line of the format
			}
			p.endGroup()
			if n, err := strconv.Atoi(string(count)); err == nil {
				p.groups = append(p.groups, Group{Count: n})
				p.cur, p.decided = &p.groups[len(p.groups)-1], false
			}
		}
	}
	p.endGroup()
	return p.groups
}

type parser struct {
	keep    func(map[string]string) bool
	groups  []Group
	cur     *Group // the last of groups, while its lines are read
	decided bool   // keep has been asked about cur
	names   map[string]string
}

// decide asks keep about the current group, and drops it if refused.
func (p *parser) decide(labels map[string]string) {
	p.decided = true
	if p.keep != nil && !p.keep(labels) {
		p.groups = p.groups[:len(p.groups)-1]
		p.cur = nil
		return
	}
	p.cur.Labels = labels
}

// endGroup ends the current group; one with neither labels nor frames is
// decided on here.
func (p *parser) endGroup() {
	if p.cur != nil && !p.decided {
		p.decide(nil)
	}
	p.cur = nil
}

// parseLabels parses {"k":"v", "k2":"v2"}, Go-quoted as runtime/pprof
// writes them. A missing closing brace is tolerated: the line was cut, and
// the pairs before the cut are whole.
func parseLabels(b []byte) map[string]string {
	s, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("{"))
	if !ok {
		return nil
	}
	text := string(bytes.TrimSuffix(s, []byte("}")))
	labels := make(map[string]string)
	for text != "" {
		kq, err := strconv.QuotedPrefix(text)
		if err != nil {
			break
		}
		rest, ok := strings.CutPrefix(text[len(kq):], ":")
		if !ok {
			break
		}
		vq, err := strconv.QuotedPrefix(rest)
		if err != nil {
			break
		}
		k, _ := strconv.Unquote(kq)
		v, _ := strconv.Unquote(vq)
		labels[k] = v
		text, _ = strings.CutPrefix(rest[len(vq):], ", ")
	}
	return labels
}

// parseFrame parses "0x4dbf3c\tmain.main.func1+0x1c\t\t/tmp/main.go:13".
func (p *parser) parseFrame(b []byte) (Frame, bool) {
	_, rest, ok := bytes.Cut(b, []byte("\t")) // the program counter
	if !ok {
		return Frame{}, false
	}
	fn, loc, ok := bytes.Cut(rest, []byte("\t"))
	if !ok {
		return Frame{}, false
	}
	if i := bytes.LastIndex(fn, []byte("+0x")); i >= 0 {
		fn = fn[:i]
	}
	loc = bytes.TrimLeft(loc, "\t")
	i := bytes.LastIndexByte(loc, ':')
	if len(fn) == 0 || i <= 0 {
		return Frame{}, false
	}
	line, err := strconv.Atoi(string(loc[i+1:]))
	if err != nil {
		return Frame{}, false
	}
	return Frame{Function: p.intern(fn), File: p.intern(loc[:i]), Line: line}, true
}

// intern returns b as a string, the same string for the same bytes: the
// groups of one profile share most of their frames (a server's goroutines
// all run through the same handler chain), and each name is then
// allocated once per profile instead of once per frame.
func (p *parser) intern(b []byte) string {
	if s, ok := p.names[string(b)]; ok {
		return s
	}
	if p.names == nil {
		p.names = make(map[string]string)
	}
	s := string(b)
	p.names[s] = s
	return s
}
