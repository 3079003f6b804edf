package cluster

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// diagnoseSyntax says in words what is wrong with a file yaml.v3 refused,
// at the line that is wrong. yaml.v3 often names the line before the
// offending one (or, for an unclosed bracket, a line far from it), and its
// messages name the parser's state ("did not find expected key"), not the
// mistake. yamlLine is the line yaml.v3 named (0: none). ok is false when
// nothing here explains the failure; the caller then reports yaml.v3's own
// message.
//
// The scan knows just enough YAML for the mistakes people make in a spec:
// control characters, tabs, unclosed quotes and brackets, and block
// indentation. Each of these is an error wherever it is, except a line
// indented deeper than the entry above it: that may continue a plain scalar,
// which YAML allows, so it is reported only if it is on the line yaml.v3
// named or the next.
func diagnoseSyntax(data []byte, yamlLine int) (pos Pos, msg string, ok bool) {
	if p, m, found := badCharacter(data); found {
		return p, m, true
	}
	sc := &syntaxScan{blockScalar: -1}
	for i, line := range bytes.Split(data, []byte("\n")) {
		sc.line(i+1, strings.TrimSuffix(string(line), "\r"))
	}
	sc.eof()
	var best *finding
	for i := range sc.found {
		f := &sc.found[i]
		if f.indent && yamlLine > 0 && f.pos.Line != yamlLine && f.pos.Line != yamlLine+1 {
			continue
		}
		if best == nil || before(f.pos, best.pos) {
			best = f
		}
	}
	if best == nil {
		return Pos{}, "", false
	}
	return best.pos, best.msg, true
}

// before reports whether a comes before b in the file.
func before(a, b Pos) bool {
	return a.Line < b.Line || (a.Line == b.Line && a.Col < b.Col)
}

// badCharacter finds the first byte that is not UTF-8 or the first
// character YAML does not allow in a file (yaml.v3 says only "control
// characters are not allowed", at no line).
func badCharacter(data []byte) (Pos, string, bool) {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return Pos{line, col}, "this line is not UTF-8 text: save the file as UTF-8", true
		case r == '\n':
			line, col = line+1, 0
		case r == '\t' || r == '\r' || r == 0x85 || (r == 0xfeff && i == 0):
		case r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0xfffe || r == 0xffff || r == 0xfeff:
			return Pos{line, col}, fmt.Sprintf("character %q is not allowed in a YAML file: remove it", r), true
		}
		i += size
		col++
	}
	return Pos{}, "", false
}

type finding struct {
	pos Pos
	msg string
	// indent marks a line indented deeper than the entry above it, which
	// may be a plain scalar's continuation (see diagnoseSyntax).
	indent bool
}

// opener is an open bracket or quote.
type opener struct {
	ch  byte
	pos Pos
}

// syntaxScan reads a file line by line, keeping the state that spans lines:
// open brackets, an open quoted string, a block scalar, and the columns of
// the block collections the current line may belong to.
type syntaxScan struct {
	flow        []opener
	quote       *opener
	blockScalar int // indentation of the line that began a block scalar; -1: none
	levels      []int
	// open is set when the last entry ended with ":" or "-" and nothing
	// after it: the next line may be deeper than openCol.
	open    bool
	openCol int
	found   []finding
}

func (sc *syntaxScan) add(line, col int, indent bool, format string, args ...any) {
	sc.found = append(sc.found, finding{Pos{line, col}, fmt.Sprintf(format, args...), indent})
}

// entry is what one line starting in block context says about the block
// structure.
type entry struct {
	levels []int // columns of the dashes and the key the line starts
	dash   bool  // the line starts with a sequence dash
	keyed  bool  // a key was found
	// open: the line ends with a key's ":" or a dash and no value, so the
	// next line may be deeper than openCol.
	open    bool
	openCol int
}

