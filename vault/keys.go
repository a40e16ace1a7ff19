package vault

import (
	"bytes"
	"context"
	"encoding/binary"
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
	// Replicas are the replicas' heartbeats (Replicas): the rewrap starts once every live
	// one reports the primary key.
	Replicas []ReplicaInfo
}

func (v *Vault) readKeyMeta(tx store.Tx) map[uint32]keyMeta {
	m := map[uint32]keyMeta{}
	if b := tx.Get(bucketMeta, metaKeyMeta); b != nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// The keyring across replicas.
//
// Every change of the stored keyring (rotation, disable, enable, destroy, KEK rewrap) bumps
// meta "keyring_version" in its transaction, and only commits if the version is still the
// one the change started from (else the vault reloads the keyring and starts the change over):
// a replica with an old copy can never overwrite another's change. A rotation also writes meta
// "keyring_primary", the new primary's id. Every transaction that stores something sealed
// under the primary data key (Tokenize: records and subject keys; the rewrap) checks, in that
// transaction, that the primary it sealed under is still the stored one, else it reloads the
// keyring and re-runs (errKeyringStale): so no replica commits a seal under a key that another
// has replaced, and, as only non-primary keys can be disabled or destroyed, none under a
// disabled or destroyed key. On PostgreSQL the check and a concurrent rotation serialize
// (SERIALIZABLE); on bbolt they are one writer apart. Replicas reload a changed keyring at
// their next heartbeat (cluster.go), before any use of a key they do not know, and when a
// sealing transaction finds it stale.

// errKeyringStale is returned inside transactions whose keyring copy is older than the
// store's; the operation reloads the keyring and re-runs.
var errKeyringStale = errors.New("the data keys changed during the call; retry")

// maxKeyringRetries bounds the re-runs of an operation that keeps finding its keyring stale.
const maxKeyringRetries = 5

func (v *Vault) getKEK() tink.AEAD {
	v.kekMu.RLock()
	defer v.kekMu.RUnlock()
	return v.kek
}

// loadedKeyring returns the keyring and the stored keyring version it was loaded at.
func (v *Vault) loadedKeyring() (*keyring.Keyring, uint64) {
	v.krMu.Lock()
	defer v.krMu.Unlock()
	return v.keyring(), v.krVer.Load()
}

// setKeyring makes kr, loaded at version ver, the vault's keyring, unless a newer one is
// already loaded. It reports whether it did.
func (v *Vault) setKeyring(kr *keyring.Keyring, ver uint64) bool {
	v.krMu.Lock()
	defer v.krMu.Unlock()
	if ver < v.krVer.Load() {
		return false
	}
	v.kr.Store(kr)
	v.krVer.Store(ver)
	return true
}

// refreshKeyring reloads the keyring when the stored version differs from the loaded one. It
// reports whether it loaded a new keyring. When the primary changes it first waits for this
// replica's writes sealed under the old primary to finish (sealMu), so that once a replica
// reports the new primary in its heartbeat, it has nothing in flight under the old one. It
// must not be called while holding sealMu (refreshForKey, which may be, does not drain).
func (v *Vault) refreshKeyring(ctx context.Context) (bool, error) { return v.refresh(ctx, true) }

func (v *Vault) refresh(ctx context.Context, drain bool) (bool, error) {
	cur := v.krVer.Load()
	var ver uint64
	var blob []byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		ver, blob = readCounter(tx, metaKeyringVer), nil
		if ver != cur {
			blob = bytes.Clone(tx.Get(bucketMeta, metaKeyring))
		}
		return nil
	}); err != nil || blob == nil {
		return false, err
	}
	kr, err := keyring.Unwrap(blob, v.getKEK())
	if err != nil {
		return false, fmt.Errorf("%w: the stored keyring changed and no longer opens with this replica's KEK (was the KEK rewrapped on another replica? restart this one with the new KEK)", ErrKEK)
	}
	if drain && kr.PrimaryKeyID() != v.keyring().PrimaryKeyID() {
		v.sealMu.Lock()
		defer v.sealMu.Unlock()
	}
	changed := v.setKeyring(kr, ver)
	if changed {
		v.beatNow() // report the keyring now loaded
		v.kick()    // a rotation elsewhere: the lease holder's rewrap need not wait for its next pass
	}
	return changed, nil
}

