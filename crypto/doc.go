// Package crypto is the root of tokenvault's cryptography. It holds no code of its own; the
// work is done by its sub-packages:
//
//   - fpe: FF1 format-preserving encryption (NIST SP 800-38G), hand-written because no
//     maintained FF1 module is available.
//   - keyring: the vault's data keys (a Tink AEAD keyset for originals and a Tink PRF keyset
//     from which token keys are derived), wrapped by a key-encryption key (KEK).
//   - insecurekek: a KEK kept as a cleartext Tink keyset in a local file, for development and
//     small installations. Every use of it is a deliberate choice that a grep can find.
//
// Nothing in these packages logs, and no error carries key material or plaintext.
package crypto
