package fieldpolicy

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is. No error returned by this package contains a
// document value or any part of one: errors name a document by its index in the batch and a
// place in it by a byte offset or a JSON path. Paths are built from member names, so member
// names do appear in errors.
var (
	// ErrInvalidPolicy is wrapped by every error of ParsePolicy and Compile. A bad path is a
	// *PathError.
	ErrInvalidPolicy = errors.New("invalid policy")

	// ErrInvalidDocument is wrapped by the *DocError that Extract and Replace return for a
	// document that is not strict JSON (or is nested too deeply).
	ErrInvalidDocument = errors.New("invalid JSON document")

	// ErrLimit is wrapped by errors for a batch that selects more than MaxFields values and
	// (together with ErrInvalidDocument) for a document nested deeper than MaxDepth.
	ErrLimit = errors.New("limit exceeded")

	// ErrWrongType is wrapped by every FieldError.
	ErrWrongType = errors.New("value of the wrong JSON type")

	// ErrFieldMismatch is wrapped by Replace's errors for fields and replacements that do
	// not fit the documents (wrong count, unknown document or path, changed value, invalid
	// UTF-8 replacement).
	ErrFieldMismatch = errors.New("fields do not match the documents")
)

// PathError reports a JSON path the package does not accept. Its message names the path,
// the problem and, when there is one, the 1-based character position of the problem, e.g.
// `record: path "$..card": recursive descent ".." is not supported (at position 2)`.
type PathError struct {
	Path    string // the path as written (the first 32 bytes and "..." for an overlong one)
	Line    int    // its line in the policy file, from ParsePolicy; 0 otherwise
	Pos     int    // 1-based character (rune) position of the problem; 0 when not applicable
	Problem string // what is wrong
}

func (e *PathError) Error() string {
	s := "record: "
	if e.Line > 0 {
		s += fmt.Sprintf("line %d: ", e.Line)
	}
	s += fmt.Sprintf("path %q: %s", e.Path, e.Problem)
	if e.Pos > 0 {
		s += fmt.Sprintf(" (at position %d)", e.Pos)
	}
	return s
}

// Unwrap returns ErrInvalidPolicy.
func (e *PathError) Unwrap() error { return ErrInvalidPolicy }

// DocError reports a document that cannot be processed: its index in the batch, the byte
// offset of the problem and what the problem is. It never quotes the document.
type DocError struct {
	Doc     int    // index of the document in the batch
	Offset  int    // byte offset in the document
	Problem string // e.g. "unterminated string", "duplicate member name at $.customer.email"
	limit   bool
}

func (e *DocError) Error() string {
	return fmt.Sprintf("record: doc %d: %s (at byte %d)", e.Doc, e.Problem, e.Offset)
}

// Unwrap returns ErrInvalidDocument, and ErrLimit too for a document nested too deeply.
func (e *DocError) Unwrap() []error {
	if e.limit {
		return []error{ErrInvalidDocument, ErrLimit}
	}
	return []error{ErrInvalidDocument}
}

// FieldError reports a value the policy reaches that has the wrong JSON type: a selected
// value that is not a string (a number, boolean, object or array), or a value on the way to
// a selected one that is not the object or array the rule's path needs (e.g. a string where
// $.customer.email needs $.customer to be an object). It names the concrete path, never the
// value. Null values and missing members or elements are skipped silently instead. It
// unwraps to ErrWrongType.
type FieldError struct {
	Doc      int    // index of the document in the batch
	Path     string // concrete path of the offending value, e.g. $.items[2].card
	Rule     string // the path of the rule that reached it, as written in the policy
	Template string // the template of that rule
	Got      string // the value's JSON type: "number", "boolean", "object", "array" or "string"
	Want     string // "string" for a selected value; "object" or "array" for one on the way
}

// Reason is the message without the "record: doc N: " prefix, for reporting the field to a
// client, e.g. "value at $.payment.card is a number; send it as a string".
func (e FieldError) Reason() string {
	switch {
	case e.Want != "string":
		return fmt.Sprintf("value at %s is %s, but rule %s needs %s there", e.Path, article(e.Got), e.Rule, article(e.Want))
	case e.Got == "number":
		return fmt.Sprintf("value at %s is a number; send it as a string", e.Path)
	default:
		return fmt.Sprintf("value at %s is %s, not a string", e.Path, article(e.Got))
	}
}

func (e FieldError) Error() string { return fmt.Sprintf("record: doc %d: %s", e.Doc, e.Reason()) }

// Unwrap returns ErrWrongType.
func (e FieldError) Unwrap() error { return ErrWrongType }

func article(kind string) string {
	switch kind {
	case "object", "array":
		return "an " + kind
	}
	return "a " + kind
}

func policyErr(format string, args ...any) error {
	return fmt.Errorf("record: %w: "+format, append([]any{ErrInvalidPolicy}, args...)...)
}

func mismatch(format string, args ...any) error {
	return fmt.Errorf("record: %w: "+format, append([]any{ErrFieldMismatch}, args...)...)
}