// refreshForKey reloads the keyring when it does not know data key id (a key another replica
// created since this one loaded its keyring). It reports whether the keyring changed.
func (v *Vault) refreshForKey(id uint32) bool {
	for _, k := range v.keyring().DataKeys() {
		if k.ID == id {
			return false
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	changed, err := v.refresh(ctx, false)
	if err != nil {
		v.log.Error("reloading the keyring for an unknown data key failed", slog.String("error", err.Error()))
	}
	return changed
}

// initKeyring, at Open, makes sure the loaded keyring is the stored version's and that meta
// "keyring_primary" exists (stores written before it get it here).
func (v *Vault) initKeyring(ctx context.Context) error {
	v.krVer.Store(0)
	if _, err := v.refreshKeyring(ctx); err != nil {
		return err
	}
	kr, ver := v.loadedKeyring()
	var have bool
	if err := v.store.View(ctx, func(tx store.Tx) error {
		have = tx.Get(bucketMeta, metaKeyringPrime) != nil
		return nil
	}); err != nil || have {
		return err
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		if tx.Get(bucketMeta, metaKeyringPrime) != nil || readCounter(tx, metaKeyringVer) != ver {
			return nil
		}
		return tx.Put(bucketMeta, metaKeyringPrime, primaryBytes(kr.PrimaryKeyID()))
	})
}

func primaryBytes(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

// checkPrimary returns errKeyringStale unless primary is the stored keyring's primary data
// key. Every transaction that stores what was sealed under the primary calls it.
func checkPrimary(tx store.Tx, primary uint32) error {
	// Read for share: Tokenize runs under snapshot isolation (store.WithSnapshotIsolation), where
	// a plain read would not make a rotation that commits after this transaction's snapshot
	// abort it; with the share lock, either the rotation waits for this commit (and the rewrap,
	// which starts after the rotation, finds this record) or this transaction is re-run.
	if b := store.GetForShare(tx, bucketMeta, metaKeyringPrime); len(b) == 4 && binary.BigEndian.Uint32(b) != primary {
		return errKeyringStale
	}
	return nil
}

// sealing runs op, which seals under the primary data key and stores the result in a
// transaction that calls checkPrimary(tx, primary); when that finds the keyring stale, it
// reloads the keyring and runs op again.
func (v *Vault) sealing(ctx context.Context, op func(primary uint32) error) error {
	return v.keyringRetry(ctx, true, func() error { return op(v.keyring().PrimaryKeyID()) })
}

// keyringRetry runs op again, after reloading the keyring (draining local seals when drain is
// set: see refreshKeyring), while it fails with errKeyringStale, a few times at most.
func (v *Vault) keyringRetry(ctx context.Context, drain bool, op func() error) error {
	for attempt := 0; ; attempt++ {
		err := op()
		if !errors.Is(err, errKeyringStale) || attempt == maxKeyringRetries {
			return err
		}
		if _, err := v.refresh(ctx, drain); err != nil {
			return err
		}
	}
}

// putKeyring stores blob, the keyring wrapped, in tx if the stored keyring version is still
// ver (else errKeyringStale), bumps the version and notes it in this replica's heartbeat row.
// It returns the new version.
func (v *Vault) putKeyring(tx store.Tx, ver uint64, blob []byte, primary uint32) (uint64, error) {
	if readCounter(tx, metaKeyringVer) != ver {
		return 0, errKeyringStale
	}
	newVer, err := bumpCounter(tx, metaKeyringVer)
	if err != nil {
		return 0, err
	}
	if err := v.noteKeyring(tx, newVer, primary); err != nil {
		return 0, err
	}
	return newVer, tx.Put(bucketMeta, metaKeyring, blob)
}

// changeKeyring changes the keyring: change gets an independent copy of the loaded keyring
// to change, and returns the audit event's target. The copy is stored (wrapped), with extra's
// writes, in one audited transaction that commits only if the stored keyring is still the one
// copied (else the keyring is reloaded and the change starts over), then becomes the vault's
// keyring. On failure the vault keeps its previous keyring: memory never runs ahead of the
// store.
func (v *Vault) changeKeyring(ctx context.Context, method string, change func(kr *keyring.Keyring) (string, error), extra func(tx store.Tx, kr *keyring.Keyring) error) error {
	// No drain on reload: a rotation holds sealMu already.
	return v.keyringRetry(ctx, false, func() error {
		cur, ver := v.loadedKeyring()
		kek := v.getKEK()
		blob, err := cur.Wrap(kek)
		if err != nil {
			return err
		}
		kr, err := keyring.Unwrap(blob, kek) // an independent copy
		if err != nil {
			return err
		}
		target, err := change(kr)
		if err != nil {
			return err
		}
		if blob, err = kr.Wrap(kek); err != nil {
			return err
		}
		ev := v.newEvent(ctx, method)
		ev.Target, ev.Outcome = target, OutcomeAllowed
		var newVer uint64
		if _, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
			var err error
			if newVer, err = v.putKeyring(tx, ver, blob, kr.PrimaryKeyID()); err != nil {
				return err
			}
			if kr.PrimaryKeyID() != cur.PrimaryKeyID() {
				// Only a rotation writes it: sealing transactions read it, and need not
				// conflict with other key changes.
				if err := tx.Put(bucketMeta, metaKeyringPrime, primaryBytes(kr.PrimaryKeyID())); err != nil {
					return err
				}
			}
			if extra == nil {
				return nil
			}
			return extra(tx, kr)
		}); err != nil {
			return err
		}
		v.setKeyring(kr, newVer)
		v.beatNow()
		return nil
	})
}

