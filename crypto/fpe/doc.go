// Package fpe implements FF1, the format-preserving encryption mode of NIST
// SP 800-38G (Rev. 1), over AES from crypto/aes.
//
// # Basics
//
// FF1 encrypts a string of characters from an alphabet to another string of
// the same length over the same alphabet: sixteen digits to sixteen digits,
// ten alphanumerics to ten alphanumerics. Create a cipher with an AES key
// (16, 24 or 32 bytes) and either a radix, for the numerals
// "0123456789abcdefghijklmnopqrstuvwxyz" ([NewFF1]), or an alphabet of 2 to
// 65,536 distinct characters, which may be non-ASCII ([NewFF1WithAlphabet]):
//
//	f, err := fpe.NewFF1(key, 10)
//	...
//	token, err := f.Encrypt(tweak, "4111111111111111")
//	value, err := f.Decrypt(tweak, token)
//
// The tweak is public, non-secret input that changes the permutation: the
// same plaintext under two tweaks gives unrelated ciphertexts. Use it to
// bind a ciphertext to its context (tenant, field, the clear digits of a
// partly kept card number). It may be empty and is at most [MaxTweakLen]
// bytes.
//
// Encrypt and Decrypt are strict: every character of the input must be in
// the alphabet (case-sensitive; no signs, spaces or separators), the input
// must have [FF1.MinLen] to [FF1.MaxLen] characters, and anything else is
// refused with an error that wraps one of this package's sentinel errors
// (match them with errors.Is). Errors never repeat the input, which is
// usually personal data. Invalid input never panics.
//
// An *FF1 is safe for concurrent use by any number of goroutines. Inputs
// whose halves fit in 64 bits (up to 38 digits in radix 10, 24 characters
// in radix 36, 20 in radix 62) take an allocation-free path apart from the
// returned string; longer inputs use math/big.
//
// # Speed
//
// On amd64 CPUs with AES-NI and SSE4.1 (detected with golang.org/x/sys/cpu)
// that 64-bit path runs its ten Feistel rounds in assembly for inputs
// whose second half has at most 2^56 values (up to 32 digits in radix
// 10): AES-NI on the round keys held in registers, each round's reduction
// in general registers, so nothing but the arithmetic separates one
// round's AES from the next. The key schedule for it is expanded once per FF1, in Go, by
// FIPS-197's KeyExpansion with a computed (not looked-up) S-box. Elsewhere,
// with the purego build tag, and for longer inputs, the rounds run in Go
// over crypto/aes; both paths are tested against each other and against
// the NIST samples. A 16-digit encryption costs about 20 single-block AES
// calls (BENCHMARKS.md, "FF1 (crypto/fpe)").
//
// # Caveats
//
// FF1 is deterministic: equal (key, tweak, plaintext) give equal
// ciphertexts, so equality of plaintexts is visible to whoever sees the
// ciphertexts. That is what makes tokens joinable, and it is also a leak.
//
// FF1 hides the value, not its shape: the ciphertext reveals the length of
// the plaintext and that it is drawn from the alphabet. It has no integrity:
// any string of valid length and alphabet decrypts to some plaintext, so a
// forged or mistyped token is not detected here.
//
// Small domains are weak. Bellare, Hoang and Tessaro (CCS 2016) recover
// messages of Feistel-based FPE, FF1 included, over small domains; SP
// 800-38G Rev. 1 therefore requires radix^minlen >= 10^6, and this package
// refuses shorter inputs ([ErrDomainTooSmall]): fewer than 6 digits, 4
// alphanumerics or 20 bits. Values with few possibilities (a 4-digit PIN,
// a birth year) need random tokens from a lookup table instead of FPE.
//
// Use a separate key for each domain, template and length. Amon,
// Dunkelman, Keller, Ronen and Shamir ("Three Third Generation Attacks on
// the Format Preserving Encryption Scheme FF3", Eurocrypt 2021) introduced
// related-domain attacks, which combine encryptions under one key in
// different domains, and applied them to FF3 and FF3-1. FF1 binds the
// radix, the length and the tweak length into every round (the block P),
// but one key per (tenant, template, length), derived from a master key,
// costs nothing here and rules out that whole class of attack.
//
// The implementation is not constant-time: the time of a call may depend
// on the values (integer division, math/big for long inputs, the position
// of the first invalid character). Do not let an attacker time many calls
// on chosen data with precision. The assembly rounds (above) do not branch
// on data: AES-NI is constant-time and each round's reduction is a
// multiply and conditional moves, but inputs whose second half has more
// than 2^32 values (19 digits and more in radix 10) reduce with DIV, as the
// Go rounds do, whose latency depends on its operands on some CPUs.
//
// Characters are Unicode code points. Text with accents must be normalized
// (for example to NFC) by the caller; "é" as one code point and "e" plus a
// combining accent are different inputs.
//
// The package is hand-written rather than imported: no maintained FF1
// module is served by the Go module proxy, none comes near the speed above
// (the straightforward Go FF1 costs about 150 AES calls per 16 digits), and
// the commonly used public Go
// FF1 implementation (github.com/capitalone/fpe) keeps a CBC encrypter with
// a mutable IV inside its cipher, so one instance is not safe for
// concurrent use, and it parses input with math/big's SetString, so it
// accepts signs such as "-12345678" that are not numerals. This
// implementation is checked against the nine NIST samples, against a literal
// transcription of the specification over many alphabets, lengths and
// tweaks, and by fuzzing.
package fpe
