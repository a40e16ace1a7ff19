package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/keyring"
	"github.com/tokenvault/tokenvault/vault/store"
)

// Key lifecycle.
//
// Data keys (AES-256-GCM, in the keyring's data keyset) encrypt originals. Rotation adds a new
// primary; a background rewrap then re-encrypts every record still under an older key, in
// small batches that share commits with live traffic, resumably (its cursor is stored). A key
// that protects no record can be disabled, then destroyed. Token keys are derived from the
// token keyset, which never rotates: tokens never change.

// keyMeta is what the vault remembers of each data key beyond the keyset.
type keyMeta struct {
	Created   time.Time `json:"created"`
	Destroyed time.Time `json:"destroyed,omitzero"`
}

// rewrapState is the stored progress of the background rewrap.
type rewrapState struct {
	Target    uint32    `json:"target"` // the primary key records move to
	Phase     int       `json:"phase"`  // 0: records, 1: subject keys
	Cursor    []byte    `json:"cursor"` // last key processed in the phase's bucket
	Done      bool      `json:"done"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished,omitzero"`
	Rewrapped uint64    `json:"rewrapped"`
	Passes    int       `json:"passes,omitempty"` // extra passes for records that landed behind the cursor
}

// KeyInfo describes one data key for keys status.
type KeyInfo struct {
	ID      uint32
	State   string // primary, enabled, disabled, destroyed
	Created time.Time
	Records uint64 // records and subject keys it still protects
}

// KeyStatus is the key lifecycle's observable state.
type KeyStatus struct {
	Keys   []KeyInfo
	Rewrap struct {
		Target    uint32
		Done      bool
		Rewrapped uint64
		Started   time.Time
		Finished  time.Time
		Remaining uint64 // records not yet under the primary key
	}
	Records uint64
}

func (v *Vault) readKeyMeta(tx store.Tx) map[uint32]keyMeta {
	m := map[uint32]keyMeta{}
	if b := tx.Get(bucketMeta, metaKeyMeta); b != nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// commitKeyring stores kr (wrapped) and runs extra (if any) in the same audited transaction,
// then makes kr the vault's keyring. On failure the vault keeps its previous keyring: memory
// never runs ahead of the store.
func (v *Vault) commitKeyring(ctx context.Context, kr *keyring.Keyring, ev AuditEvent, extra func(tx store.Tx) error) error {
	blob, err := kr.Wrap(v.kek)
	if err != nil {
		return err
	}
	if _, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		if err := tx.Put(bucketMeta, metaKeyring, blob); err != nil {
			return err
		}
		if extra == nil {
			return nil
		}
		return extra(tx)
	}); err != nil {
		return err
	}
	v.kr.Store(kr)
	return nil
}

// cloneKeyring returns an independent copy of the current keyring to change.
func (v *Vault) cloneKeyring() (*keyring.Keyring, error) {
	blob, err := v.keyring().Wrap(v.kek)
	if err != nil {
		return nil, err
	}
	return keyring.Unwrap(blob, v.kek)
}

// RotateDataKey adds a new primary data key; new writes use it at once and the background
// rewrap moves older records to it. It returns the new key's id.
func (v *Vault) RotateDataKey(ctx context.Context) (uint32, error) {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	kr, err := v.cloneKeyring()
	if err != nil {
		return 0, err
	}
	id, err := kr.Rotate()
	if err != nil {
		return 0, err
	}
	now := v.now().UTC()
	ev := v.newEvent(ctx, "RotateDataKey")
	ev.Target, ev.Outcome = fmt.Sprintf("data key %d", id), OutcomeAllowed
	v.sealMu.Lock() // wait for writes sealed under the old primary to commit
	defer v.sealMu.Unlock()
	err = v.commitKeyring(ctx, kr, ev, func(tx store.Tx) error {
		m := v.readKeyMeta(tx)
		m[id] = keyMeta{Created: now}
		mb, _ := json.Marshal(m)
		if err := tx.Put(bucketMeta, metaKeyMeta, mb); err != nil {
			return err
		}
		rb, _ := json.Marshal(rewrapState{Target: id, Started: now})
		return tx.Put(bucketMeta, metaRewrap, rb)
	})
	if err != nil {
		return 0, err
	}
	v.log.Info("rotated the data key; rewrap starts", slog.Uint64("key_id", uint64(id)))
	v.kick()
	return id, nil
}

