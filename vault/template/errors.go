package template

import (
	"errors"
	"regexp"
)

// Sentinel errors. Match them with errors.Is. No error returned by this package contains a
// value, a part of a value, a token or key material: value errors name the template and the
// rule that failed, definition errors name the option that is wrong.
var (
	// ErrInvalidValue is wrapped by every error for a value that does not fit its template
	// (Check, Candidate, FreeSpaceOf). The concrete error is a *ValueError.
	ErrInvalidValue = errors.New("invalid value")

	// ErrInvalidDefinition is wrapped by every error of New for an unusable Definition, and
	// by Mode's text decoding. The concrete error is a *DefinitionError.
	ErrInvalidDefinition = errors.New("invalid template definition")

	// ErrUnknownTemplate is wrapped (together with ErrInvalidDefinition) by New when the
	// Definition's Base is not a built-in template. The vault may also use it for lookups.
	ErrUnknownTemplate = errors.New("unknown template")
)

// ValueError reports the rule a value failed. Its message is "<template>: <rule>", for
// example "pan: must have 12 to 19 digits"; neither field ever contains the value or any
// part of it. It unwraps to ErrInvalidValue.
type ValueError struct {
	Template string // the template's name
	Rule     string // the rule that failed
}

func (e *ValueError) Error() string { return e.Template + ": " + e.Rule }

// Unwrap returns ErrInvalidValue.
func (e *ValueError) Unwrap() error { return ErrInvalidValue }

// DefinitionError reports what is wrong with a Definition. Its message is
// "template <name>: <problem>" (the name only when it is itself valid), for example
// `template "card": keep-prefix 20 leaves no free characters`. It unwraps to
// ErrInvalidDefinition, and also to ErrUnknownTemplate for an unknown base.
type DefinitionError struct {
	Name    string // the definition's name, "" when the name itself is the problem
	Problem string // what is wrong, naming the option
	unknown bool
}

func (e *DefinitionError) Error() string {
	if e.Name == "" {
		return "template definition: " + e.Problem
	}
	return "template " + `"` + e.Name + `": ` + e.Problem
}

// Unwrap returns ErrInvalidDefinition, and ErrUnknownTemplate for an unknown base.
func (e *DefinitionError) Unwrap() []error {
	if e.unknown {
		return []error{ErrInvalidDefinition, ErrUnknownTemplate}
	}
	return []error{ErrInvalidDefinition}
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

func defErr(name, problem string) *DefinitionError {
	if !nameRE.MatchString(name) {
		name = ""
	}
	return &DefinitionError{Name: name, Problem: problem}
}
