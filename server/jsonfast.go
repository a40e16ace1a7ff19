package server

import (
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// The requests and replies of the hottest routes, POST /v1/tokens:tokenize and :detokenize, are written by
// hand when every item succeeded (issue 15): protojson walks each message by reflection, which
// cost more than the vault's own work for a batch of detokenized values. The output is the
// JSON protojson writes for the same message (no unpopulated fields; strings escaped alike;
// TestFastJSONMatchesProtojson compares them), without its randomized whitespace, in one
// allocation. A reply with
// a per-item error, or with a string that is not valid UTF-8 (protojson refuses it), goes
// through protojson as before. Their request bodies are read by decodeFast when they use
// only the plain JSON clients send (string fields, no escapes); anything else goes to
// protojson, which also writes every decoding error.

// marshalFast encodes v when it is a reply the fast path covers; ok is false otherwise.
func marshalFast(v any) (out []byte, ok bool) {
	var n int
	var field string
	var str func(i int) string
	switch m := v.(type) {
	case *tvpb.TokenizeResponse:
		for _, r := range m.GetResults() {
			if r == nil || r.Error != nil || !utf8.ValidString(r.Token) || len(r.ProtoReflect().GetUnknown()) > 0 {
				return nil, false
			}
		}
		n, field, str = len(m.GetResults()), `{"token":`, func(i int) string { return m.Results[i].Token }
	case *tvpb.DetokenizeResponse:
		for _, r := range m.GetResults() {
			if r == nil || r.Error != nil || !utf8.ValidString(r.Value) || len(r.ProtoReflect().GetUnknown()) > 0 {
				return nil, false
			}
		}
		n, field, str = len(m.GetResults()), `{"value":`, func(i int) string { return m.Results[i].Value }
	default:
		return nil, false
	}
	if n == 0 {
		return []byte("{}"), true
	}
	// One allocation: the exact size first.
	size := len(`{"results":[]}`) + n - 1
	for i := range n {
		if s := str(i); s == "" {
			size += 2
		} else {
			size += len(field) + jsonStringLen(s) + 1
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"results":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if s := str(i); s == "" {
			b = append(b, "{}"...) // an empty string is unpopulated: protojson omits it
		} else {
			b = append(b, field...)
			b = appendJSONString(b, s)
			b = append(b, '}')
		}
	}
	return append(b, "]}"...), true
}

// jsonStringLen is the length of appendJSONString's encoding of s.
func jsonStringLen(s string) int {
	n := len(s) + 2
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t':
			n++
		case c < 0x20:
			n += 5
		}
	}
	return n
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string, escaped as protojson escapes:
// '"' and '\\' with a backslash, \b \f \n \r \t by name, other control characters as \u00XX,
// everything else as is (no HTML escaping).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeFast fills v, a fresh TokenizeRequest or DetokenizeRequest, from data when data uses
// only what this parser knows: one JSON object of the request's string fields and its items,
// an array of objects of the item's string fields, each field at most once, strings without
// escapes or control characters, valid UTF-8, nothing after the object but whitespace. It
// reports false for anything else (another message, escapes, null, numbers, ttl, unknown or
// repeated fields, malformed JSON), and protojson decodes it as before, with its errors.
// Whatever it accepts, protojson accepts and decodes to the same message
// (TestFastDecodeMatchesProtojson).
func decodeFast(data []byte, v any) bool {
	p := jsonParser{b: data}
	var ok bool
	// A batch names the same template and domain item after item: each distinct run is one
	// string, not one per item.
	var lastTemplate, lastDomain string
	switch m := v.(type) {
	case *tvpb.TokenizeRequest:
		ok = p.object(func(key string) bool {
			if key != "items" || m.Items != nil {
				return false
			}
			m.Items = []*tvpb.TokenizeItem{}
			slab := slab[tvpb.TokenizeItem]{body: len(data)}
			return p.array(func() bool {
				it := slab.next()
				m.Items = append(m.Items, it)
				return p.object(func(key string) bool {
					switch key {
					case "value":
						return p.stringField(&it.Value)
					case "template":
						return p.nameField(&it.Template, &lastTemplate)
					case "domain":
						return p.nameField(&it.Domain, &lastDomain)
					case "subject":
						return p.stringField(&it.Subject)
					}
					return false
				})
			})
		})
	case *tvpb.DetokenizeRequest:
		var purpose bool
		ok = p.object(func(key string) bool {
			switch key {
			case "purpose":
				if purpose {
					return false
				}
				purpose = true
				return p.stringField(&m.Purpose)
			case "items":
				if m.Items != nil {
					return false
				}
				m.Items = []*tvpb.DetokenizeItem{}
				slab := slab[tvpb.DetokenizeItem]{body: len(data)}
				return p.array(func() bool {
					it := slab.next()
					m.Items = append(m.Items, it)
					return p.object(func(key string) bool {
						switch key {
						case "token":
							return p.stringField(&it.Token)
						case "domain":
							return p.nameField(&it.Domain, &lastDomain)
						case "template":
							return p.nameField(&it.Template, &lastTemplate)
						}
						return false
					})
				})
			}
			return false
		})
	default:
		return false
	}
	p.space()
	if ok && p.i == len(p.b) {
		return true
	}
	proto.Reset(v.(proto.Message)) // what it read is dropped
	return false
}

// jsonParser reads the subset of JSON decodeFast accepts.
type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, valid UTF-8.
func (p *jsonParser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// stringField reads a string into *dst, once: a field seen before (a non-empty *dst or an
// empty string read before) is refused, as protojson refuses duplicate fields.
func (p *jsonParser) stringField(dst *string) bool {
	s, ok := p.str()
	if !ok || *dst != "" {
		return false
	}
	*dst = s
	return s != "" // an explicit "" is left to protojson (it cannot be told from unset here)
}

// nameField is stringField for a template or domain name: when it equals *last (the
// previous item's), *last is reused instead of a new string; *last becomes the value.
func (p *jsonParser) nameField(dst, last *string) bool {
	p.space()
	if *last != "" && p.i+len(*last)+2 <= len(p.b) && p.b[p.i] == '"' && p.b[p.i+len(*last)+1] == '"' &&
		string(p.b[p.i+1:p.i+1+len(*last)]) == *last {
		if *dst != "" {
			return false
		}
		p.i += len(*last) + 2
		*dst = *last
		return true
	}
	if !p.stringField(dst) {
		return false
	}
	*last = *dst
	return true
}

// slab hands out zeroed messages from chunks allocated together (the first of about one
// per 64 bytes of the body, at most 16; then doubling up to 256), instead of one allocation
// per item; unused ones are at most the last chunk's rest.
type slab[T any] struct {
	chunk []T
	size  int // of the last chunk
	body  int // bytes in the request body
}

func (s *slab[T]) next() *T {
	if len(s.chunk) == 0 {
		if s.size == 0 {
			s.size = min(max(s.body/64, 1), 16)
		} else {
			s.size = min(2*s.size, 256)
		}
		s.chunk = make([]T, s.size)
	}
	it := &s.chunk[0]
	s.chunk = s.chunk[1:]
	return it
}

// object reads {"key": value, …}, field reading each value.
func (p *jsonParser) object(field func(key string) bool) bool {
	if !p.byte('{') {
		return false
	}
	if p.byte('}') {
		return true
	}
	for {
		key, ok := p.str()
		if !ok || !p.byte(':') || !field(key) {
			return false
		}
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// array reads [elem, …].
func (p *jsonParser) array(elem func() bool) bool {
	if !p.byte('[') {
		return false
	}
	if p.byte(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if p.byte(']') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}