// RewrapKEK re-encrypts the stored keysets under newKEK: instant, whatever the store's size.
// The vault keeps serving; from then on only newKEK opens it.
func (v *Vault) RewrapKEK(ctx context.Context, newKEK tink.AEAD) error {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	blob, err := v.keyring().Wrap(newKEK)
	if err != nil {
		return err
	}
	ev := v.newEvent(ctx, "RewrapKEK")
	ev.Target, ev.Outcome = "kek", OutcomeAllowed
	if _, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		return tx.Put(bucketMeta, metaKeyring, blob)
	}); err != nil {
		return err
	}
	v.kek = newKEK
	return nil
}

// countByKey scans every record and counts them per data key id.
func (v *Vault) countByKey(ctx context.Context) (map[uint32]uint64, uint64, error) {
	var counts map[uint32]uint64
	var total uint64
	err := v.store.View(ctx, func(tx store.Tx) (err error) {
		counts, total, err = countByKeyTx(tx)
		return err
	})
	return counts, total, err
}

// countByKeyTx counts in tx the records and subject keys under each data key.
func countByKeyTx(tx store.Tx) (map[uint32]uint64, uint64, error) {
	counts := map[uint32]uint64{}
	var total uint64
	if err := tx.Scan(bucketRecords, nil, nil, func(_, val []byte) error {
		r, err := unmarshalRecord(val)
		if err != nil || r.subject != nil {
			return nil // subject records are protected by their subject key, counted below
		}
		id, _ := keyring.CiphertextKeyID(r.ciphertext)
		counts[id]++
		total++
		return nil
	}); err != nil {
		return nil, 0, err
	}
	err := tx.Scan(bucketSubjectKeys, nil, nil, func(_, val []byte) error {
		id, _ := keyring.SubjectKeyWrapID(val)
		counts[id]++
		total++
		return nil
	})
	return counts, total, err
}

// KeyStatus reports each data key's state and how many records it still protects, and the
// rewrap's progress. It scans every record.
func (v *Vault) KeyStatus(ctx context.Context) (KeyStatus, error) {
	var st KeyStatus
	var meta map[uint32]keyMeta
	var rw rewrapState
	var counts map[uint32]uint64
	var total uint64
	// One snapshot: counts read apart from the rewrap state would count a batch committed in
	// between twice (rewrapped + remaining > total).
	if err := v.store.View(ctx, func(tx store.Tx) (err error) {
		meta = v.readKeyMeta(tx)
		rw = rewrapState{}
		if b := tx.Get(bucketMeta, metaRewrap); b != nil {
			_ = json.Unmarshal(b, &rw)
		}
		counts, total, err = countByKeyTx(tx)
		return err
	}); err != nil {
		return st, err
	}
	kr := v.keyring()
	seen := map[uint32]bool{}
	for _, k := range kr.DataKeys() {
		seen[k.ID] = true
		st.Keys = append(st.Keys, KeyInfo{ID: k.ID, State: string(k.State), Created: meta[k.ID].Created, Records: counts[k.ID]})
	}
	for id, m := range meta {
		if !seen[id] && !m.Destroyed.IsZero() {
			st.Keys = append(st.Keys, KeyInfo{ID: id, State: "destroyed", Created: m.Created})
		}
	}
	sort.Slice(st.Keys, func(i, j int) bool { return st.Keys[i].Created.Before(st.Keys[j].Created) })
	st.Records = total
	st.Rewrap.Target, st.Rewrap.Done, st.Rewrap.Rewrapped = rw.Target, rw.Done, rw.Rewrapped
	st.Rewrap.Started, st.Rewrap.Finished = rw.Started, rw.Finished
	st.Rewrap.Remaining = total - counts[kr.PrimaryKeyID()]
	return st, nil
}

