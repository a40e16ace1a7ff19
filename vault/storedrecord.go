package vault

import (
	"bytes"
	"encoding/binary"
	"log/slog"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/keyring"
	"github.com/tokenvault/tokenvault/vault/store"
)

// The stored record: its binary format, its associated data, and the read path (readRecord in
// a read transaction, then checkRecord and openRecord outside it).

// Record versions: 1 had no subject; 2 adds the subject fingerprint (empty when none).
const recordVersion = 2

// record is the stored form of one token. Only ciphertext protects PII; the other fields are
// metadata the vault needs without decrypting.
type record struct {
	template   string
	createUnix int64
	expireUnix int64  // 0: never
	subject    []byte // fingerprint of the data subject; its key encrypts ciphertext
	ciphertext []byte
}

func (r *record) marshal() []byte {
	b := make([]byte, 0, 1+1+len(r.template)+10+10+len(r.ciphertext))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(len(r.template)))
	b = append(b, r.template...)
	b = binary.AppendVarint(b, r.createUnix)
	b = binary.AppendVarint(b, r.expireUnix)
	b = binary.AppendUvarint(b, uint64(len(r.subject)))
	b = append(b, r.subject...)
	return append(b, r.ciphertext...)
}

// unmarshalRecord parses b; the returned record aliases b.
func unmarshalRecord(b []byte) (record, error) {
	var r record
	if len(b) < 1 || (b[0] != 1 && b[0] != 2) {
		return r, errBadRecord
	}
	version := b[0]
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return r, errBadRecord
	}
	r.template = string(b[k : k+int(n)])
	b = b[k+int(n):]
	var m int
	if r.createUnix, m = binary.Varint(b); m <= 0 {
		return r, errBadRecord
	}
	b = b[m:]
	if r.expireUnix, m = binary.Varint(b); m <= 0 {
		return r, errBadRecord
	}
	b = b[m:]
	if version >= 2 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) || n > 64 {
			return r, errBadRecord
		}
		if n > 0 {
			r.subject = b[k : k+int(n)]
		}
		b = b[k+int(n):]
	}
	r.ciphertext = b
	return r, nil
}

// recordAD is the associated data that binds a ciphertext to its domain, template and token:
// a ciphertext copied onto another record fails to decrypt.
func recordAD(domain, template, token string) []byte {
	ad := make([]byte, 0, 24+len(domain)+len(template)+len(token))
	ad = append(ad, "tokenvault/record/v1"...)
	for _, s := range []string{domain, template, token} {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// rawRecord is a record and, for subject records, its subject's wrapped key, copied out of a

func readRecord(tx store.Tx, domain, token string) rawRecord {
	b := tx.Get(bucketRecords, recordKey(domain, token))
	if b == nil || isTombstone(b) {
		return rawRecord{}
	}
	rr := rawRecord{rec: bytes.Clone(b)}
	if r, err := unmarshalRecord(rr.rec); err == nil && r.subject != nil {
		rr.subjectKey = bytes.Clone(tx.Get(bucketSubjectKeys, r.subject))
	}
	return rr
}

// readRecords is readRecord for many (domain, token) keys (recordKeys) at once, with a
// constant number of store reads however many there are: one GetMany of the records, one of
// their subjects' keys. Result i belongs to keys[i].
func readRecords(tx store.Tx, keys [][]byte) []rawRecord {
	out := make([]rawRecord, len(keys))
	if len(keys) == 0 {
		return out
	}
	var subjects [][]byte
	var withSubject []int
	for i, b := range tx.GetMany(bucketRecords, keys) {
		if b == nil || isTombstone(b) {
			continue
		}
		out[i].rec = bytes.Clone(b)
		if r, err := unmarshalRecord(out[i].rec); err == nil && r.subject != nil {
			subjects, withSubject = append(subjects, r.subject), append(withSubject, i)
		}
	}
	for k, sk := range tx.GetMany(bucketSubjectKeys, subjects) {
		out[withSubject[k]].subjectKey = bytes.Clone(sk)
	}
	return out
}

// checkRecord parses a raw record and applies the lookup rules: it must exist, belong to
// tmpl when one is named, and not have expired.
func (v *Vault) checkRecord(rr rawRecord, domain, tmpl string, now int64) (record, error) {
	if rr.rec == nil {
		return record{}, ErrNotFound
	}
	r, err := unmarshalRecord(rr.rec)
	if err != nil {
		v.log.Error("stored record is malformed", slog.String("domain", domain))
		return record{}, ErrIntegrity
	}
	if (tmpl != "" && tmpl != r.template) || (r.expireUnix != 0 && now >= r.expireUnix) {
		return record{}, ErrNotFound
	}
	if r.subject != nil && rr.subjectKey == nil {
		return record{}, ErrNotFound // the subject was erased
	}
	return r, nil
}

// openRecord decrypts a checked record.
func (v *Vault) openRecord(rr rawRecord, r record, domain, token string) ([]byte, error) {
	ad := recordAD(domain, r.template, token)
	var pt []byte
	var err error
	if r.subject != nil {
		var a tink.AEAD
		if a, err = v.subjectAEAD(r.subject, rr.subjectKey); err == nil {
			pt, err = a.Decrypt(r.ciphertext, ad)
		}
	} else {
		pt, err = v.keyring().Open(r.ciphertext, ad)
		if id, ok := keyring.CiphertextKeyID(r.ciphertext); err != nil && ok && v.refreshForKey(id) {
			pt, err = v.keyring().Open(r.ciphertext, ad) // sealed under a key another replica added
		}
	}
	if err != nil {
		v.log.Error("stored record failed to decrypt", slog.String("domain", domain), slog.String("template", r.template))
		return nil, ErrIntegrity
	}
	return pt, nil
}
