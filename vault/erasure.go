package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/keyring"
	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

// Erasure, expiry and data subjects.
//
// A tokenize item may name a data subject. Each subject's originals are encrypted under a
// subject key of its own (crypto/keyring subject keys), stored wrapped by the data AEAD in
// bucket "subjectkeys". Erasing a subject deletes that key (crypto-shredding: every copy of
// its ciphertexts in this store becomes unreadable, including copies a compaction or a page
// reuse would otherwise leave behind) and its records. A backup taken before the erasure still
// holds the subject key: so every erasure (subjects and deleted tokens) is also appended to an
// erasure log kept outside the store (--erasure-log), which Open re-applies: a backup restored
// from before an erasure is erased again on first start, as long as the restored vault is
// given the log.

// rawRecord is a record and, for subject records, its subject's wrapped key, copied out of a
// read transaction.
type rawRecord struct {
	rec        []byte // nil: no such token
	subjectKey []byte // nil: no subject, or the subject was erased
}

// subjectCache keeps unwrapped subject keys, bounded. erased holds the SHA-256 of the wrapped
// keys this replica erased (bounded like m): a read that fetched a key just before its erasure
// committed must not cache it afterwards (subjectAEAD). Other replicas' erasures are handled
// by the heartbeat, which clears the cache twice when the erasure counter moves (cluster.go).
type subjectCache struct {
	m       sync.Map // string(fp) → subjectEntry
	n       atomic.Int64
	erased  sync.Map // [32]byte → struct{}
	nErased atomic.Int64
}

type subjectEntry struct {
	wrapped []byte
	aead    tink.AEAD
}

const maxCachedSubjects = 10000

// put caches a, the unwrapped key wrapped, for subject fp, unless this replica erased that key
// meanwhile (checked after the store: forget marks before it deletes, so one of the two sees
// the other). The key is usable for the caller's call either way.
func (c *subjectCache) put(fp, wrapped []byte, a tink.AEAD) {
	if c.n.Add(1) > maxCachedSubjects {
		c.clear()
	}
	c.m.Store(string(fp), subjectEntry{wrapped: bytes.Clone(wrapped), aead: a})
	if _, gone := c.erased.Load(sha256.Sum256(wrapped)); gone {
		c.m.Delete(string(fp))
	}
}

// forget drops subject fp's cached key after its erasure, and remembers (bounded) that
// wrapped, the erased key, must not be cached again.
func (c *subjectCache) forget(fp, wrapped []byte) {
	if wrapped != nil {
		if c.nErased.Add(1) > maxCachedSubjects {
			c.erased.Clear()
			c.nErased.Store(1)
		}
		c.erased.Store(sha256.Sum256(wrapped), struct{}{})
	}
	c.m.Delete(string(fp))
}

// clear drops every cached key.
func (c *subjectCache) clear() {
	c.m.Clear()
	c.n.Store(0)
}

func (v *Vault) subjectFingerprint(subject string) ([]byte, error) {
	k, err := v.hmacKey("subject")
	if err != nil {
		return nil, err
	}
	return fingerprint(k, subject), nil
}

// subjectAEAD unwraps (or finds cached) the subject key.
func (v *Vault) subjectAEAD(fp, wrapped []byte) (tink.AEAD, error) {
	if e, ok := v.subjects.m.Load(string(fp)); ok && bytes.Equal(e.(subjectEntry).wrapped, wrapped) {
		return e.(subjectEntry).aead, nil
	}
	a, err := v.unwrapSubjectKey(fp, wrapped)
	if err != nil {
		return nil, err
	}
	v.subjects.put(fp, wrapped, a)
	return a, nil
}

// newSubjectKeyID returns a random id for a new subject key (bucket subjectkeyids): the erasure
// log names the key it destroyed by it, so that replaying the log erases that key when a
// restore brings it back, and never a key the subject was given after the erasure.
func newSubjectKeyID() []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand.Read never fails (Go 1.24+)
	return id
}

