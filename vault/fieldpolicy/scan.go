package fieldpolicy

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// walker parses one document at a time (strict RFC 8259 JSON, see the package
// documentation) and, in the same pass, matches its values against the policy's trie,
// collecting the selected strings (with the byte span of their JSON text) and FieldErrors in
// document order.
type walker struct {
	c      *Compiled
	budget int // values the batch may still select

	doc   int
	s     string // the document
	pos   int
	depth int

	states []*node // active trie nodes; each value uses a window [lo, hi) of it
	path   []seg   // the concrete path of the current value
	keys   []string

	fields []Field
	spans  []span // the JSON text of fields[i] is s[spans[i].start:spans[i].end]
	errs   []FieldError
}

type seg struct {
	name  string
	index int // -1 for a member
}

type span struct{ start, end int }

// walk parses document d and appends what the policy selects in it.
func (w *walker) walk(d int, doc []byte) error {
	w.doc, w.s, w.pos, w.depth = d, string(doc), 0, 0
	w.states = append(w.states[:0], w.c.root)
	w.path, w.keys = w.path[:0], w.keys[:0]
	w.skipWS()
	if w.pos == len(w.s) {
		return w.fail("the document is empty")
	}
	if err := w.value(0, 1); err != nil {
		return err
	}
	w.skipWS()
	if w.pos != len(w.s) {
		return w.fail("unexpected data after the JSON value")
	}
	return nil
}

func (w *walker) fail(problem string) error {
	return &DocError{Doc: w.doc, Offset: w.pos, Problem: problem}
}

func (w *walker) failAt(off int, problem string) error {
	return &DocError{Doc: w.doc, Offset: off, Problem: problem}
}