// DisableDataKey disables a key that protects no record.
func (v *Vault) DisableDataKey(ctx context.Context, id uint32) error {
	return v.changeKey(ctx, id, "DisableDataKey", func(kr *keyring.Keyring) error { return kr.Disable(id) }, nil)
}

// EnableDataKey re-enables a disabled key.
func (v *Vault) EnableDataKey(ctx context.Context, id uint32) error {
	return v.changeKey(ctx, id, "EnableDataKey", func(kr *keyring.Keyring) error { return kr.Enable(id) }, nil)
}

// DestroyDataKey destroys a disabled key that protects no record. It cannot be undone.
func (v *Vault) DestroyDataKey(ctx context.Context, id uint32) error {
	return v.changeKey(ctx, id, "DestroyDataKey", func(kr *keyring.Keyring) error { return kr.Destroy(id) },
		func(tx store.Tx) error {
			m := v.readKeyMeta(tx)
			km := m[id]
			km.Destroyed = v.now().UTC()
			m[id] = km
			mb, _ := json.Marshal(m)
			return tx.Put(bucketMeta, metaKeyMeta, mb)
		})
}

func (v *Vault) changeKey(ctx context.Context, id uint32, method string, change func(*keyring.Keyring) error, extra func(store.Tx) error) error {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	if method != "EnableDataKey" && id == v.keyring().PrimaryKeyID() {
		// Say the real reason first: the primary is refused whatever it protects.
		return fmt.Errorf("%w: %v", ErrKeyState, keyring.ErrPrimaryKey)
	}
	if method != "EnableDataKey" {
		counts, _, err := v.countByKey(ctx)
		if err != nil {
			return err
		}
		if counts[id] > 0 {
			return fmt.Errorf("%w: data key %d protects %d records", ErrKeyInUse, id, counts[id])
		}
	}
	kr, err := v.cloneKeyring()
	if err != nil {
		return err
	}
	if err := change(kr); err != nil {
		switch {
		case errors.Is(err, keyring.ErrUnknownKey):
			return ErrNoSuchKey
		case errors.Is(err, keyring.ErrPrimaryKey), errors.Is(err, keyring.ErrKeyEnabled):
			return fmt.Errorf("%w: %v", ErrKeyState, err)
		}
		return err
	}
	ev := v.newEvent(ctx, method)
	ev.Target, ev.Outcome = fmt.Sprintf("data key %d", id), OutcomeAllowed
	return v.commitKeyring(ctx, kr, ev, extra)
}

// rewrapBatchSize and rewrapPause throttle the rewrap so that live traffic keeps its latency:
// each batch is one group commit shared with live writes, then the rewrap yields.
const (
	rewrapBatchSize = 256
	rewrapPause     = 20 * time.Millisecond
)