// unwrapSubjectKey unwraps a subject key, without caching it.
func (v *Vault) unwrapSubjectKey(fp, wrapped []byte) (tink.AEAD, error) {
	a, err := v.keyring().OpenSubjectKey(fp, wrapped)
	if id, ok := keyring.SubjectKeyWrapID(wrapped); err != nil && ok && v.refreshForKey(id) {
		a, err = v.keyring().OpenSubjectKey(fp, wrapped) // wrapped under a key another replica added
	}
	return a, err
}

// decryptErased decrypts a record of subject fp under wrapped, the subject's key as read
// before its erasure (nil: unknown), to find the record's index entry; nil when it cannot.
// The key is not cached: it is being destroyed.
func (v *Vault) decryptErased(fp, wrapped []byte, r record, domain, token string) []byte {
	if wrapped == nil {
		return nil
	}
	a, err := v.unwrapSubjectKey(fp, wrapped)
	if err != nil {
		return nil
	}
	pt, err := a.Decrypt(r.ciphertext, recordAD(domain, r.template, token))
	if err != nil {
		return nil
	}
	return pt
}

// existingSubjectKeys sets, on each item of work with a subject, that subject's existing key
// (left nil when it has none yet): from the cache, else read in one batch for all of them.
func (v *Vault) existingSubjectKeys(ctx context.Context, work []prepared) error {
	var fps [][]byte
	var at []int
	for k := range work {
		p := &work[k]
		if p.subject == nil {
			continue
		}
		if e, ok := v.subjects.m.Load(string(p.subject)); ok {
			p.subjWrapped, p.subjAEAD = e.(subjectEntry).wrapped, e.(subjectEntry).aead
			continue
		}
		fps, at = append(fps, p.subject), append(at, k)
	}
	if len(fps) == 0 {
		return nil
	}
	var wrapped [][]byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		wrapped = wrapped[:0]
		for _, w := range tx.GetMany(bucketSubjectKeys, fps) {
			wrapped = append(wrapped, bytes.Clone(w))
		}
		return nil
	}); err != nil {
		return err
	}
	for n, k := range at {
		if wrapped[n] == nil {
			continue
		}
		a, err := v.subjectAEAD(fps[n], wrapped[n])
		if err != nil {
			return err
		}
		work[k].subjWrapped, work[k].subjAEAD = wrapped[n], a
	}
	return nil
}

// Receipt proves an erasure: what was erased and when, signed with the audit key.
type Receipt struct {
	Kind      string    `json:"kind"` // "tokens" or "subject"
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id,omitempty"`
	AuditSeq  uint64    `json:"audit_seq"` // the audit event recording the erasure
	// SweepAuditSeq is the second EraseSubject event of a subject erasure that raced a
	// tokenize: the sweep after the key's destruction erased records committed meanwhile (see
	// eraseSubjectFP); Erased lists the tokens of both events. Zero (and left out) otherwise.
	SweepAuditSeq uint64 `json:"sweep_audit_seq,omitempty"`
	// Erased lists the fingerprints (TokenFingerprint) of the erased tokens.
	Erased []string `json:"erased"`
	// Subject is the subject's fingerprint (hex) for a subject erasure.
	Subject   string `json:"subject,omitempty"`
	Signature string `json:"signature,omitempty"` // base64 Ed25519 (Tink) over the receipt without it
}