func (w *walker) skipWS() {
	for w.pos < len(w.s) {
		switch w.s[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) concretePath() string {
	b := []byte{'$'}
	for _, sg := range w.path {
		if sg.index < 0 {
			b = appendMember(b, sg.name)
		} else {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(sg.index), 10)
			b = append(b, ']')
		}
	}
	return string(b)
}

func (w *walker) spend() error {
	if w.budget--; w.budget < 0 {
		return fmt.Errorf("record: %w: the batch selects more than %d values (at doc %d)", ErrLimit, w.c.maxFields, w.doc)
	}
	return nil
}

func (w *walker) fieldError(rule int, got, want string) error {
	if err := w.spend(); err != nil {
		return err
	}
	r := w.c.rules[rule]
	w.errs = append(w.errs, FieldError{Doc: w.doc, Path: w.concretePath(), Rule: r.Path, Template: r.Template, Got: got, Want: want})
	return nil
}

// value parses the value at w.pos (after whitespace), which the trie nodes
// w.states[lo:hi] reach.
func (w *walker) value(lo, hi int) error {
	if w.pos == len(w.s) {
		return w.fail("unexpected end of the document")
	}
	// The first rule that selects this value, and the first that needs it to be an object
	// or an array to go on.
	sel, obj, arr := -1, -1, -1
	for _, n := range w.states[lo:hi] {
		sel, obj, arr = minRule(sel, n.rule), minRule(obj, n.objRule), minRule(arr, n.arrRule)
	}
	got := ""
	switch c := w.s[w.pos]; {
	case c == '{':
		got = "object"
		obj = -1
	case c == '[':
		got = "array"
		arr = -1
	case c == '"':
		start := w.pos
		v, err := w.str()
		if err != nil {
			return err
		}
		if sel >= 0 {
			if err := w.spend(); err != nil {
				return err
			}
			r := w.c.rules[sel]
			w.fields = append(w.fields, Field{Doc: w.doc, Path: w.concretePath(), Template: r.Template, Value: v})
			w.spans = append(w.spans, span{start, w.pos})
			return nil
		}
		got = "string"
	case c == 'n':
		return w.literal("null")
	case c == 't':
		got = "boolean"
		if err := w.literal("true"); err != nil {
			return err
		}
	case c == 'f':
		got = "boolean"
		if err := w.literal("false"); err != nil {
			return err
		}
	case c == '-' || isDigit(c):
		got = "number"
		if err := w.number(); err != nil {
			return err
		}
	default:
		return w.fail("unexpected character; expected a JSON value")
	}
	// got is not a selected string and not null: report it once, as a selected value of
	// the wrong type or else as a value of the wrong shape on a rule's way.
	switch {
	case sel >= 0:
		err := w.fieldError(sel, got, "string")
		if err != nil {
			return err
		}
	case obj >= 0 && (arr < 0 || obj < arr):
		if err := w.fieldError(obj, got, "object"); err != nil {
			return err
		}
	case arr >= 0:
		if err := w.fieldError(arr, got, "array"); err != nil {
			return err
		}
	}
	switch got {
	case "object":
		return w.object(lo, hi)
	case "array":
		return w.array(lo, hi)
	}
	return nil
}

func minRule(a, b int) int {
	if a < 0 || b >= 0 && b < a {
		return b
	}
	return a
}

// enter steps into the object or array that opens at w.pos and reports whether it is
// empty, in which case it has also stepped past its closer and out again.
func (w *walker) enter(closer byte) (empty bool, err error) {
	if w.depth++; w.depth > MaxDepth {
		return false, &DocError{Doc: w.doc, Offset: w.pos, Problem: fmt.Sprintf("nested deeper than %d levels", MaxDepth), limit: true}
	}
	w.pos++
	w.skipWS()
	if w.pos < len(w.s) && w.s[w.pos] == closer {
		w.pos++
		w.depth--
		return true, nil
	}
	return false, nil
}

// element walks the value of one object member (sg.index < 0) or array element, which the
// trie nodes w.states[lo:hi] contain: it pushes the nodes that reach it and its path
// segment, and pops them again.
func (w *walker) element(lo, hi int, sg seg) error {
	clo := len(w.states)
	for i := lo; i < hi; i++ {
		n := w.states[i]
		var m, anyM *node
		if sg.index < 0 {
			m, anyM = n.members[sg.name], n.anyMember
		} else {
			m, anyM = n.indexes[sg.index], n.anyIndex
		}
		if m != nil {
			w.states = append(w.states, m)
		}
		if anyM != nil {
			w.states = append(w.states, anyM)
		}
	}
	w.path = append(w.path, sg)
	if err := w.value(clo, len(w.states)); err != nil {
		return err
	}
	w.path = w.path[:len(w.path)-1]
	w.states = w.states[:clo]
	return nil
}

// next steps past the ',' after an element and reports true, or past the container's
// closer (and out of it) and reports false. container and item name them in errors.
func (w *walker) next(closer byte, container, item string) (more bool, err error) {
	w.skipWS()
	if w.pos == len(w.s) {
		return false, w.fail("unexpected end of the document in an " + container)
	}
	switch w.s[w.pos] {
	case ',':
		w.pos++
		w.skipWS()
		return true, nil
	case closer:
		w.pos++
		w.depth--
		return false, nil
	}
	return false, w.fail("expected ',' or '" + string(closer) + "' after an " + item)
}

func (w *walker) object(lo, hi int) error {
	if empty, err := w.enter('}'); empty || err != nil {
		return err
	}
	klo := len(w.keys)
	var seen map[string]struct{} // for objects with many members
	for {
		if w.pos == len(w.s) || w.s[w.pos] != '"' {
			return w.fail("expected a member name")
		}
		keyAt := w.pos
		key, err := w.str()
		if err != nil {
			return err
		}
		dup := false
		if seen != nil {
			_, dup = seen[key]
			seen[key] = struct{}{}
		} else {
			for _, k := range w.keys[klo:] {
				if k == key {
					dup = true
					break
				}
			}
			w.keys = append(w.keys, key)
			if len(w.keys)-klo > 16 {
				seen = make(map[string]struct{}, 32)
				for _, k := range w.keys[klo:] {
					seen[k] = struct{}{}
				}
			}
		}
		if dup {
			w.path = append(w.path, seg{name: key, index: -1})
			return w.failAt(keyAt, "duplicate member name at "+w.concretePath())
		}
		w.skipWS()
		if w.pos == len(w.s) || w.s[w.pos] != ':' {
			return w.fail("expected ':' after a member name")
		}
		w.pos++
		w.skipWS()

		if err := w.element(lo, hi, seg{name: key, index: -1}); err != nil {
			return err
		}
		more, err := w.next('}', "object", "object member")
		if !more {
			w.keys = w.keys[:klo]
			return err
		}
	}
}

func (w *walker) array(lo, hi int) error {
	if empty, err := w.enter(']'); empty || err != nil {
		return err
	}
	for i := 0; ; i++ {
		if err := w.element(lo, hi, seg{index: i}); err != nil {
			return err
		}
		if more, err := w.next(']', "array", "array element"); !more {
			return err
		}
	}
}

func (w *walker) literal(lit string) error {
	if !strings.HasPrefix(w.s[w.pos:], lit) {
		return w.fail("invalid literal; expected true, false or null")
	}
	w.pos += len(lit)
	return nil
}

// number checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at w.pos.
func (w *walker) number() error {
	s := w.s
	i := w.pos
	digits := func() bool {
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		return i > j
	}
	if s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return w.failAt(i, "invalid number")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return w.failAt(i, "invalid number: expected a digit after '.'")
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return w.failAt(i, "invalid number: expected a digit in the exponent")
		}
	}
	w.pos = i
	return nil
}

