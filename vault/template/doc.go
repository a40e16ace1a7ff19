// Package template is tokenvault's template library: for each kind of PII (card numbers,
// SSNs, emails, phone numbers, names, dates, IBANs, digit and alphanumeric codes, opaque
// text) it validates values and produces format-preserving candidate tokens and masks.
//
// # Basics
//
// A [Template] is either built in ([Builtin], [BuiltinNames]: pan, ssn, email, phone, name,
// date, iban, digits, alnum, opaque) or custom: a [Definition] (a name, a built-in base and
// options such as KeepPrefix/KeepSuffix, Luhn, Alphabet) validated by [New]. Templates are
// immutable and safe for concurrent use.
//
// The vault calls [Template.Check] on each value, then [Template.Candidate] with attempt 0,
// 1, 2, ... until a candidate differs from the value and is free in the domain. [Prepare]
// does the first steps from one parse of the value (the validation of Check, then
// [Prepared.FreeSpace] and [Prepared.Candidate], with exactly the same results): tokenize
// uses it for every item, and Candidate only after a collision. Candidates
// keep the value's format: its length, its separators and punctuation in place, the kept
// characters (the last four digits of a card, a phone number's country code, an email's
// domain, an IBAN's country), and the template's guarantees (tokens of pan fail the Luhn
// check by default; IBAN tokens have valid mod-97 check digits; date tokens are real dates).
// [Template.Check] accepts every candidate of the same template.
//
// How a candidate is made: the template splits the value into kept characters and free
// positions, each with its alphabet (digits, letters, ...). In [Deterministic] mode, when
// the free positions can take at least 10^6 values (the SP 800-38G Rev. 1 minimum for FF1),
// the free characters are enciphered with FF1 from [Keys] (a key per domain, template,
// alphabet and length, held by the vault) under a tweak hashed from the attempt and the kept
// characters; where the token must satisfy a rule (Luhn, SSN field rules) or the positions
// mix alphabets, the output is cycle-walked (enciphered again) until it fits. The same
// (domain, value, attempt) thus always gives the same candidate, and distinct values rarely
// share a first candidate. In [Random] mode, or for a
// smaller free space, candidates are drawn uniformly from the randomness source, so every
// token of a small space is reachable; determinism then comes from the vault's index.
//
// Errors: [Template.Check] returns a [*ValueError] wrapping [ErrInvalidValue] whose message
// names the template and the rule ("pan: must have 12 to 19 digits"), never the value or a
// part of it. [New] returns a [*DefinitionError] wrapping [ErrInvalidDefinition] (and
// [ErrUnknownTemplate] for an unknown base) that names the option at fault.
//
// [Template.Mask] gives the masked form for "masked" reveals ("**** **** **** 1111",
// "***-**-6789", "j***@example.com", "1984-**-**"): what the token keeps plus at most a few
// characters. [Template.FreeSpace] and [Template.FreeSpaceOf] give log10 of the number of
// possible tokens, by length and for one value.
//
// docs/templates.md describes every template: what it accepts, what its tokens keep and
// therefore reveal, its masks and options.
//
// # Caveats
//
// Tokens reveal what they keep: the length and layout of the value, the kept characters,
// and for some templates more (the case pattern of a name, the character classes of an alnum
// code or IBAN). Deterministic tokens also reveal equality: within a domain the same value
// always has the same token, so a recipient can count and link occurrences (frequency
// analysis); use Random mode, or separate domains, where that matters.
//
// Small spaces are small: a one-letter name has 26 possible tokens, a four-digit code
// 10^4, a date with KeepYear 365. Such values still get unique tokens (the vault probes up
// to its attempt limit), but a recipient can guess a value from a small space as well as
// without a token. Definitions keeping characters in clear must leave at least 10^3
// ([MinFreeSpace]) tokens for their shortest value; New refuses the rest.
//
// Tokens are shaped like real data where the recipient's validators require it (SSN tokens
// follow the SSA's issuing rules; IBAN check digits are valid; Luhn-valid pan is an
// option), so such a token may coincide with a real person's number: treat tokens sent to a
// vendor as that vendor's copy of PII, not as harmless fakes. Tokens do not carry country-
// or bank-specific internal check digits (e.g. inside a French or Belgian BBAN), nor
// numbering-plan rules (a phone token's area code may not exist).
//
// Values are checked for form, not truth: a pan need not pass the Luhn check (test cards),
// an SSN may be any nine digits, a phone number is not checked against numbering plans.
package template