// RotateDataKey adds a new primary data key; new writes use it at once and the background
// rewrap moves older records to it. It returns the new key's id.
func (v *Vault) RotateDataKey(ctx context.Context) (uint32, error) {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	now := v.now().UTC()
	v.sealMu.Lock() // wait for this replica's writes sealed under the old primary to commit
	defer v.sealMu.Unlock()
	var id uint32
	err := v.changeKeyring(ctx, "RotateDataKey", func(kr *keyring.Keyring) (string, error) {
		var err error
		id, err = kr.Rotate()
		return fmt.Sprintf("data key %d", id), err
	}, func(tx store.Tx, _ *keyring.Keyring) error {
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
	v.log.Info("rotated the data key; rewrap starts once every live replica uses it", slog.Uint64("key_id", uint64(id)))
	v.kick()
	return id, nil
}

// RewrapKEK re-encrypts the stored keysets under newKEK: instant, whatever the store's size.
// The vault keeps serving; from then on only newKEK opens it.
func (v *Vault) RewrapKEK(ctx context.Context, newKEK tink.AEAD) error {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	return v.keyringRetry(ctx, false, func() error {
		kr, ver := v.loadedKeyring()
		blob, err := kr.Wrap(newKEK)
		if err != nil {
			return err
		}
		ev := v.newEvent(ctx, "RewrapKEK")
		ev.Target, ev.Outcome = "kek", OutcomeAllowed
		var newVer uint64
		if _, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) (err error) {
			newVer, err = v.putKeyring(tx, ver, blob, kr.PrimaryKeyID())
			return err
		}); err != nil {
			return err
		}
		v.kekMu.Lock()
		v.kek = newKEK
		v.kekMu.Unlock()
		v.setKeyring(kr, newVer)
		return nil
	})
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
	var blob []byte
	// One snapshot: counts read apart from the rewrap state would count a batch committed in
	// between twice (rewrapped + remaining > total).
	if err := v.store.View(ctx, func(tx store.Tx) (err error) {
		meta = v.readKeyMeta(tx)
		blob = bytes.Clone(tx.Get(bucketMeta, metaKeyring))
		rw = rewrapState{}
		if b := tx.Get(bucketMeta, metaRewrap); b != nil {
			_ = json.Unmarshal(b, &rw)
		}
		counts, total, err = countByKeyTx(tx)
		return err
	}); err != nil {
		return st, err
	}
	// The stored keyring, not this replica's copy: a replica that has not reloaded a rotation
	// made on another yet (it does at its next heartbeat) reports the same keys as the others.
	kr := v.keyring()
	if blob != nil {
		stored, err := keyring.Unwrap(blob, v.getKEK())
		if err != nil {
			return st, fmt.Errorf("%w: the stored keyring does not open with this replica's KEK", ErrKEK)
		}
		kr = stored
	}
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
	var err error
	st.Replicas, err = v.Replicas(ctx)
	return st, err
}

// DisableDataKey disables a key that protects no record and is no live replica's primary.
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

