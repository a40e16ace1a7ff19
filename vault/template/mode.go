package template

import "fmt"

// Mode says whether a template maps a value to the same token every time.
type Mode int

const (
	// Deterministic (the zero value, and the default) gives the same value the same token
	// inside a domain: the first candidate is derived with FF1 where the free space allows
	// it, and the vault's blind index remembers the token.
	Deterministic Mode = iota
	// Random gives a fresh token on every tokenization.
	Random
)

// String returns "deterministic" or "random".
func (m Mode) String() string {
	switch m {
	case Deterministic:
		return "deterministic"
	case Random:
		return "random"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses "deterministic", "random" or "" (deterministic). Other strings give an
// error wrapping ErrInvalidDefinition.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "", "deterministic":
		return Deterministic, nil
	case "random":
		return Random, nil
	}
	return 0, &DefinitionError{Problem: "mode must be deterministic or random"}
}

// MarshalText encodes the mode as "deterministic" or "random", so a Definition's JSON
// carries the word.
func (m Mode) MarshalText() ([]byte, error) {
	if m != Deterministic && m != Random {
		return nil, &DefinitionError{Problem: "mode must be deterministic or random"}
	}
	return []byte(m.String()), nil
}

// UnmarshalText is the inverse of MarshalText; an empty text is deterministic.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