func (v *Vault) signReceipt(r *Receipt) error {
	r.Signature = ""
	msg, err := json.Marshal(r)
	if err != nil {
		return err
	}
	sig, err := v.keyring().Sign(append([]byte("tokenvault/erasure-receipt/v1\n"), msg...))
	if err != nil {
		return err
	}
	r.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// VerifyReceipt checks a receipt's signature with the audit public keyset.
func VerifyReceipt(r Receipt, publicKeyset []byte) error {
	sig, err := base64.StdEncoding.DecodeString(r.Signature)
	if err != nil {
		return ErrAuditTampered
	}
	r.Signature = ""
	msg, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return audit.VerifySignature(publicKeyset, sig, append([]byte("tokenvault/erasure-receipt/v1\n"), msg...))
}

// deleteRecord removes a record and what points to it. value is its plaintext (to find the
// blind index entry); empty when unknown.
func (v *Vault) deleteRecord(tx store.Tx, domain, token string, r record, value []byte) error {
	if err := tx.Put(bucketRecords, recordKey(domain, token), tombstone); err != nil {
		return err
	}
	if r.expireUnix != 0 {
		if err := tx.Delete(bucketExpiry, expiryKey(r.expireUnix, domain, token)); err != nil {
			return err
		}
	}
	if t, ok := v.lookupTemplateTx(tx, r.template); ok && t.Mode() == template.Deterministic && value != nil {
		k, err := v.hmacKey("index", domain, r.template)
		if err != nil {
			return err
		}
		ik := indexKey(domain, r.template, fingerprint(k, string(value)))
		if bytes.Equal(tx.Get(bucketIndex, ik), []byte(token)) {
			if err := tx.Delete(bucketIndex, ik); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteTokens erases tokens: their records are deleted and detokenize answers not found.
// Per-item errors are ErrNotFound. It returns a signed receipt of what was erased.
func (v *Vault) DeleteTokens(ctx context.Context, items []TokenRef) (Receipt, []error, error) {
	return v.deleteTokens(ctx, items, true)
}

// deleteTokens erases tokens; log says whether to append them to the erasure log (not when
// replaying it).
func (v *Vault) deleteTokens(ctx context.Context, items []TokenRef, log bool) (Receipt, []error, error) {
	if len(items) == 0 {
		return Receipt{}, nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return Receipt{}, nil, ErrBatchTooLarge
	}
	scope := scopeOf(ctx)
	var rd itemReads
	if err := v.store.View(ctx, func(tx store.Tx) error {
		rd = readItems(tx, scope, items, false, nil)
		return nil
	}); err != nil {
		return Receipt{}, nil, err
	}
	raw := rd.raw
	errs := make([]error, len(items))
	type del struct {
		domain, token string
		r             record
		value, old    []byte
	}
	var dels []del
	for i, it := range items {
		d := DomainOr(it.Domain)
		if rd.out[i] {
			errs[i] = ErrOutOfScope
			continue
		}
		r, err := v.checkRecord(raw[i], d, it.Template, 0)
		if err = scope.afterLookup(it, r, err); errors.Is(err, ErrOutOfScope) {
			errs[i] = err
			continue
		} else if err != nil {
			errs[i] = ErrNotFound
			continue
		}
		value, _ := v.openRecord(raw[i], r, d, it.Token) // nil if undecryptable: delete anyway
		dels = append(dels, del{d, it.Token, r, value, raw[i].rec})
	}
	rc := Receipt{Kind: "tokens", Time: v.now().UTC(), RequestID: requestFrom(ctx).RequestID}
	ev := v.newEvent(ctx, "DeleteTokens")
	ev.Items = len(items)
	seq, err := v.updateAudited(ctx, ev, func(tx store.Tx, e *AuditEvent) error {
		rc.Erased = []string{}
		var ds []string
		for _, d := range dels {
			if !bytes.Equal(tx.Get(bucketRecords, recordKey(d.domain, d.token)), d.old) {
				continue // changed or erased meanwhile
			}
			if err := v.deleteRecord(tx, d.domain, d.token, d.r, d.value); err != nil {
				return err
			}
			rc.Erased = append(rc.Erased, TokenFingerprint(d.domain, d.token))
			ds = append(ds, d.domain)
		}
		e.Tokens, e.Allowed, e.Denied = rc.Erased, len(rc.Erased), len(items)-len(rc.Erased)
		e.Domains, e.Outcome = uniqueSorted(ds), outcomeOf(len(rc.Erased), len(items))
		noteScopeDenials(e, countOutOfScope(func(i int) error { return errs[i] }, len(errs)))
		return nil
	})
	rc.AuditSeq = seq
	for _, d := range dels {
		clear(d.value)
	}
	if err != nil {
		return Receipt{}, nil, err
	}
	var entries []erasureEntry
	for _, d := range dels {
		if log {
			entries = append(entries, erasureEntry{Domain: d.domain, Token: d.token})
		}
	}
	if err := v.appendErasureLog(entries...); err != nil {
		return Receipt{}, nil, fmt.Errorf("the tokens were erased, but the erasure log could not be written (backups will not be re-erased on restore): %w", err)
	}
	if err := v.signReceipt(&rc); err != nil {
		return Receipt{}, nil, err
	}
	return rc, errs, nil
}

// EraseSubject erases every original of one data subject by destroying the subject's key
// and deleting its records, and logs the erasure in the erasure log for re-application to
// restored backups. Erasing an unknown subject succeeds with an empty receipt (a subject's
// existence is not revealed).
func (v *Vault) EraseSubject(ctx context.Context, subject string) (Receipt, error) {
	if subject == "" || len(subject) > 256 {
		return Receipt{}, fmt.Errorf("%w: a subject id is 1 to 256 bytes", ErrInvalidArgument)
	}
	fp, err := v.subjectFingerprint(subject)
	if err != nil {
		return Receipt{}, err
	}
	return v.eraseSubjectFP(ctx, fp, true)
}

// eraseSubjectFP erases one subject in two steps, after committing the subject's erasing mark
// (erasing.go: tokenizes that start after it wait for the erasure instead of locking the key).
//
//  1. One audited transaction deletes the subject key, the records read beforehand (their
//     plaintexts, decrypted outside the transaction, find their blind index entries) and every
//     other record its subject rows name: a tokenize that committed between that read and
//     this transaction is found by the scan inside it and decrypted there, while the key is
//     still readable. The same transaction removes this erasure's entry from the erasing mark.
//  2. A sweep, after that commit, in a new snapshot. Tokenize runs under snapshot isolation on
//     PostgreSQL, and reads subject keys with a share lock (batchReads.fetch): a tokenize that
//     read the key before step 1's delete holds it until it commits, so step 1's commit waits
//     for it, but step 1's snapshot, taken earlier, does not show its record. The sweep's does.
//     Records of the subject that no longer open (their key is gone) are deleted in a second
//     audited transaction with the same request id, and listed in the receipt. Records under
//     a key made after step 1 (a tokenize that came later) open and are kept. Bolt runs one
//     writer at a time, so its sweep finds nothing.
//
// The receipt lists the tokens of both steps; its AuditSeq is step 1's event, SweepAuditSeq
// step 2's (when it wrote one). With logIt, the erasure is appended to the erasure log
// (naming the destroyed key's id) as soon as step 1 has committed, before the sweep: a sweep
// that fails leaves the key destroyed and logged. The sweep runs on even when the caller's
// context ends, within sweepTimeout.
func (v *Vault) eraseSubjectFP(ctx context.Context, fp []byte, logIt bool) (Receipt, error) {
	type del struct {
		domain, token string
		r             record
		value, old    []byte
	}
	// Until step 1 commits (which removes it), this erasure's entry in the mark is taken back
	// on the way out; also when its own commit failed, whose outcome may be unknown (stored all
	// the same), or the subject's tokenizes would wait for an erasure that is not running.
	markID, err := v.markErasing(ctx, fp)
	marked := true
	defer func() {
		if marked {
			v.unmarkErasing(ctx, fp, markID)
		}
	}()
	if err != nil {
		return Receipt{}, err
	}
	var dels []del
	if err := v.store.View(ctx, func(tx store.Tx) error {
		dels = dels[:0]
		return scanSubject(tx, fp, func(_ []byte, domain, token string, rr rawRecord) error {
			if rr.rec == nil {
				return nil
			}
			r, err := unmarshalRecord(rr.rec)
			if err != nil {
				return nil
			}
			dels = append(dels, del{domain: domain, token: token, r: r, old: rr.rec})
			if pt, err := v.openRecord(rr, r, domain, token); err == nil {
				dels[len(dels)-1].value = pt
			}
			return nil
		})
	}); err != nil {
		return Receipt{}, err
	}
	defer func() {
		for _, d := range dels {
			clear(d.value)
		}
	}()
	rc := Receipt{Kind: "subject", Time: v.now().UTC(), RequestID: requestFrom(ctx).RequestID, Subject: hex.EncodeToString(fp)}
	ev := v.newEvent(ctx, "EraseSubject")
	ev.Target = "subject " + rc.Subject
	var wrapped, keyID []byte // the key being destroyed (kept until the sweep is done), its id
	seq, err := v.updateAudited(ctx, ev, func(tx store.Tx, e *AuditEvent) error {
		rc.Erased = []string{}
		wrapped = bytes.Clone(tx.Get(bucketSubjectKeys, fp))
		keyID = bytes.Clone(tx.Get(bucketSubjectKeyIDs, fp))
		if err := tx.Delete(bucketSubjectKeys, fp); err != nil {
			return err
		}
		if err := tx.Delete(bucketSubjectKeyIDs, fp); err != nil {
			return err
		}
		if err := dropErasingMark(tx, fp, markID, v.now()); err != nil {
			return err
		}
		var ds []string
		known := make(map[string]bool, len(dels))
		for _, d := range dels {
			known[string(subjectKey(fp, d.domain, d.token))] = true
			if bytes.Equal(tx.Get(bucketRecords, recordKey(d.domain, d.token)), d.old) {
				if err := v.deleteRecord(tx, d.domain, d.token, d.r, d.value); err != nil {
					return err
				}
				rc.Erased = append(rc.Erased, TokenFingerprint(d.domain, d.token))
				ds = append(ds, d.domain)
			}
		}
		keys, err := scanKeys(tx, bucketSubjects, fp, nil)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if domain, token, ok := splitRecordKey(k[len(fp):]); ok && !known[string(k)] {
				// Written since the read above: decrypt here, under the key read in this
				// transaction, to find its index entry.
				erased, err := v.eraseLateRecord(tx, fp, wrapped, domain, token)
				if err != nil {
					return err
				}
				if erased {
					rc.Erased = append(rc.Erased, TokenFingerprint(domain, token))
					ds = append(ds, domain)
				}
			}
			if err := tx.Delete(bucketSubjects, k); err != nil {
				return err
			}
		}
		e.Tokens, e.Allowed, e.Domains, e.Outcome = rc.Erased, len(rc.Erased), uniqueSorted(ds), OutcomeAllowed
		_, err = bumpCounter(tx, metaSubjectGen) // other replicas drop their cached subject keys
		return err
	})
	rc.AuditSeq = seq
	if err != nil {
		return Receipt{}, err
	}
	marked = false
	v.subjects.forget(fp, wrapped)
	var logErr error
	if logIt {
		logErr = v.appendErasureLog(erasureEntry{Subject: rc.Subject, Key: hex.EncodeToString(keyID)})
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sweepTimeout)
	defer cancel()
	var late []string
	var sweepSeq uint64
	for attempt := 0; ; attempt++ {
		if late, sweepSeq, err = v.sweepSubject(sctx, fp, wrapped); err == nil || attempt == 2 || sctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond << attempt)
	}
	switch {
	case logErr != nil:
		return Receipt{}, fmt.Errorf("the subject was erased, but the erasure log could not be written (backups will not be re-erased on restore): %w", logErr)
	case err != nil:
		return Receipt{}, fmt.Errorf("the subject key was destroyed and logged, but sweeping its records failed (erasing the subject again removes what is left, unreadable): %w", err)
	}
	rc.Erased = append(rc.Erased, late...)
	rc.SweepAuditSeq = sweepSeq
	if err := v.signReceipt(&rc); err != nil {
		return Receipt{}, err
	}
	return rc, nil
}

// eraseLateRecord deletes the record (domain, token) if it is one of subject fp's, decrypting
// it with the subject's erased key wrapped (nil: unknown) to find its index entry. erased
// reports whether there was such a record. Step 1 and the sweep both use it.
func (v *Vault) eraseLateRecord(tx store.Tx, fp, wrapped []byte, domain, token string) (erased bool, err error) {
	b := tx.Get(bucketRecords, recordKey(domain, token))
	if b == nil || isTombstone(b) {
		return false, nil
	}
	r, err := unmarshalRecord(b)
	if err != nil || !bytes.Equal(r.subject, fp) {
		return false, nil
	}
	value := v.decryptErased(fp, wrapped, r, domain, token)
	defer clear(value)
	return true, v.deleteRecord(tx, domain, token, r, value)
}

// sweepTimeout bounds the sweep after an erasure's first step, whatever the caller's deadline.
const sweepTimeout = 30 * time.Second

// sweepSubject is step 2 of eraseSubjectFP: it deletes the records of subject fp sealed under
// the erased key (wrapped, read by step 1: a tokenize committed them while step 1 waited for
// it; decrypting them finds their index entries) and the subject rows that point at no record,
// and returns the fingerprints of the tokens it erased. A record that opens under neither the
// erased key nor the subject's current one is left alone and logged. It changes nothing, and
// writes no audit event, when there is nothing to sweep.
func (v *Vault) sweepSubject(ctx context.Context, fp, wrapped []byte) ([]string, uint64, error) {
	type late struct {
		row           []byte
		domain, token string
		old           []byte // nil: the row points at no record
	}
	var found []late
	if err := v.store.View(ctx, func(tx store.Tx) error {
		found = found[:0]
		return scanSubject(tx, fp, func(k []byte, domain, token string, rr rawRecord) error {
			if rr.rec == nil {
				found = append(found, late{row: bytes.Clone(k)})
				return nil
			}
			r, err := unmarshalRecord(rr.rec)
			if err != nil || !bytes.Equal(r.subject, fp) {
				return nil // not this subject's
			}
			pt := v.decryptErased(fp, wrapped, r, domain, token)
			if pt == nil {
				if !v.opensUnderSubject(rr, r, domain, token) {
					v.log.Warn("a record of an erased subject opens under neither the erased key nor the current one; left in place", slog.String("domain", domain))
				}
				return nil // sealed under a key made after the erasure
			}
			clear(pt)
			found = append(found, late{row: bytes.Clone(k), domain: domain, token: token, old: rr.rec})
			return nil
		})
	}); err != nil || len(found) == 0 {
		return nil, 0, err
	}
	var erased []string
	ev := v.newEvent(ctx, "EraseSubject")
	ev.Target = "subject " + hex.EncodeToString(fp)
	seq, err := v.updateAudited(ctx, ev, func(tx store.Tx, e *AuditEvent) error {
		erased = erased[:0]
		var ds []string
		for _, l := range found {
			if l.old != nil {
				if !bytes.Equal(tx.Get(bucketRecords, recordKey(l.domain, l.token)), l.old) {
					continue // changed since the sweep read it: not ours to judge now
				}
				if _, err := v.eraseLateRecord(tx, fp, wrapped, l.domain, l.token); err != nil {
					return err
				}
				erased = append(erased, TokenFingerprint(l.domain, l.token))
				ds = append(ds, l.domain)
			}
			if err := tx.Delete(bucketSubjects, l.row); err != nil {
				return err
			}
		}
		e.Tokens, e.Allowed, e.Domains, e.Outcome = erased, len(erased), uniqueSorted(ds), OutcomeAllowed
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return erased, seq, nil
}

// scanSubject calls fn with each subject row of subject fp (k, the row's key), its domain and
// token, and the record it names (rr.rec nil: none, or a tombstone).
func scanSubject(tx store.Tx, fp []byte, fn func(k []byte, domain, token string, rr rawRecord) error) error {
	return tx.Scan(bucketSubjects, fp, nil, func(k, _ []byte) error {
		domain, token, ok := splitRecordKey(k[len(fp):])
		if !ok {
			return nil
		}
		return fn(k, domain, token, readRecord(tx, domain, token))
	})
}

// opensUnderSubject reports whether a subject record decrypts under its subject's current key,
// without logging a failure (the sweep expects some).
func (v *Vault) opensUnderSubject(rr rawRecord, r record, domain, token string) bool {
	if rr.subjectKey == nil {
		return false
	}
	a, err := v.subjectAEAD(r.subject, rr.subjectKey)
	if err != nil {
		return false
	}
	pt, err := a.Decrypt(r.ciphertext, recordAD(domain, r.template, token))
	clear(pt)
	return err == nil
}

// erasureEntry is one line of the erasure log: a subject (fingerprint) or a token.
type erasureEntry struct {
	Subject string `json:"subject,omitempty"`
	// Key is the id (hex) of the subject key the erasure destroyed; empty for a key made
	// before keys had ids, and in entries written before then.
	Key    string    `json:"key,omitempty"`
	Domain string    `json:"domain,omitempty"`
	Token  string    `json:"token,omitempty"`
	Time   time.Time `json:"time"`
}

// appendErasureLog appends erasures to the erasure log (fsynced). No log configured: no-op.
func (v *Vault) appendErasureLog(entries ...erasureEntry) error {
	if v.erasureLog == "" || len(entries) == 0 {
		return nil
	}
	var buf bytes.Buffer
	now := v.now().UTC()
	for _, e := range entries {
		e.Time = now
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(append(line, '\n'))
	}
	_, err := store.WriteFile(v.erasureLog, os.O_APPEND, &buf)
	return err
}

// applyErasureLog re-applies the erasure log: subjects and tokens erased after a backup was
// taken are erased again in the restored store.
// First it removes the erasing marks this replica left (erasing.go).
func (v *Vault) applyErasureLog(ctx context.Context) error {
	if err := v.dropOwnErasingMarks(ctx); err != nil {
		return err
	}
	if v.erasureLog == "" {
		return nil
	}
	f, err := os.Open(v.erasureLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	ctx = WithRequest(ctx, RequestInfo{Method: "ErasureLogReplay"})
	sc := bufio.NewScanner(f)
	subjects, tokens := 0, 0
	for sc.Scan() {
		var e erasureEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		if e.Token != "" {
			var present bool
			if err := v.store.View(ctx, func(tx store.Tx) error {
				present = readRecord(tx, DomainOr(e.Domain), e.Token).rec != nil
				return nil
			}); err != nil {
				return err
			}
			if present {
				if _, _, err := v.deleteTokens(ctx, []TokenRef{{Domain: e.Domain, Token: e.Token}}, false); err != nil {
					return err
				}
				tokens++
			}
			continue
		}
		fp, err := hex.DecodeString(e.Subject)
		if err != nil || len(fp) == 0 {
			continue
		}
		var present bool
		if err := v.store.View(ctx, func(tx store.Tx) error {
			if tx.Get(bucketSubjectKeys, fp) != nil {
				present = erasedKey(e, tx.Get(bucketSubjectKeyIDs, fp))
				return nil
			}
			// No key: subject rows left (unreadable) are swept.
			return tx.Scan(bucketSubjects, fp, nil, func(_, _ []byte) error { present = true; return store.ErrStopScan })
		}); err != nil {
			return err
		}
		if present {
			if _, err := v.eraseSubjectFP(ctx, fp, false); err != nil {
				return err
			}
			subjects++
		}
	}
	if subjects+tokens > 0 {
		v.log.Warn("re-applied erasures from the erasure log (restored from an older backup?)", slog.Int("subjects", subjects), slog.Int("tokens", tokens))
	}
	return sc.Err()
}

// erasedKey reports whether the subject key whose id is id (nil: a key made before keys had
// ids) is the one erasure entry e destroyed, so that replaying e must destroy it again. An
// entry names the id of the key it destroyed; one without (written before ids, or for an
// id-less key) destroyed an id-less key. Every key with an id was made after every entry
// without one, so such an entry never applies to it: a key the subject was given after its
// erasure survives every replay.
func erasedKey(e erasureEntry, id []byte) bool {
	if e.Key == "" {
		return id == nil
	}
	return id != nil && e.Key == hex.EncodeToString(id)
}

// PurgeExpired deletes tokens whose TTL has passed. Expired tokens already answer not found;
// this reclaims their space.
func (v *Vault) PurgeExpired(ctx context.Context) (int, error) {
	now := v.now().Unix()
	total := 0
	for {
		type del struct {
			ekey          []byte
			domain, token string
			rr            rawRecord
		}
		var dels []del
		if err := v.store.View(ctx, func(tx store.Tx) error {
			dels = dels[:0]
			return tx.Scan(bucketExpiry, nil, nil, func(k, _ []byte) error {
				if len(k) < 9 || int64(binary.BigEndian.Uint64(k[:8])) > now || len(dels) >= 1000 {
					return store.ErrStopScan
				}
				domain, token, _ := splitRecordKey(k[8:])
				dels = append(dels, del{ekey: bytes.Clone(k), domain: domain, token: token, rr: readRecord(tx, domain, token)})
				return nil
			})
		}); err != nil {
			return total, err
		}
		if len(dels) == 0 {
			return total, nil
		}
		values := make([][]byte, len(dels))
		recs := make([]record, len(dels))
		for i, d := range dels {
			if d.rr.rec == nil {
				continue
			}
			if r, err := unmarshalRecord(d.rr.rec); err == nil {
				recs[i] = r
				values[i], _ = v.openRecord(d.rr, r, d.domain, d.token)
			}
		}
		ev := v.newEvent(WithRequest(ctx, RequestInfo{Method: "PurgeExpired"}), "PurgeExpired")
		_, err := v.updateAudited(ctx, ev, func(tx store.Tx, e *AuditEvent) error {
			n := 0
			for i, d := range dels {
				if d.rr.rec != nil && bytes.Equal(tx.Get(bucketRecords, recordKey(d.domain, d.token)), d.rr.rec) {
					if err := v.deleteRecord(tx, d.domain, d.token, recs[i], values[i]); err != nil {
						return err
					}
					n++
				}
				if err := tx.Delete(bucketExpiry, d.ekey); err != nil {
					return err
				}
			}
			e.Items, e.Allowed, e.Outcome = n, n, OutcomeAllowed
			return nil
		})
		for _, val := range values {
			clear(val)
		}
		if err != nil {
			return total, err
		}
		total += len(dels)
	}
}

// Backup writes a consistent online snapshot of the whole store to w. It holds no key
// material in clear: the keysets in it are wrapped by the KEK, which the restored vault needs.
// The backup is audited before it starts.
func (v *Vault) Backup(ctx context.Context, w io.Writer) (int64, error) {
	sn, ok := v.base.(store.Snapshotter)
	if !ok {
		return 0, ErrNoSnapshot
	}
	ev := v.newEvent(ctx, "Backup")
	ev.Outcome = OutcomeAllowed
	if err := v.Audit(ctx, ev); err != nil {
		return 0, err
	}
	return sn.Snapshot(ctx, w)
}
