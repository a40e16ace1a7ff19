package fieldpolicy

import (
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// Field is a string value the policy selects in a document.
type Field struct {
	Doc      int    // index of the document in the batch
	Path     string // concrete path, e.g. $.items[2].note
	Template string // template of the (first) rule that selects it
	Value    string // the decoded string
}

// Extract parses every document and returns the string values the policy selects, ordered
// by document and, within a document, by position (document order), with the values of the
// wrong type as FieldErrors in the same order. Null values and missing members or elements
// are skipped. A value selected by several rules appears once, with the first rule's
// template.
//
// The error is a *DocError (ErrInvalidDocument) for a document that is not strict JSON or is
// nested deeper than MaxDepth, or wraps ErrLimit when the batch selects more than MaxFields
// values (FieldErrors included); then nothing else is returned.
func (c *Compiled) Extract(docs []json.RawMessage) ([]Field, []FieldError, error) {
	w := &walker{c: c, budget: c.maxFields}
	for d, doc := range docs {
		if err := w.walk(d, doc); err != nil {
			return nil, nil, err
		}
	}
	return w.fields, w.errs, nil
}

// Replace returns the documents with the value of fields[i] replaced by replacements[i].
// fields are what Extract returned for these documents, all of them or some (e.g. only the
// ones that were tokenized), in any order. Everything but the replaced strings is kept byte
// for byte: member order, unknown members, number text, whitespace. A replacement equal to
// the field's value leaves the original JSON text (escapes included) as it was, so a caller
// may pass the original value back for a field that failed. A document without replacements
// is returned as given (the same slice).
//
// Replace parses the documents again and checks each field against them: its document
// exists, the policy selects a string at its path with its template, and the value there is
// still its Value; each path may come once. A failed check, a replacement that is not valid
// UTF-8, or len(replacements) != len(fields) is an error wrapping ErrFieldMismatch, naming
// the field by index, document and path. Document errors are as for Extract.
func (c *Compiled) Replace(docs []json.RawMessage, fields []Field, replacements []string) ([]json.RawMessage, error) {
	if len(fields) != len(replacements) {
		return nil, mismatch("%d fields but %d replacements", len(fields), len(replacements))
	}
	if len(fields) > c.maxFields {
		return nil, mismatch("%d fields; a batch selects at most %d", len(fields), c.maxFields)
	}
	byDoc := make(map[int][]int)
	for i, f := range fields {
		if f.Doc < 0 || f.Doc >= len(docs) {
			return nil, mismatch("field %d (%s): doc %d is not in the batch of %d", i, f.Path, f.Doc, len(docs))
		}
		byDoc[f.Doc] = append(byDoc[f.Doc], i)
	}
	out := make([]json.RawMessage, len(docs))
	w := &walker{c: c, budget: c.maxFields}
	type edit struct {
		span
		field int
	}
	var edits []edit
	for d, doc := range docs {
		w.fields, w.spans, w.errs = w.fields[:0], w.spans[:0], w.errs[:0]
		if err := w.walk(d, doc); err != nil {
			return nil, err
		}
		idx := byDoc[d]
		if len(idx) == 0 {
			out[d] = doc
			continue
		}
		at := make(map[string]int, len(w.fields))
		for k, f := range w.fields {
			at[f.Path] = k
		}
		used := make(map[int]int, len(idx))
		edits = edits[:0]
		for _, i := range idx {
			f := fields[i]
			k, ok := at[f.Path]
			if !ok {
				return nil, mismatch("field %d (doc %d, %s): the policy selects no string there", i, d, f.Path)
			}
			if j, dup := used[k]; dup {
				return nil, mismatch("field %d (doc %d, %s): same place as field %d", i, d, f.Path, j)
			}
			used[k] = i
			if w.fields[k].Template != f.Template {
				return nil, mismatch("field %d (doc %d, %s): template %q, but the policy selects it for %q", i, d, f.Path, f.Template, w.fields[k].Template)
			}
			if w.fields[k].Value != f.Value {
				return nil, mismatch("field %d (doc %d, %s): the document holds another value there", i, d, f.Path)
			}
			if replacements[i] == f.Value {
				continue
			}
			if !utf8.ValidString(replacements[i]) {
				return nil, mismatch("replacement %d (doc %d, %s) is not valid UTF-8", i, d, f.Path)
			}
			edits = append(edits, edit{w.spans[k], i})
		}
		if len(edits) == 0 {
			out[d] = doc
			continue
		}
		slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
		grow := 0
		for _, e := range edits {
			grow += len(replacements[e.field]) + 2 - (e.end - e.start)
		}
		b := make([]byte, 0, len(doc)+max(grow, 0)+16)
		last := 0
		for _, e := range edits {
			b = append(b, doc[last:e.start]...)
			b = appendString(b, replacements[e.field])
			last = e.end
		}
		out[d] = append(b, doc[last:]...)
	}
	return out, nil
}
