package vault

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/fpe"
	"github.com/tokenvault/tokenvault/crypto/keyring"
	"github.com/tokenvault/tokenvault/vault/store"
)

// domainRE is the syntax of token domain names (the API validates the same rule).
var domainRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// MaxBatch is the most items a Tokenize or Detokenize call may carry.
const MaxBatch = 10000

// DefaultDomain is the domain of items that name none.
const DefaultDomain = "default"

// Config assembles a Vault.
type Config struct {
	// Store holds everything; the vault does not close it.
	Store store.Store
	// KEK wraps the keyring stored in Store.
	KEK tink.AEAD
	// Logger receives operational events; never values, tokens or secrets. Nil discards.
	Logger *slog.Logger
	// Rand is the randomness source for random tokens and secrets; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// ErasureLog is a file outside the store (beside the KEK) where subject erasures and
	// deleted tokens are appended, and from which Open re-applies them, so that a restored
	// backup is erased again.
	// Empty disables it.
	ErasureLog string
	// ReplicaID names this process among the replicas sharing one Store (PostgreSQL): it
	// keys the replica's audit chains (ID, ID/1, …: one per audited write in flight), its
	// heartbeat and the leases it holds. Empty for the single-process bbolt store. At most
	// 128 bytes of printable ASCII, without spaces or '/'. Two processes that share an ID stay correct (their writes
	// serialize in the store) but contend.
	ReplicaID string
}

// Vault is the tokenization core. It is safe for concurrent use.
type Vault struct {
	store store.Store // fencedStore over base
	base  store.Store // Config.Store
	kr    atomic.Pointer[keyring.Keyring]
	krVer atomic.Uint64 // the stored keyring version kr was loaded at (keys.go)
	krMu  sync.Mutex    // orders replacements of kr and krVer
	kek   tink.AEAD     // under kekMu
	kekMu sync.RWMutex
	keyMu sync.Mutex // serialises key operations
	// sealMu orders writes of ciphertexts against rotations: writers that encrypt under the
	// primary data key hold it shared from encryption until their commit; a rotation holds it
	// exclusively while it switches the primary, so no record sealed under the old primary
	// can commit after the rewrap has started.
	sealMu sync.RWMutex
	wake   chan struct{}
	cl     cluster // heartbeats and the background lease (cluster.go)

	subjects   subjectCache
	credCache  credCache // verified-credential cache (credcache.go)
	erasureLog string
	replica    string // Config.ReplicaID
	// incarnation is random, per Open: it tells this process's heartbeat row and erasing
	// entries from those of an earlier or later process under the same ReplicaID.
	incarnation string
	log         *slog.Logger
	rand        io.Reader
	now         func() time.Time

	ciphers   sync.Map // cipherKey → *fpe.FF1
	hmacKeys  sync.Map // string → []byte
	templates sync.Map // custom template name → template.Template
	tmplMu    sync.Mutex
	lanes     auditLanes // this replica's audit chains (audit.go)
	reads     sync.Pool  // *readScratch, for Detokenize (scope.go)
}

