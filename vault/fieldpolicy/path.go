package fieldpolicy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

type stepKind uint8

const (
	stepMember    stepKind = iota // .name, ['name']
	stepIndex                     // [n]
	stepAnyMember                 // .*
	stepAnyIndex                  // [*]
)

type step struct {
	kind  stepKind
	name  string // stepMember
	index int    // stepIndex
}

// parsePath parses the supported JSONPath subset (see the package documentation).
func parsePath(p string) ([]step, error) {
	fail := func(off int, format string, args ...any) error {
		return &PathError{Path: p, Pos: utf8.RuneCountInString(p[:off]) + 1, Problem: fmt.Sprintf(format, args...)}
	}
	switch {
	case p == "":
		return nil, &PathError{Path: p, Problem: "empty path; a path starts with $"}
	case len(p) > MaxPathLen:
		return nil, &PathError{Path: p[:32] + "...", Problem: fmt.Sprintf("longer than %d bytes", MaxPathLen)}
	case !utf8.ValidString(p):
		return nil, &PathError{Path: p, Problem: "not valid UTF-8"}
	case p[0] != '$':
		return nil, fail(0, "a path must start with $")
	}
	var steps []step
	i := 1
	for i < len(p) {
		if len(steps) == MaxDepth {
			return nil, fail(i, "more than %d steps", MaxDepth)
		}
		switch p[i] {
		case '.':
			i++
			if i == len(p) {
				return nil, fail(i-1, "a member name or * must follow .")
			}
			switch c := p[i]; {
			case c == '.':
				return nil, fail(i-1, `recursive descent ".." is not supported`)
			case c == '*':
				steps = append(steps, step{kind: stepAnyMember})
				i++
			case isDigit(c) || c == '-':
				return nil, fail(i, "a member name after . must not start with %q (write [n] for an array index, ['...'] for such a name)", c)
			default:
				j := i
				for j < len(p) && isNameByte(p[j]) {
					j++
				}
				if j == i {
					r, _ := utf8.DecodeRuneInString(p[i:])
					return nil, fail(i, "unexpected %q; a member name or * must follow .", r)
				}
				steps = append(steps, step{kind: stepMember, name: p[i:j]})
				i = j
			}
		case '[':
			st, j, err := parseBracket(p, i, fail)
			if err != nil {
				return nil, err
			}
			steps = append(steps, st)
			i = j
		default:
			r, _ := utf8.DecodeRuneInString(p[i:])
			return nil, fail(i, "unexpected %q; expected . or [", r)
		}
	}
	return steps, nil
}

// parseBracket parses the bracket step starting at p[i] == '[' and returns it with the
// offset just past its ']'.
func parseBracket(p string, i int, fail func(int, string, ...any) error) (step, int, error) {
	open := i
	i++
	if i == len(p) {
		return step{}, 0, fail(open, "unterminated [")
	}
	var st step
	switch c := p[i]; {
	case c == '*':
		st = step{kind: stepAnyIndex}
		i++
	case c == '\'' || c == '"':
		name, j, err := parseQuoted(p, i, fail)
		if err != nil {
			return step{}, 0, err
		}
		if name == "" {
			return step{}, 0, fail(i, "empty member name")
		}
		st = step{kind: stepMember, name: name}
		i = j
	case isDigit(c):
		j := i
		for j < len(p) && isDigit(p[j]) {
			j++
		}
		if c == '0' && j > i+1 {
			return step{}, 0, fail(i, "an index must not have leading zeros")
		}
		n, err := strconv.ParseInt(p[i:j], 10, 64)
		if err != nil || n > math.MaxInt32 {
			return step{}, 0, fail(i, "index too large (at most %d)", math.MaxInt32)
		}
		st = step{kind: stepIndex, index: int(n)}
		i = j
	case c == '-':
		if i+1 < len(p) && isDigit(p[i+1]) {
			return step{}, 0, fail(i, "negative indexes are not supported")
		}
		return step{}, 0, fail(i, "unexpected '-' after [")
	case c == '?':
		return step{}, 0, fail(open, "filter expressions [?...] are not supported")
	case c == '(':
		return step{}, 0, fail(open, "script expressions [(...)] are not supported")
	case c == ':':
		return step{}, 0, fail(i, "array slices are not supported")
	case c == ']':
		return step{}, 0, fail(open, "empty brackets []")
	default:
		r, _ := utf8.DecodeRuneInString(p[i:])
		return step{}, 0, fail(i, "unexpected %q after [; expected a quoted name, an index or *", r)
	}
	if i == len(p) {
		return step{}, 0, fail(open, "unterminated [; expected ]")
	}
	switch p[i] {
	case ']':
		return st, i + 1, nil
	case ',':
		return step{}, 0, fail(i, "unions [a,b] are not supported; write one rule per path")
	case ':':
		return step{}, 0, fail(i, "array slices are not supported")
	}
	r, _ := utf8.DecodeRuneInString(p[i:])
	return step{}, 0, fail(i, "unexpected %q; expected ]", r)
}

// parseQuoted parses the quoted name starting at p[i] (' or ") and returns it with the
// offset just past the closing quote. Escapes: \\ \/ \' \" \b \f \n \r \t \uXXXX (a
// surrogate pair for characters beyond the BMP).
func parseQuoted(p string, i int, fail func(int, string, ...any) error) (string, int, error) {
	q := p[i]
	start := i
	i++
	var b strings.Builder
	for {
		if i >= len(p) {
			return "", 0, fail(start, "unterminated quoted name")
		}
		c := p[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c < 0x20:
			return "", 0, fail(i, "control character in quoted name; escape it")
		case c != '\\':
			b.WriteByte(c)
			i++
			continue
		}
		esc := i
		i++
		if i >= len(p) {
			return "", 0, fail(start, "unterminated quoted name")
		}
		switch e := p[i]; e {
		case '\\', '/', '\'', '"':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := hex4(p, i+1)
			if !ok {
				return "", 0, fail(esc, `invalid \u escape; expected 4 hex digits`)
			}
			i += 4
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if r < 0xdc00 && i+6 < len(p) && p[i+1] == '\\' && p[i+2] == 'u' {
					r2, ok = hex4(p, i+3)
				}
				if r = utf16.DecodeRune(r, r2); !ok || r == utf8.RuneError {
					return "", 0, fail(esc, `invalid \u escape: unpaired surrogate`)
				}
				i += 6
			}
			b.WriteRune(r)
		default:
			return "", 0, fail(esc, "invalid escape \\%c", rune(e))
		}
		i++
	}
}

func hex4(s string, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case isDigit(c):
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isNameByte reports whether c may appear in a dot-notation member name: ASCII letters,
// digits, '_' and '-', and any non-ASCII character (the path is valid UTF-8).
func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || isDigit(c) || c == '_' || c == '-' || c >= utf8.RuneSelf
}

// isPlainName reports whether name is written in dot notation in concrete paths: ASCII
// only, starting with a letter or '_'. Everything else is bracketed.
func isPlainName(name string) bool {
	if name == "" || isDigit(name[0]) || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= utf8.RuneSelf || !isNameByte(c) {
			return false
		}
	}
	return true
}

// appendMember appends the step for member name to a concrete path: .name or ['name'] with
// ' and \ and control characters escaped, so that the result parses back to the same name
// (except for the empty name, which documents may use but rules may not).
func appendMember(b []byte, name string) []byte {
	if isPlainName(name) {
		return append(append(b, '.'), name...)
	}
	b = append(b, "['"...)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '\'' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, `\u00`...)
			b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, "']"...)
}

const hexDigits = "0123456789abcdef"
