package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/internal/testkek"
	"github.com/tokenvault/tokenvault/vault/store"
)

// The vault tests' helpers: a KEK, a settable clock, and openTest, which opens a vault over a
// real bbolt file with options.

func newKEK(t testing.TB) tink.AEAD { return testkek.New(t) }

// clock is an injectable, settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock returns a clock set to t.
func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testConfig is what the options of openTest set.
type testConfig struct {
	path       string // default: v.db in a fresh temporary directory
	kek        tink.AEAD
	clock      *clock
	storeOpts  store.Options
	wrap       func(store.Store) store.Store
	erasureLog string
}

type testOption func(*testConfig)

// atPath opens (or reopens) the store file at path.
func atPath(path string) testOption { return func(c *testConfig) { c.path = path } }

// withKEK uses kek (to reopen a vault, or open a restored one); default: a new KEK.
func withKEK(kek tink.AEAD) testOption { return func(c *testConfig) { c.kek = kek } }

// withClock gives the vault clk's time.
func withClock(clk *clock) testOption { return func(c *testConfig) { c.clock = clk } }

// withStoreOptions opens the store with o.
func withStoreOptions(o store.Options) testOption { return func(c *testConfig) { c.storeOpts = o } }

// wrapStore puts wrap's store (a fault injector) between the vault and the bbolt store.
func wrapStore(wrap func(store.Store) store.Store) testOption {
	return func(c *testConfig) { c.wrap = wrap }
}

// withErasureLog gives the vault an erasure log.
func withErasureLog(path string) testOption { return func(c *testConfig) { c.erasureLog = path } }

// openTest opens a vault over a real bbolt file. At cleanup the store is checked (unless the
// test closed it) and closed. To reopen, close the store and call openTest again atPath with
// the same KEK.
func openTest(t testing.TB, opts ...testOption) (*Vault, *store.Bolt) {
	t.Helper()
	var c testConfig
	for _, o := range opts {
		o(&c)
	}
	if c.path == "" {
		c.path = filepath.Join(t.TempDir(), "v.db")
	}
	if c.kek == nil {
		c.kek = newKEK(t)
	}
	st := openStore(t, c.path, c.storeOpts)
	cfg := Config{Store: st, KEK: c.kek, ErasureLog: c.erasureLog}
	if c.wrap != nil {
		cfg.Store = c.wrap(st)
	}
	if c.clock != nil {
		cfg.Now = c.clock.now
	}
	v, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v, st
}

// openStore opens the bbolt store at path, to be checked and closed at cleanup.
func openStore(t testing.TB, path string, o store.Options) *store.Bolt {
	t.Helper()
	st, err := store.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("store check: %v", err)
		}
		st.Close()
	})
	return st
}

// openClock opens a vault whose clock starts at 2026-01-01 12:00 UTC.
func openClock(t *testing.T) (*Vault, *clock, *store.Bolt) {
	clk := newClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	v, st := openTest(t, withClock(clk))
	return v, clk, st
}

// tokenizeValues tokenizes n distinct opaque values, "value-0" on.
func tokenizeValues(t testing.TB, v *Vault, n int) {
	t.Helper()
	items := make([]TokenizeItem, n)
	for i := range items {
		items[i] = TokenizeItem{Value: fmt.Sprintf("value-%d", i), Template: "opaque"}
	}
	if _, err := v.Tokenize(context.Background(), items); err != nil {
		t.Fatal(err)
	}
}