// str parses the string at w.pos (a '"') and returns its value. It rejects control
// characters, invalid escapes, invalid UTF-8 and unpaired surrogate escapes.
func (w *walker) str() (string, error) {
	s := w.s
	start := w.pos
	i := start + 1
	plain := true
	for {
		if i >= len(s) {
			return "", w.failAt(start, "unterminated string")
		}
		c := s[i]
		switch {
		case c == '"':
			w.pos = i + 1
			if plain {
				return s[start+1 : i], nil
			}
			return w.unescape(start+1, i)
		case c == '\\':
			plain = false
			if i+1 >= len(s) {
				return "", w.failAt(start, "unterminated string")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(s, i+2); !ok {
					return "", w.failAt(i, `invalid \u escape in a string`)
				}
				i += 6
			default:
				return "", w.failAt(i, "invalid escape in a string")
			}
		case c < 0x20:
			return "", w.failAt(i, "control character in a string; escape it")
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return "", w.failAt(i, "invalid UTF-8 in a string")
			}
			i += size
		}
	}
}

// unescape decodes s[from:to], which str has checked but for surrogate pairing.
func (w *walker) unescape(from, to int) (string, error) {
	s := w.s
	var b strings.Builder
	b.Grow(to - from)
	for i := from; i < to; {
		c := s[i]
		if c != '\\' {
			j := i + 1
			for j < to && s[j] != '\\' {
				j++
			}
			b.WriteString(s[i:j])
			i = j
			continue
		}
		switch e := s[i+1]; e {
		case 'u':
			r, _ := hex4(s, i+2)
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if r < 0xdc00 && i+12 <= to && s[i+6] == '\\' && s[i+7] == 'u' {
					r2, _ = hex4(s, i+8)
					ok = true
				}
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return "", w.failAt(i, `unpaired surrogate in a \u escape`)
				}
				i += 6
			}
			b.WriteRune(r)
			i += 6
		case 'b':
			b.WriteByte('\b')
			i += 2
		case 'f':
			b.WriteByte('\f')
			i += 2
		case 'n':
			b.WriteByte('\n')
			i += 2
		case 'r':
			b.WriteByte('\r')
			i += 2
		case 't':
			b.WriteByte('\t')
			i += 2
		default: // " \ /
			b.WriteByte(e)
			i += 2
		}
	}
	return b.String(), nil
}

// appendString appends s as a JSON string: " and \ and control characters escaped (as
// \n, \r, \t, \b, \f or \u00XX), U+2028 and U+2029 as \u2028 and \u2029 (for JavaScript),
// everything else (including <, >, &) as is. s must be valid UTF-8.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			case '\b':
				b = append(b, `\b`...)
			case '\f':
				b = append(b, `\f`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
