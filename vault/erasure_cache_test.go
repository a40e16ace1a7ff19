package vault

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// eraseAfterKeyRead runs hook once, right after a View that read subject keys with GetMany
// (existingSubjectKeys) returned: an EraseSubject landing between that read and the caching.
type eraseAfterKeyRead struct {
	store.Store
	hook atomic.Pointer[func()]
}

type keyReadSpy struct {
	store.Tx
	read *bool
}

func (t keyReadSpy) GetMany(b store.Bucket, keys [][]byte) [][]byte {
	if b == bucketSubjectKeys {
		*t.read = true
	}
	return t.Tx.GetMany(b, keys)
}

func (f *eraseAfterKeyRead) View(ctx context.Context, fn func(store.Tx) error) error {
	read := false
	err := f.Store.View(ctx, func(tx store.Tx) error { read = false; return fn(keyReadSpy{Tx: tx, read: &read}) })
	if read {
		if h := f.hook.Swap(nil); h != nil {
			(*h)()
		}
	}
	return err
}

// TestErasedSubjectKeyNotRecached: a tokenize that read the subject's key just before an
// erasure committed (here the erasure runs right after that read) must not leave the erased
// key unwrapped in the cache once EraseSubject has returned.
func TestErasedSubjectKeyNotRecached(t *testing.T) {
	ctx := context.Background()
	fs := &eraseAfterKeyRead{}
	v, _ := openTest(t, wrapStore(func(s store.Store) store.Store { fs.Store = s; return fs }))
	if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "jane@example.com", Template: "email", Subject: "cust-1"}}); err != nil {
		t.Fatal(err)
	}
	fp, _ := v.subjectFingerprint("cust-1")
	var wrapped []byte
	_ = v.store.View(ctx, func(tx store.Tx) error { wrapped = bytes.Clone(tx.Get(bucketSubjectKeys, fp)); return nil })
	v.subjects.m.Clear()
	h := func() {
		if _, err := v.EraseSubject(ctx, "cust-1"); err != nil {
			t.Error(err)
		}
	}
	fs.hook.Store(&h)
	if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "cust-1"}}); err != nil {
		t.Fatal(err)
	}
	if e, ok := v.subjects.m.Load(string(fp)); ok && bytes.Equal(e.(subjectEntry).wrapped, wrapped) {
		t.Error("the erased subject key is cached (unwrapped) after EraseSubject returned")
	}
}

// TestClusterSubjectCacheClearedTwice: another replica learns of an erasure at its heartbeat
// and drops its cached subject keys then, and once more at the next heartbeat, for a read that
// fetched the erased key before the erasure and cached it after the first clear.
func TestClusterSubjectCacheClearedTwice(t *testing.T) {
	ctx := context.Background()
	rs := openReplicas(t, func() []store.Store {
		st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
		return []store.Store{st, st}
	}(), nil)
	a, b := rs.v[0], rs.v[1]
	tokenizeOne(t, a, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "cust-1"})
	fp, _ := a.subjectFingerprint("cust-1")
	var wrapped []byte
	_ = b.store.View(ctx, func(tx store.Tx) error { wrapped = bytes.Clone(tx.Get(bucketSubjectKeys, fp)); return nil })
	b.heartbeat(ctx, time.Minute)
	if _, err := a.EraseSubject(ctx, "cust-1"); err != nil {
		t.Fatal(err)
	}
	b.heartbeat(ctx, time.Minute)                         // sees the erasure: first clear
	if _, err := b.subjectAEAD(fp, wrapped); err != nil { // a read from before the erasure caches late
		t.Fatal(err)
	}
	b.heartbeat(ctx, time.Minute) // second clear
	if _, ok := b.subjects.m.Load(string(fp)); ok {
		t.Error("replica 2 still caches the erased subject key two heartbeats after the erasure")
	}
}