// rewrapStep processes one batch. It returns true when the rewrap is finished (or idle).
func (v *Vault) rewrapStep(ctx context.Context) (bool, error) {
	var rw rewrapState
	if err := v.store.View(ctx, func(tx store.Tx) error {
		rw = rewrapState{}
		if b := tx.Get(bucketMeta, metaRewrap); b != nil {
			return json.Unmarshal(b, &rw)
		}
		rw.Done = true
		return nil
	}); err != nil {
		return false, err
	}
	kr := v.keyring()
	primary := kr.PrimaryKeyID()
	if rw.Target != primary {
		if rw.Done && rw.Target == 0 {
			return true, nil // never rotated: nothing to rewrap
		}
		// The recorded target is not the primary (a rotation raced a rewrap step): start over
		// toward the current primary. Records already under it are skipped cheaply.
		rw = rewrapState{Target: primary, Started: v.now().UTC()}
	}
	if rw.Done {
		return true, nil
	}
	type job struct{ key, old, new []byte }
	var jobs []job
	var last []byte
	scanned := 0
	start := append(append([]byte(nil), rw.Cursor...), 0)
	if rw.Cursor == nil {
		start = nil
	}
	bucket := bucketRecords
	if rw.Phase == 1 {
		bucket = bucketSubjectKeys
	}
	if err := v.store.View(ctx, func(tx store.Tx) error {
		jobs, last, scanned = jobs[:0], nil, 0
		return tx.Scan(bucket, nil, start, func(k, val []byte) error {
			if scanned >= rewrapBatchSize {
				return store.ErrStopScan
			}
			scanned++
			last = append(last[:0], k...)
			if rw.Phase == 1 {
				if id, ok := keyring.SubjectKeyWrapID(val); !ok || id != primary {
					jobs = append(jobs, job{key: bytes.Clone(k), old: bytes.Clone(val)})
				}
				return nil
			}
			r, err := unmarshalRecord(val)
			if err != nil || r.subject != nil {
				return nil
			}
			if id, ok := keyring.CiphertextKeyID(r.ciphertext); ok && id == primary {
				return nil
			}
			jobs = append(jobs, job{key: bytes.Clone(k), old: bytes.Clone(val)})
			return nil
		})
	}); err != nil {
		return false, err
	}
	for i := range jobs {
		if rw.Phase == 1 {
			nw, err := kr.RewrapSubjectKey(jobs[i].key, jobs[i].old)
			if err != nil {
				v.log.Error("rewrap: a subject key failed to unwrap; left as is")
				continue
			}
			jobs[i].new = nw
			continue
		}
		domain, token, ok := splitRecordKey(jobs[i].key)
		r, err := unmarshalRecord(jobs[i].old)
		if !ok || err != nil {
			continue
		}
		ad := recordAD(domain, r.template, token)
		pt, err := kr.Open(r.ciphertext, ad)
		if err != nil {
			v.log.Error("rewrap: a record failed to decrypt; left as is", slog.String("domain", domain))
			continue
		}
		ct, err := kr.Seal(pt, ad)
		clear(pt)
		if err != nil {
			return false, err
		}
		r.ciphertext = ct
		jobs[i].new = r.marshal()
	}
	phaseDone := scanned < rewrapBatchSize
	done := phaseDone && rw.Phase == 1
	rw.Cursor = last
	if phaseDone && !done {
		rw.Phase, rw.Cursor = 1, nil
	}
	if done && rw.Passes < 2 {
		// Before declaring victory, check that nothing is left under an old key (a record can
		// land behind the cursor); if something is, go round again (twice at most: a record
		// that cannot be decrypted stays where it is, and keys status shows it).
		counts, _, err := v.countByKey(ctx)
		if err != nil {
			return false, err
		}
		for id, n := range counts {
			if id != primary && n > 0 {
				done, rw.Phase, rw.Cursor = false, 0, nil
				rw.Passes++
				break
			}
		}
	}
	var moved uint64
	if done {
		rw.Done, rw.Finished = true, v.now().UTC()
	}
	ev := v.newEvent(ctx, "RewrapFinished")
	ev.Target, ev.Outcome = fmt.Sprintf("data key %d", rw.Target), OutcomeAllowed
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, ev *AuditEvent) error {
		moved = 0
		for _, j := range jobs {
			// A record changed since the read (erased, say) is left for the next pass.
			if j.new == nil || !bytes.Equal(tx.Get(bucket, j.key), j.old) {
				continue
			}
			if err := tx.Put(bucket, j.key, j.new); err != nil {
				return err
			}
			moved++
		}
		// A rotation may have committed since this step read the state: never overwrite its
		// new target with this step's old one.
		var cur rewrapState
		if b := tx.Get(bucketMeta, metaRewrap); b != nil && json.Unmarshal(b, &cur) == nil && cur.Target != rw.Target && cur.Started.After(rw.Started) {
			return errSkipAudit
		}
		st := rw
		st.Rewrapped += moved
		b, _ := json.Marshal(st)
		if err := tx.Put(bucketMeta, metaRewrap, b); err != nil {
			return err
		}
		if !done {
			return errSkipAudit // only the end of a rewrap is audited
		}
		ev.Reason = fmt.Sprintf("%d records rewrapped", st.Rewrapped)
		return nil
	})
	return done, err
}
