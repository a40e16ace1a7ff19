package vault

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"slices"

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
	return r.appendTo(make([]byte, 0, r.size()))
}

// size is an upper bound of the marshalled record's length.
func (r *record) size() int {
	return 1 + binary.MaxVarintLen64 + len(r.template) + 2*binary.MaxVarintLen64 + 1 + len(r.subject) + len(r.ciphertext)
}

// appendTo appends the marshalled record to b.
func (r *record) appendTo(b []byte) []byte {
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
	r.template = templateName(b[k : k+int(n)])
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

// templateName returns b as a string, without allocating for a built-in template's name
// (the name of most records).
func templateName(b []byte) string {
	switch string(b) { // compared without a conversion
	case "pan":
		return "pan"
	case "ssn":
		return "ssn"
	case "email":
		return "email"
	case "phone":
		return "phone"
	case "name":
		return "name"
	case "date":
		return "date"
	case "iban":
		return "iban"
	case "digits":
		return "digits"
	case "alnum":
		return "alnum"
	case "opaque":
		return "opaque"
	}
	return string(b)
}

// recordAD is the associated data that binds a ciphertext to its domain, template and token:
// a ciphertext copied onto another record fails to decrypt.
func recordAD(domain, template, token string) []byte {
	return appendRecordAD(make([]byte, 0, 24+len(domain)+len(template)+len(token)), domain, template, token)
}

// appendRecordAD appends recordAD(domain, template, token) to ad.
func appendRecordAD(ad []byte, domain, template, token string) []byte {
	ad = append(ad, "tokenvault/record/v1"...)
	for _, s := range [...]string{domain, template, token} {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	return ad
}

// readRecord reads the record of (domain, token) and, for a subject record, its subject's
// wrapped key.
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
// With sc, the result and the records' bytes are sc's, valid until sc is reused.
func readRecords(tx store.Tx, keys [][]byte, sc *readScratch) []rawRecord {
	raws, _ := readRecordsWith(tx, keys, sc, "")
	return raws
}

// readRecordsWith is readRecords that also returns the values of keys in bucket also (none
// when also is empty), read with the records in one store.GetManyIn: one statement on
// PostgreSQL.
func readRecordsWith(tx store.Tx, keys [][]byte, sc *readScratch, also store.Bucket) ([]rawRecord, [][]byte) {
	if sc == nil {
		sc = new(readScratch)
	}
	out := grow(sc.raws, len(keys))
	sc.raws = out
	if len(keys) == 0 {
		return out, nil
	}
	var subjects [][]byte
	var withSubject []int
	var vals, alsoVals [][]byte
	if also != "" {
		both := store.GetManyIn(tx, []store.Read{{Bucket: bucketRecords, Keys: keys}, {Bucket: also, Keys: keys}})
		vals, alsoVals = both[0], both[1]
	} else {
		vals = tx.GetMany(bucketRecords, keys)
	}
	n := 0
	for _, b := range vals {
		n += len(b)
	}
	buf := slices.Grow(sc.recs[:0], n) // the records are copied out of the transaction in one allocation
	defer func() { sc.recs = buf }()
	for i, b := range vals {
		if b == nil || isTombstone(b) {
			continue
		}
		start := len(buf)
		buf = append(buf, b...)
		out[i].rec = buf[start:len(buf):len(buf)]
		if r, err := unmarshalRecord(out[i].rec); err == nil && r.subject != nil {
			subjects, withSubject = append(subjects, r.subject), append(withSubject, i)
		}
	}
	for k, sk := range tx.GetMany(bucketSubjectKeys, subjects) {
		out[withSubject[k]].subjectKey = bytes.Clone(sk)
	}
	return out, alsoVals
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
	return v.openRecordAD(rr, r, domain, token, nil)
}

// openRecordAD is openRecord building the associated data in *adBuf (reused across calls)
// when adBuf is not nil.
func (v *Vault) openRecordAD(rr rawRecord, r record, domain, token string, adBuf *[]byte) ([]byte, error) {
	var ad []byte
	if adBuf != nil {
		*adBuf = appendRecordAD((*adBuf)[:0], domain, r.template, token)
		ad = *adBuf
	} else {
		ad = recordAD(domain, r.template, token)
	}
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
