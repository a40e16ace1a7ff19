package fpe

import "errors"

// These errors are returned by this package, bare or wrapped with detail;
// match them with [errors.Is]. Their messages never contain the input
// string, the tweak or key material: at most lengths, radixes and limits.
var (
	// ErrKeySize is returned by NewFF1 and NewFF1WithAlphabet when the key
	// is not 16, 24 or 32 bytes long (AES-128, AES-192, AES-256).
	ErrKeySize = errors.New("fpe: key must be 16, 24 or 32 bytes")

	// ErrAlphabet is returned by NewFF1 when the radix is outside 2..36, and
	// by NewFF1WithAlphabet when the alphabet is not valid UTF-8, has fewer
	// than 2 or more than 65,536 characters, or repeats a character.
	ErrAlphabet = errors.New("fpe: invalid alphabet or radix")

	// ErrNumeral is returned by Encrypt and Decrypt when the input contains
	// a character that is not in the alphabet (including signs, spaces,
	// letters of the wrong case and invalid UTF-8).
	ErrNumeral = errors.New("fpe: input contains a character outside the alphabet")

	// ErrDomainTooSmall is returned by Encrypt and Decrypt when the input is
	// so short that radix^length < 1,000,000 (NIST SP 800-38G Rev. 1), that
	// is when it is shorter than [FF1.MinLen].
	ErrDomainTooSmall = errors.New("fpe: input domain is smaller than 1,000,000 values")

	// ErrLength is returned by Encrypt and Decrypt when the input is longer
	// than [FF1.MaxLen] characters.
	ErrLength = errors.New("fpe: input is too long")

	// ErrTweak is returned by Encrypt and Decrypt when the tweak is longer
	// than [MaxTweakLen] bytes.
	ErrTweak = errors.New("fpe: tweak is too long")
)

// errNotInitialized is returned when a method is called on a nil or zero FF1.
var errNotInitialized = errors.New("fpe: FF1 not initialized; use NewFF1 or NewFF1WithAlphabet")