// Open loads the vault's keyring from cfg.Store, creating one on first use. It returns ErrKEK
// when the KEK cannot unwrap the stored keyring.
func Open(ctx context.Context, cfg Config) (*Vault, error) {
	if cfg.Store == nil || cfg.KEK == nil {
		return nil, fmt.Errorf("vault: Config needs a Store and a KEK")
	}
	if err := validReplicaID(cfg.ReplicaID); err != nil {
		return nil, err
	}
	v := &Vault{store: fencedStore{cfg.Store}, base: cfg.Store, log: cfg.Logger, rand: cfg.Rand, now: cfg.Now, wake: make(chan struct{}, 1), erasureLog: cfg.ErasureLog, replica: cfg.ReplicaID}
	inc := make([]byte, 8)
	_, _ = rand.Read(inc) // crypto/rand.Read never fails (Go 1.24+)
	v.incarnation = hex.EncodeToString(inc)
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.rand == nil {
		v.rand = rand.Reader
	}
	if v.now == nil {
		v.now = time.Now
	}
	schema, err := checkSchema(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	existed, err := Initialized(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	kr, err := loadKeyring(ctx, cfg.Store, cfg.KEK)
	if err != nil {
		return nil, err
	}
	v.kr.Store(kr)
	v.kek = cfg.KEK
	v.cl.beat = make(chan struct{}, 1)
	if err := v.initKeyring(ctx); err != nil {
		return nil, err
	}
	if err := v.loadTemplates(ctx); err != nil {
		return nil, err
	}
	if err := v.prepareAudit(ctx); err != nil {
		return nil, err
	}
	if err := v.initKeyMeta(ctx); err != nil {
		return nil, err
	}
	if err := v.migrate(ctx, schema, existed); err != nil {
		return nil, err
	}
	if err := v.applyErasureLog(ctx); err != nil {
		return nil, fmt.Errorf("vault: re-applying the erasure log: %w", err)
	}
	return v, nil
}

func loadKeyring(ctx context.Context, s store.Store, kek tink.AEAD) (*keyring.Keyring, error) {
	var blob []byte
	if err := s.View(ctx, func(tx store.Tx) error {
		if b := tx.Get(bucketMeta, metaKeyring); b != nil {
			blob = append([]byte(nil), b...)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("vault: reading keyring: %w", err)
	}
	if blob != nil {
		kr, err := keyring.Unwrap(blob, kek)
		if err != nil {
			return nil, ErrKEK
		}
		return kr, nil
	}
	kr, err := keyring.New()
	if err != nil {
		return nil, err
	}
	fresh, err := kr.Wrap(kek)
	if err != nil {
		return nil, err
	}
	var stored []byte
	if err := s.Update(ctx, func(tx store.Tx) error {
		stored = nil
		if b := tx.Get(bucketMeta, metaKeyring); b != nil {
			stored = append([]byte(nil), b...) // someone else initialised it first
			return nil
		}
		return tx.Put(bucketMeta, metaKeyring, fresh)
	}); err != nil {
		return nil, fmt.Errorf("vault: storing keyring: %w", err)
	}
	if stored != nil {
		kr, err := keyring.Unwrap(stored, kek)
		if err != nil {
			return nil, ErrKEK
		}
		return kr, nil
	}
	return kr, nil
}

// Now returns the vault's clock (Config.Now): the server times console sessions with it, so
// tests that move the clock move them too.
func (v *Vault) Now() time.Time { return v.now() }

// keyring returns the current keyring. Key operations replace it as a whole.
func (v *Vault) keyring() *keyring.Keyring { return v.kr.Load() }

// cipherKey names one cached FF1 cipher (a comparable struct: no allocation per lookup).
type cipherKey struct {
	domain, template, alphabet string
	length                     int
}

// tokenKeys implements template.Keys for one (domain, template).
type tokenKeys struct {
	v                *Vault
	domain, template string
}

// FF1 returns the FF1 cipher for this domain, template, alphabet and length, deriving and
// caching it on first use. Separate keys per length and alphabet avoid related-domain
// attacks on FF1.
func (k tokenKeys) FF1(alphabet string, length int) (*fpe.FF1, error) {
	ck := cipherKey{k.domain, k.template, alphabet, length}
	if c, ok := k.v.ciphers.Load(ck); ok {
		return c.(*fpe.FF1), nil
	}
	key, err := k.v.keyring().Derive("ff1", k.domain, k.template, alphabet, strconv.Itoa(length))
	if err != nil {
		return nil, err
	}
	c, err := fpe.NewFF1WithAlphabet(key, alphabet)
	if err != nil {
		return nil, err
	}
	actual, _ := k.v.ciphers.LoadOrStore(ck, c)
	return actual.(*fpe.FF1), nil
}

// hmacKey returns the cached derived key for purpose and parts.
func (v *Vault) hmacKey(purpose string, parts ...string) ([]byte, error) {
	ck := purpose
	for _, p := range parts {
		ck += "\x00" + p
	}
	if k, ok := v.hmacKeys.Load(ck); ok {
		return k.([]byte), nil
	}
	k, err := v.keyring().Derive(purpose, parts...)
	if err != nil {
		return nil, err
	}
	actual, _ := v.hmacKeys.LoadOrStore(ck, k)
	return actual.([]byte), nil
}

// fingerprint returns the first 16 bytes of HMAC-SHA256(key, data).
func fingerprint(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, data)
	return m.Sum(nil)[:16]
}

// initKeyMeta dates the data keys the first time a vault is opened.
func (v *Vault) initKeyMeta(ctx context.Context) error {
	return v.store.Update(ctx, func(tx store.Tx) error {
		if tx.Get(bucketMeta, metaKeyMeta) != nil {
			return nil
		}
		m := map[uint32]keyMeta{}
		for _, k := range v.keyring().DataKeys() {
			m[k.ID] = keyMeta{Created: v.now().UTC()}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return tx.Put(bucketMeta, metaKeyMeta, b)
	})
}

// Ping checks that the vault's store can be reached, for health checks: a store on a remote
// database (store.Pinger) is asked; a local store (Bolt) always answers nil. An unreachable
// database gives an error wrapping store.ErrUnavailable.
func (v *Vault) Ping(ctx context.Context) error {
	if p, ok := v.base.(store.Pinger); ok { // v.base: v.store is wrapped (fencedStore)
		return p.Ping(ctx)
	}
	return nil
}

// Initialized reports whether s already holds a vault (a keyring). A KEK must then not be
// created afresh: it would not open the existing keys.
func Initialized(ctx context.Context, s store.Store) (bool, error) {
	var ok bool
	err := s.View(ctx, func(tx store.Tx) error {
		ok = tx.Get(bucketMeta, metaKeyring) != nil
		return nil
	})
	return ok, err
}