// keyProtects returns ErrKeyInUse when key id protects records. It counts in a read-write
// transaction that writes nothing: on PostgreSQL a SERIALIZABLE one, so that a transaction
// that sealed under id while it was primary (it read the primary a rotation has replaced
// since) and commits after this count began is aborted rather than missed, and re-run under
// the current primary. (On bbolt the count holds up writes for its duration.)
func (v *Vault) keyProtects(ctx context.Context, id uint32) error {
	var n uint64
	if err := v.store.Update(ctx, func(tx store.Tx) error {
		counts, _, err := countByKeyTx(tx)
		n = counts[id]
		return err
	}); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: data key %d protects %d records", ErrKeyInUse, id, n)
	}
	return nil
}

// primaryElsewhere returns ErrKeyState when key id is the primary data key of a live replica
// (one that has not loaded the keyring that replaced it yet).
func (v *Vault) primaryElsewhere(tx store.Tx, id uint32) error {
	live, err := liveReplicas(tx, v.now())
	if err != nil {
		return err
	}
	for _, r := range live {
		if r.PrimaryKeyID == id && r.ID != v.replicaID() {
			return fmt.Errorf("%w: data key %d is still the primary key of replica %q, which has not loaded the new keyring yet; retry in a few seconds", ErrKeyState, id, r.ID)
		}
	}
	return nil
}

func (v *Vault) changeKey(ctx context.Context, id uint32, method string, change func(*keyring.Keyring) error, extra func(store.Tx) error) error {
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	retiring := method != "EnableDataKey"
	if retiring && id != v.keyring().PrimaryKeyID() {
		if err := v.keyProtects(ctx, id); err != nil {
			return err
		}
	}
	return v.changeKeyring(ctx, method, func(kr *keyring.Keyring) (string, error) {
		if retiring && id == kr.PrimaryKeyID() {
			// Say the real reason first: the primary is refused whatever it protects.
			return "", fmt.Errorf("%w: %v", ErrKeyState, keyring.ErrPrimaryKey)
		}
		if err := change(kr); err != nil {
			switch {
			case errors.Is(err, keyring.ErrUnknownKey):
				return "", ErrNoSuchKey
			case errors.Is(err, keyring.ErrPrimaryKey), errors.Is(err, keyring.ErrKeyEnabled):
				return "", fmt.Errorf("%w: %v", ErrKeyState, err)
			}
			return "", err
		}
		return fmt.Sprintf("data key %d", id), nil
	}, func(tx store.Tx, _ *keyring.Keyring) error {
		if retiring {
			if err := v.primaryElsewhere(tx, id); err != nil {
				return err
			}
		}
		if extra == nil {
			return nil
		}
		return extra(tx)
	})
}

// rewrapBatchSize and rewrapPause throttle the rewrap so that live traffic keeps its latency:
// each batch is one group commit shared with live writes, then the rewrap yields.
const (
	rewrapBatchSize = 256
	rewrapPause     = 20 * time.Millisecond
)

// errRewrapWaiting is returned by rewrapStep while a live replica still seals under an older
// primary: records it writes would land behind the rewrap.
var errRewrapWaiting = errors.New("the rewrap waits for every live replica to use the new primary key")

// rewrapStep processes one batch. It returns true when the rewrap is finished (or idle), and
// errRewrapWaiting, doing nothing, until every live replica reports the current primary.
func (v *Vault) rewrapStep(ctx context.Context) (bool, error) {
	if _, err := v.refreshKeyring(ctx); err != nil {
		return false, err
	}
	var rw rewrapState
	var behind []string
	kr := v.keyring()
	primary := kr.PrimaryKeyID()
	if err := v.store.View(ctx, func(tx store.Tx) error {
		rw, behind = rewrapState{}, behind[:0]
		live, err := liveReplicas(tx, v.now())
		if err != nil {
			return err
		}
		for _, r := range live {
			if r.PrimaryKeyID != primary && r.ID != v.replicaID() {
				behind = append(behind, r.ID)
			}
		}
		if b := tx.Get(bucketMeta, metaRewrap); b != nil {
			return json.Unmarshal(b, &rw)
		}
		rw.Done = true
		return nil
	}); err != nil {
		return false, err
	}
	if !rw.Done && len(behind) > 0 {
		return false, fmt.Errorf("%w (replicas %v)", errRewrapWaiting, behind)
	}
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
		if checkPrimary(tx, primary) != nil {
			return errSkipAudit // rotated since this step began: the next step starts over
		}
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