func (sc *syntaxScan) line(n int, s string) {
	col := func(i int) int { return utf8.RuneCountInString(s[:i]) + 1 }
	if sc.blockScalar >= 0 {
		ind := len(s) - len(strings.TrimLeft(s, " "))
		if strings.TrimSpace(s) == "" || ind > sc.blockScalar {
			return
		}
		sc.blockScalar = -1
	}
	i := 0
	var e *entry
	if sc.quote == nil && len(sc.flow) == 0 {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		rest := s[i:]
		if rest == "" || rest[0] == '#' || rest[0] == '%' {
			return
		}
		if t := strings.IndexByte(s[:i], '\t'); t >= 0 {
			sc.add(n, col(t), false, "a tab indents this line: YAML indents with spaces")
			return
		}
		if i == 0 && (strings.HasPrefix(rest, "---") || strings.HasPrefix(rest, "...")) && (len(rest) == 3 || rest[3] == ' ') {
			sc.levels, sc.open = nil, false
			return
		}
		e = &entry{}
	}
	indent := i
	tokenStart, prevSpace, tokCol := true, true, i
	// runOn is a quoted string that ran on from an earlier line: if what
	// follows its end cannot follow a string, it was the quote that opened
	// it that was never closed, and its end is another string's start.
	var runOn *opener
	for ; i < len(s); i++ {
		ch := s[i]
		if q := sc.quote; q != nil {
			closed := false
			switch {
			case q.ch == '"' && ch == '\\':
				i++
			case q.ch == '\'' && ch == '\'' && i+1 < len(s) && s[i+1] == '\'':
				i++
			case ch == q.ch:
				closed = true
			}
			if closed {
				sc.quote, tokenStart = nil, false
				if q.pos.Line != n {
					runOn = q
				}
			}
			continue
		}
		if ch == ' ' || ch == '\t' {
			prevSpace = true
			continue
		}
		space := prevSpace
		prevSpace = false
		inFlow := len(sc.flow) > 0
		block := e != nil && !inFlow
		next := byte(' ')
		if i+1 < len(s) {
			next = s[i+1]
		}
		if q := runOn; q != nil {
			runOn = nil
			if !(ch == ':' || (ch == '#' && space) || (inFlow && strings.IndexByte(",]}", ch) >= 0)) {
				sc.add(q.pos.Line, q.pos.Col, false, "this %c is never closed: end the string with %c", q.ch, q.ch)
			}
		}
		switch {
		case ch == '#' && space:
			i = len(s)
		case (ch == '"' || ch == '\'') && tokenStart:
			sc.quote, tokCol, tokenStart = &opener{ch, Pos{n, col(i)}}, i, false
		case (ch == '[' || ch == '{') && (tokenStart || inFlow):
			sc.flow = append(sc.flow, opener{ch, Pos{n, col(i)}})
			tokCol, tokenStart = i, true
		case (ch == ']' || ch == '}') && inFlow:
			top := sc.flow[len(sc.flow)-1]
			if want := closer(top.ch); ch != want {
				sc.add(top.pos.Line, top.pos.Col, false, "this %c is never closed: the %c at line %d, column %d comes first; close the %c with %c before it", top.ch, ch, n, col(i), top.ch, want)
			}
			sc.flow = sc.flow[:len(sc.flow)-1]
			tokenStart = false
		case (ch == ']' || ch == '}') && tokenStart:
			sc.add(n, col(i), false, "this %c closes nothing: remove it, or open the %s with %c", ch, collection(opening(ch)), opening(ch))
			tokenStart = false
		case ch == ',' && inFlow:
			tokenStart = true
		case ch == ':' && (next == ' ' || next == '\t' || (inFlow && strings.IndexByte(",]}", next) >= 0)):
			if block && !e.keyed {
				e.keyed = true
				e.levels = append(e.levels, tokCol)
				if onlyProperties(s[i+1:]) {
					e.open, e.openCol = true, tokCol
				}
			}
			tokenStart = true
		case ch == '-' && tokenStart && block && !e.keyed && (next == ' ' || next == '\t'):
			e.dash = e.dash || i == indent
			e.levels = append(e.levels, i)
			if onlyProperties(s[i+1:]) {
				e.open, e.openCol = true, i
			}
		case (ch == '|' || ch == '>') && tokenStart && !inFlow:
			sc.blockScalar = indent
			i = len(s)
		case (ch == '&' || ch == '!') && tokenStart:
			for i+1 < len(s) && s[i+1] != ' ' && s[i+1] != '\t' {
				i++
			}
		default:
			if tokenStart {
				tokCol = i
			}
			tokenStart = false
		}
	}
	if e != nil {
		sc.entry(n, indent, e)
	}
}

// onlyProperties reports whether the rest of a line after a key's ":" or a
// dash holds no value: nothing but anchors, tags and a comment.
func onlyProperties(rest string) bool {
	for _, f := range strings.Fields(rest) {
		if f[0] == '#' {
			return true
		}
		if f[0] != '&' && f[0] != '!' {
			return false
		}
	}
	return true
}

func closer(open byte) byte {
	if open == '[' {
		return ']'
	}
	return '}'
}

func opening(close byte) byte {
	if close == ']' {
		return '['
	}
	return '{'
}

func collection(open byte) string {
	if open == '[' {
		return "list"
	}
	return "mapping"
}

// entry checks the indentation of a line that starts in block context
// against the block collections above it, and makes it one of them.
func (sc *syntaxScan) entry(n, c int, e *entry) {
	open, openCol := sc.open, sc.openCol
	sc.open = false
	top := func() int { return sc.levels[len(sc.levels)-1] }
	switch {
	case open && c > openCol:
		// The first entry of a collection nested under the line above.
	case open && c == openCol && e.dash:
		// A key's list may start at the key's own column.
	default:
		above := append([]int(nil), sc.levels...)
		popped := false
		for len(sc.levels) > 0 && top() > c {
			sc.levels = sc.levels[:len(sc.levels)-1]
			popped = true
		}
		if len(sc.levels) > 0 && top() < c {
			if popped {
				sc.add(n, c+1, false, "this line is indented %s, but the entries above it are at %s: indent it as far as the entries it belongs with", spaces(c), spaceList(above))
			} else {
				sc.add(n, c+1, true, "this line is indented %s, deeper than the entry above (%d), which already has a value: indent it %s, or nest it under a key that ends with \":\"", spaces(c), top(), spaces(top()))
			}
			sc.levels = above
			return
		}
	}
	for len(sc.levels) > 0 && top() > c {
		sc.levels = sc.levels[:len(sc.levels)-1]
	}
	for _, l := range e.levels {
		if len(sc.levels) == 0 || l > top() {
			sc.levels = append(sc.levels, l)
		}
	}
	sc.open, sc.openCol = e.open, e.openCol
}

func spaces(n int) string {
	if n == 1 {
		return "1 space"
	}
	return fmt.Sprintf("%d spaces", n)
}

// spaceList writes indentations as "0, 2 or 4".
func spaceList(levels []int) string {
	var s []string
	for _, l := range levels {
		s = append(s, fmt.Sprint(l))
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// eof reports what is still open at the end of the file.
func (sc *syntaxScan) eof() {
	if q := sc.quote; q != nil {
		sc.add(q.pos.Line, q.pos.Col, false, "this %c is never closed: end the string with %c", q.ch, q.ch)
	}
	for _, o := range sc.flow {
		sc.add(o.pos.Line, o.pos.Col, false, "this %c is never closed: end the %s with %c", o.ch, collection(o.ch), closer(o.ch))
	}
}
