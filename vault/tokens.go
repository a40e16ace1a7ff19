package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/fpe"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

// maxAttempts bounds the probing for a free token. With FF1 candidates in a space of at least
// 10^6 a collision is rare; with random candidates in small spaces it takes this many draws to
// conclude the space is (nearly) full.
const maxAttempts = 1000

// TokenizeItem is one value to tokenize.
type TokenizeItem struct {
	Value    string
	Template string
	Domain   string        // empty: DefaultDomain
	Subject  string        // optional data-subject id, for erasure
	TTL      time.Duration // optional: the token expires this long after it is issued
}

// TokenizeResult is the outcome of one item: Token, or Err (a per-item error wrapping
// ErrInvalidValue, ErrTokenSpaceExhausted or another sentinel).
type TokenizeResult struct {
	Token string
	Err   error
}

// TokenRef names one stored token: the item of Detokenize, VendorDetokenize (VendorRequest)
// and DeleteTokens.
type TokenRef struct {
	Token    string
	Domain   string // empty: DefaultDomain
	Template string // optional: the token must belong to this template
}

// DetokenizeResult is the outcome of one item: Value (with its Template), or Err wrapping
// ErrNotFound or ErrIntegrity.
type DetokenizeResult struct {
	Value    string
	Template string
	Err      error
	// Canary is set when the token is a canary: no legitimate flow reveals it, so the caller
	// must raise a critical alert. It is set whether or not the reveal was allowed.
	Canary bool
	// CanaryLabel is the label given when the canary was planted (where it was put).
	CanaryLabel string
}

// prepared is the work computed outside the store transaction for one item.
type prepared struct {
	i      int
	t      template.Template
	domain string
	value  string
	pt     []byte // the value's bytes, in the call's scratch (cleared when tokenize returns)
	idxKey []byte // blind index key: deterministic templates with random candidates only
	// pure: deterministic with FF1 candidates, a function of the value, so an existing token
	// is found by probing the candidates, without an index.
	pure    bool
	subject []byte // subject fingerprint, nil without subject
	expire  int64  // unix seconds; 0: never
	cand0   string
	rk0     []byte // recordKey(domain, cand0)
	rec0    []byte
	// The subject key seen before the transaction (nil: none yet) and its AEAD.
	subjWrapped []byte
	subjAEAD    tink.AEAD
}

// Tokenize replaces each item's value with a token. A whole-call error (ErrBatchTooLarge,
// ErrUnknownTemplate, a store failure) means nothing was stored. Otherwise every result has a
// token or a per-item error, and every token returned is durably stored.
func (v *Vault) Tokenize(ctx context.Context, items []TokenizeItem) ([]TokenizeResult, error) {
	for {
		var res []TokenizeResult
		err := v.sealing(ctx, func(primary uint32) (err error) {
			res, err = v.tokenize(ctx, items, primary)
			return err
		})
		// A subject being erased: wait for the erasure outside any transaction, then run
		// again (erasing.go).
		var se *subjectErasingError
		if !errors.As(err, &se) {
			return res, err
		}
		if err := v.awaitErasures(ctx, se.fps); err != nil {
			return nil, err
		}
	}
}

// tokenize is Tokenize with the keyring whose primary data key is primary (see sealing).
func (v *Vault) tokenize(ctx context.Context, items []TokenizeItem, primary uint32) ([]TokenizeResult, error) {
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	tmpls, err := v.resolveTemplates(ctx, items)
	if err != nil {
		return nil, err
	}
	results := make([]TokenizeResult, len(items))
	work := make([]prepared, 0, len(items))
	sc := newTokenizeScratch(items)
	defer sc.clear()
	now := v.now().Unix()
	scope := scopeOf(ctx)
	v.sealMu.RLock() // from the first encryption until the commit (see Vault.sealMu)
	defer v.sealMu.RUnlock()
	for i, it := range items {
		t := tmpls[i]
		domain := DomainOr(it.Domain)
		if !scope.allowsDomain(domain) || !scope.allowsTemplate(t.Name()) {
			results[i].Err = ErrOutOfScope // before the value is even looked at
			continue
		}
		if !utf8.ValidString(it.Value) {
			results[i].Err = fmt.Errorf("%w: %s: value is not valid UTF-8", ErrInvalidValue, t.Name())
			continue
		}
		// Check's validation, the free space and the first candidate from one plan of the
		// value. The plan is pooled scratch, released at once: holding one per item for the
		// whole call would empty the pool under concurrent calls. Further candidates, needed
		// only after a collision, plan the value again (Template.Candidate).
		pv, err := template.Prepare(t, it.Value)
		if err != nil {
			results[i].Err = err
			continue
		}
		p := prepared{i: i, t: t, domain: domain, value: it.Value}
		if err := v.prepareItem(&p, &pv, it, now, sc); err != nil {
			pv.Release()
			if isItemError(err) {
				results[i].Err = err
				continue
			}
			return nil, err
		}
		p.cand0, err = pv.Candidate(sc.keys(v, domain, t.Name()), 0, v.rand)
		pv.Release()
		if err != nil {
			results[i].Err = v.internal("candidate", err)
			continue
		}
		p.rk0 = sc.recordKey(domain, p.cand0)
		p.pt = sc.value(it.Value)
		work = append(work, p)
	}
	// The subjects' existing keys, in one read; then the first candidate's record is sealed
	// (for a subject without a key yet, only once the transaction has made one).
	if err := v.existingSubjectKeys(ctx, work); err != nil {
		return nil, err
	}
	for k := range work {
		p := &work[k]
		if p.subject == nil || p.subjAEAD != nil {
			if p.rec0, err = v.seal(p, p.cand0, now, sc); err != nil {
				return nil, err
			}
		}
	}
	// Place in key order: neighbouring inserts share B-tree pages within the commit. (The
	// items are sorted by reference: prepared is large to move.)
	order := make([]*prepared, len(work))
	for k := range work {
		order[k] = &work[k]
	}
	slices.SortFunc(order, func(a, b *prepared) int {
		if c := strings.Compare(a.domain, b.domain); c != 0 {
			return c
		}
		return strings.Compare(a.cand0, b.cand0)
	})
	base := v.newEvent(ctx, "Tokenize")
	base.Items = len(items)
	base.Domains, base.Templates = itemsScope(items)
	// Snapshot isolation is enough here (store.WithSnapshotIsolation): records and subject keys
	// are created with Insert, every key placeAll overwrites (index entries, the audit head)
	// is one it read in this transaction, and the other marks it writes (subject and expiry
	// rows) hold nothing that depends on what it read. SERIALIZABLE would make concurrent
	// batches abort each other over the index pages their random tokens share. Subject keys
	// are read with a share lock (batchReads.fetch), so an EraseSubject of a subject this call
	// seals under either waits for this commit and then finds the record in its sweep, or
	// committed first and this call re-runs without the erased key (eraseSubjectFP). A
	// subject whose erasure is under way is not locked: Tokenize waits for it (erasing.go).
	_, err = v.updateAudited(store.WithSnapshotIsolation(ctx), base, func(tx store.Tx, ev *AuditEvent) error {
		if err := checkPrimary(tx, primary); err != nil {
			return err
		}
		done, err := v.placeAll(tx, order, results, now, sc)
		if err != nil {
			return err
		}
		ev.Allowed, ev.Denied = done, len(items)-done
		ev.Outcome = outcomeOf(done, len(items))
		noteScopeDenials(ev, countOutOfScope(func(i int) error { return results[i].Err }, len(results)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing tokens: %w", err)
	}
	return results, nil
}

// prepareItem completes p from its item and pv (its value, validated and planned), before its
// candidate: its index key or purity, expiry and subject. An item error (ErrInvalidValue)
// rejects the item alone; any other error fails the call.
func (v *Vault) prepareItem(p *prepared, pv *template.Prepared, it TokenizeItem, now int64, sc *tokenizeScratch) error {
	t := p.t
	if t.Mode() == template.Deterministic {
		if fs, err := pv.FreeSpace(); err == nil && fs >= 6 {
			p.pure = true
		} else {
			k, err := sc.indexHMACKey(v, p.domain, t.Name())
			if err != nil {
				return err
			}
			p.idxKey = indexKey(p.domain, t.Name(), fingerprint(k, it.Value))
		}
	}
	if it.TTL < 0 {
		return fmt.Errorf("%w: ttl must not be negative", ErrInvalidValue)
	}
	ttl := it.TTL
	if ttl == 0 {
		ttl = t.Definition().TTL // the template's default expiry, if any
	}
	if ttl > 0 {
		p.expire = now + int64((ttl+time.Second-1)/time.Second)
	}
	if it.Subject != "" {
		var err error
		if p.subject, err = v.subjectFingerprint(it.Subject); err != nil {
			return err
		}
	}
	return nil
}

// placeAll places every item of work inside tx, in rounds: each round reads, in one GetMany
// per bucket, every key the pending items need next (their index entries, subject keys and
// candidate records; after a collision, the colliding item's next candidates), then each
// pending item is decided from what has been read, or waits for the next round if it needs a
// key not read yet. Writes go through the same cache, so an item sees the writes of the items
// decided before it, as if they were placed one after another. The number of store reads is
// therefore a small constant for a batch of any size, plus one round per further collision
// of the unluckiest item. It returns how many items got a token; like every store function it
// has no effect outside tx and results (which it reassigns on every run).
func (v *Vault) placeAll(tx store.Tx, work []*prepared, results []TokenizeResult, now int64, sc *tokenizeScratch) (int, error) {
	r := newBatchReads(tx, len(work))
	r.now = v.now()
	probes := make([]probe, len(work))
	pending := make([]int, len(work))
	for k, p := range work {
		pending[k] = k
		if p.idxKey != nil {
			r.want(bucketIndex, p.idxKey)
		}
		if p.subject != nil {
			r.want(bucketSubjectKeys, p.subject)
		}
		if p.cand0 != p.value {
			r.want(bucketRecords, p.rk0)
		}
	}
	done := 0
	if _, err := r.fetch(); err != nil {
		return 0, err
	}
	for len(pending) > 0 {
		next := pending[:0]
		for _, k := range pending {
			p := work[k]
			tok, err, ok := v.place(r, p, &probes[k], now, sc)
			if !ok {
				next = append(next, k)
				continue
			}
			results[p.i] = TokenizeResult{Token: tok, Err: err}
			if err != nil && !isItemError(err) {
				return 0, err
			}
			if err == nil {
				done++
			}
		}
		pending = next
		if len(pending) == 0 {
			break
		}
		if more, err := r.fetch(); err != nil {
			return 0, err
		} else if !more {
			return 0, errors.New("vault: tokenize: items left undecided with no key to read") // a bug: never loop
		}
	}
	return done, nil
}

// probe is one item's candidates after the first drawn so far (candidates of random
// templates are random: an item re-decided after a read must see the same ones).
type probe struct{ more []string }

// probeAhead is how many further candidates an item that collided reads in the same round.
const probeAhead = 4

// candidate returns the item's attempt-th candidate, drawing it if needed.
func (pr *probe) candidate(v *Vault, p *prepared, attempt int, sc *tokenizeScratch) (string, error) {
	if attempt == 0 {
		return p.cand0, nil
	}
	for len(pr.more) < attempt {
		c, err := p.t.Candidate(sc.keys(v, p.domain, p.t.Name()), p.value, len(pr.more)+1, v.rand)
		if err != nil {
			return "", fmt.Errorf("computing candidate token: %w", err)
		}
		pr.more = append(pr.more, c)
	}
	return pr.more[attempt-1], nil
}

// tokenizeScratch is the memory of one tokenize call shared by its items: the values' bytes
// (cleared when the call returns), and the keys and records it builds, carved from blocks
// (one allocation for many: each slice handed out is written once, then only read, so the
// store may keep it until the transaction ends), a buffer for associated data, and the last
// blind-index key and FF1 keys looked up.
type tokenizeScratch struct {
	values []byte
	blocks []byte
	block  int // the size of the next block: doubles up to scratchBlock
	ad     []byte

	idxDomain, idxTemplate string
	idxKey                 []byte
	ff1                    []*callKeys // a few (domain, template)s
}

// callKeys is tokenKeys remembering the last cipher it returned: the items of a call
// mostly share one (domain, template) and one alphabet and length.
type callKeys struct {
	tokenKeys
	alphabet string
	length   int
	f        *fpe.FF1
}

func (k *callKeys) FF1(alphabet string, length int) (*fpe.FF1, error) {
	if k.f != nil && length == k.length && alphabet == k.alphabet {
		return k.f, nil
	}
	f, err := k.tokenKeys.FF1(alphabet, length)
	if err != nil {
		return nil, err
	}
	k.alphabet, k.length, k.f = alphabet, length, f
	return f, nil
}

// keys returns the template.Keys of (domain, template).
func (sc *tokenizeScratch) keys(v *Vault, domain, template string) *callKeys {
	for _, k := range sc.ff1 {
		if k.domain == domain && k.template == template {
			return k
		}
	}
	k := &callKeys{tokenKeys: tokenKeys{v: v, domain: domain, template: template}}
	if len(sc.ff1) < 8 {
		sc.ff1 = append(sc.ff1, k)
	}
	return k
}

// scratchBlock is the largest size of the blocks keys and records are carved from, and
// scratchPerItem the size of the first block per item of the call: a call of one item (the
// commonest request) carves a few hundred bytes, and must not allocate a whole block.
const (
	scratchBlock   = 8 << 10
	scratchPerItem = 512
)

func newTokenizeScratch(items []TokenizeItem) *tokenizeScratch {
	n := 0
	for _, it := range items {
		n += len(it.Value)
	}
	return &tokenizeScratch{values: make([]byte, 0, n), block: min(scratchPerItem*len(items), scratchBlock)}
}

// value returns a copy of value in the scratch.
func (sc *tokenizeScratch) value(value string) []byte {
	start := len(sc.values)
	sc.values = append(sc.values, value...) // within capacity: sized for every item's value
	return sc.values[start:len(sc.values):len(sc.values)]
}

// carve returns an empty slice of capacity n from the current block (a new block when it
// has no room left).
func (sc *tokenizeScratch) carve(n int) []byte {
	if cap(sc.blocks)-len(sc.blocks) < n {
		sc.blocks = make([]byte, 0, max(n, sc.block))
		sc.block = min(max(2*sc.block, scratchPerItem), scratchBlock)
	}
	start := len(sc.blocks)
	sc.blocks = sc.blocks[:start+n]
	return sc.blocks[start : start : start+n]
}

// recordKey is recordKey(domain, token), in the scratch.
func (sc *tokenizeScratch) recordKey(domain, token string) []byte {
	return appendRecordKey(sc.carve(len(domain)+1+len(token)), domain, token)
}

// indexHMACKey is v.hmacKey("index", domain, template), remembered for the next item.
func (sc *tokenizeScratch) indexHMACKey(v *Vault, domain, template string) ([]byte, error) {
	if sc.idxKey != nil && domain == sc.idxDomain && template == sc.idxTemplate {
		return sc.idxKey, nil
	}
	k, err := v.hmacKey("index", domain, template)
	if err != nil {
		return nil, err
	}
	sc.idxDomain, sc.idxTemplate, sc.idxKey = domain, template, k
	return k, nil
}

// clear zeroes the values' bytes.
func (sc *tokenizeScratch) clear() { clear(sc.values) }

// batchReads serves a transaction's reads from batches: a key is asked for (want, or a get
// that misses), every key asked for is read at once (fetch: one GetMany per bucket), and get
// then answers from what was read. Writes made through put are seen by later gets.
type batchReads struct {
	tx     store.Tx
	hint   int                             // expected keys per bucket
	got    map[store.Bucket]map[string]int // bucket → key → index in vals, read or written
	vals   [][]byte                        // values (nil: absent)
	wanted map[store.Bucket][][]byte       // keys to read at the next fetch (a repeat is harmless)
	now    time.Time                       // when erasing marks are judged stale (readSubjectKeys)
}

func newBatchReads(tx store.Tx, hint int) *batchReads {
	return &batchReads{tx: tx, hint: hint, got: make(map[store.Bucket]map[string]int, 4),
		vals: make([][]byte, 0, 2*hint), wanted: make(map[store.Bucket][][]byte, 4)}
}

// want asks for key to be read by the next fetch, unless it has been.
func (r *batchReads) want(b store.Bucket, key []byte) {
	if _, ok := r.got[b][string(key)]; !ok {
		r.wanted[b] = append(r.wanted[b], key)
	}
}

// get returns key's value; ok is false if it has not been read yet (it is then asked for).
func (r *batchReads) get(b store.Bucket, key []byte) (value []byte, ok bool) {
	i, ok := r.got[b][string(key)]
	if !ok {
		r.wanted[b] = append(r.wanted[b], key)
		return nil, false
	}
	return r.vals[i], true
}

// set records key's value in the cache.
func (r *batchReads) set(b store.Bucket, key, value []byte) {
	m := r.got[b]
	if m == nil {
		m = make(map[string]int, r.hint)
		r.got[b] = m
	}
	if i, ok := m[string(key)]; ok {
		r.vals[i] = value // no new key string
		return
	}
	m[string(key)] = len(r.vals)
	r.vals = append(r.vals, value)
}

// fetch reads every key asked for since the last fetch, one GetMany per bucket (in bucket
// order, so runs of a function read alike). It returns false if nothing was asked for, and a
// *subjectErasingError when a subject key asked for is being erased.
func (r *batchReads) fetch() (bool, error) {
	if len(r.wanted) == 0 {
		return false, nil
	}
	// The plain reads together (one statement on PostgreSQL: store.GetManyIn), then the
	// subject keys.
	var reads []store.Read
	for _, b := range slices.Sorted(maps.Keys(r.wanted)) {
		if b != bucketSubjectKeys {
			reads = append(reads, store.Read{Bucket: b, Keys: r.wanted[b]})
		}
	}
	for i, vals := range store.GetManyIn(r.tx, reads) {
		for n, val := range vals {
			r.set(reads[i].Bucket, reads[i].Keys[n], val)
		}
	}
	if keys := r.wanted[bucketSubjectKeys]; len(keys) > 0 {
		// A subject key this call may seal under stays until the call commits: an
		// EraseSubject deleting it waits for the commit (so its sweep sees the record), and
		// one that committed since the snapshot makes the call re-run (store.SharedGetter).
		// The key of a subject being erased is not locked: the call waits for the erasure
		// instead of holding it off (readSubjectKeys).
		vals, err := readSubjectKeys(r.tx, keys, r.now)
		if err != nil {
			return true, err
		}
		for i, val := range vals {
			r.set(bucketSubjectKeys, keys[i], val)
		}
	}
	clear(r.wanted)
	return true, nil
}

// put writes through to the transaction (with create, as a create-only Insert) and to the
// cache.
func (r *batchReads) put(b store.Bucket, key, value []byte, create bool) error {
	write := r.tx.Put
	if create {
		write = r.tx.Insert
	}
	if err := write(b, key, value); err != nil {
		return err
	}
	r.set(b, key, value)
	return nil
}

func outcomeOf(done, total int) string {
	switch {
	case done == total:
		return OutcomeAllowed
	case done == 0:
		return OutcomeFailed
	}
	return OutcomePartial
}

// itemsScope returns the distinct domains and templates of a tokenize call.
func itemsScope(items []TokenizeItem) (domains, templates []string) {
	ds, ts := make([]string, 0, 4), make([]string, 0, 4)
	for i, it := range items {
		if i > 0 && it.Domain == items[i-1].Domain && it.Template == items[i-1].Template {
			continue
		}
		ds = append(ds, DomainOr(it.Domain))
		ts = append(ts, it.Template)
	}
	return uniqueSorted(ds), uniqueSorted(ts)
}

func isItemError(err error) bool {
	return errors.Is(err, ErrTokenSpaceExhausted) || errors.Is(err, ErrInvalidValue)
}

// kv is one write of a decided item; create marks a create-only write (store Insert): a
// token's record and a subject's key are never overwritten, also by a racing replica.
type kv struct {
	b          store.Bucket
	key, value []byte
	create     bool
}

// place decides the item's token from what r has read: the existing one for a value already
// tokenized deterministically, else the first free candidate. ok is false when it needs a
// key r has not read yet (r then asks for it, and place is called again after the next
// fetch, from the start); only a decided item writes. It must stay free of side effects
// outside the transaction: the store may run it twice.
func (v *Vault) place(r *batchReads, p0 *prepared, pr *probe, now int64, sc *tokenizeScratch) (token string, err error, ok bool) {
	p := *p0 // this run's subject key, if it makes one, is not kept for the next
	var wbuf [5]kv
	writes := wbuf[:0]
	commit := func(tok string) (string, error, bool) {
		for _, w := range writes {
			if err := r.put(w.b, w.key, w.value, w.create); err != nil {
				return "", err, true
			}
		}
		return tok, nil, true
	}
	subjectWrite := func(tok string) {
		if p.subject != nil {
			writes = append(writes, kv{bucketSubjects, subjectKey(p.subject, p.domain, tok), []byte{}, false})
		}
	}
	if p.idxKey != nil {
		// The index names the value's token; use it only if that token is still live (not
		// erased, expired or reissued), else place a new one and repoint the index.
		tok, ok := r.get(bucketIndex, p.idxKey)
		if !ok {
			return "", nil, false
		}
		if tok != nil {
			live, ok := v.liveFor(r, &p, string(tok), now, sc)
			if !ok {
				return "", nil, false
			}
			if live {
				subjectWrite(string(tok))
				return commit(string(tok))
			}
		}
	}
	if p.subject != nil {
		cur, ok := r.get(bucketSubjectKeys, p.subject)
		if !ok {
			return "", nil, false
		}
		switch {
		case cur == nil:
			wrapped, a, err := v.keyring().NewSubjectKey(p.subject)
			if err != nil {
				return "", err, true
			}
			writes = append(writes, kv{bucketSubjectKeys, p.subject, wrapped, true},
				kv{bucketSubjectKeyIDs, p.subject, newSubjectKeyID(), true})
			p.subjWrapped, p.subjAEAD, p.rec0 = wrapped, a, nil
		case !bytes.Equal(cur, p.subjWrapped):
			a, err := v.subjectAEAD(p.subject, cur)
			if err != nil {
				return "", err, true
			}
			p.subjWrapped, p.subjAEAD, p.rec0 = bytes.Clone(cur), a, nil
		}
	}
	cand, rec, key := p.cand0, p.rec0, p.rk0
	for attempt := 0; ; {
		if cand != p.value {
			existing, ok := r.get(bucketRecords, key)
			if !ok {
				// A collision: read the next few candidates in the same round.
				for a := attempt + 1; a <= attempt+probeAhead && a < maxAttempts; a++ {
					c, err := pr.candidate(v, &p, a, sc)
					if err != nil {
						return "", err, true
					}
					if c != p.value {
						r.want(bucketRecords, sc.recordKey(p.domain, c))
					}
				}
				return "", nil, false
			}
			if existing == nil {
				break
			}
			if p.pure {
				same, ok := v.holds(r, existing, &p, cand, now, sc)
				if !ok {
					return "", nil, false
				}
				if same {
					// Tokenized before: the same token again.
					subjectWrite(cand)
					return commit(cand)
				}
			}
		}
		attempt++
		if attempt >= maxAttempts {
			return "", ErrTokenSpaceExhausted, true
		}
		var err error
		if cand, err = pr.candidate(v, &p, attempt, sc); err != nil {
			return "", err, true
		}
		rec, key = nil, sc.recordKey(p.domain, cand)
	}
	if rec == nil {
		var err error
		if rec, err = v.seal(&p, cand, now, sc); err != nil {
			return "", err, true
		}
	}
	writes = append(writes, kv{bucketRecords, key, rec, true})
	if p.expire != 0 {
		writes = append(writes, kv{bucketExpiry, expiryKey(p.expire, p.domain, cand), []byte{}, false})
	}
	if p.idxKey != nil {
		writes = append(writes, kv{bucketIndex, p.idxKey, []byte(cand), false}) // may repoint a stale entry
	}
	subjectWrite(cand)
	return commit(cand)
}

// liveFor reports whether token's record is live and belongs to p's template; ok is false if
// the record has not been read yet.
func (v *Vault) liveFor(r *batchReads, p *prepared, token string, now int64, sc *tokenizeScratch) (live, ok bool) {
	b, ok := r.get(bucketRecords, sc.recordKey(p.domain, token))
	if !ok {
		return false, false
	}
	if b == nil || isTombstone(b) {
		return false, true
	}
	rec, err := unmarshalRecord(b)
	return err == nil && rec.template == p.t.Name() && (rec.expireUnix == 0 || now < rec.expireUnix), true
}

// holds reports whether a stored record at token is p's value in p's template, live; ok is
// false if the record's subject key has not been read yet. Records that hold another value (a
// collision), tombstones and expired records are skipped by the probing. It decrypts inside
// the transaction: no side effects.
func (v *Vault) holds(r *batchReads, existing []byte, p *prepared, token string, now int64, sc *tokenizeScratch) (same, ok bool) {
	if isTombstone(existing) {
		return false, true
	}
	rec, err := unmarshalRecord(existing)
	if err != nil || rec.template != p.t.Name() || (rec.expireUnix != 0 && now >= rec.expireUnix) {
		return false, true
	}
	rr := rawRecord{rec: existing}
	if rec.subject != nil {
		if rr.subjectKey, ok = r.get(bucketSubjectKeys, rec.subject); !ok {
			return false, false
		}
		if rr.subjectKey == nil {
			return false, true
		}
	}
	pt, err := v.openRecordAD(rr, rec, p.domain, token, &sc.ad)
	if err != nil {
		return false, true
	}
	same = subtle.ConstantTimeCompare(pt, p.pt) == 1
	clear(pt)
	return same, true
}

// seal encrypts p's value for token: under the subject's key when it has a subject, else under
// the primary data key. The record is carved from sc.
func (v *Vault) seal(p *prepared, token string, now int64, sc *tokenizeScratch) ([]byte, error) {
	sc.ad = appendRecordAD(sc.ad[:0], p.domain, p.t.Name(), token)
	var ct []byte
	var err error
	if p.subject != nil {
		ct, err = p.subjAEAD.Encrypt(p.pt, sc.ad)
	} else {
		ct, err = v.keyring().Seal(p.pt, sc.ad)
	}
	if err != nil {
		return nil, err
	}
	r := record{template: p.t.Name(), createUnix: now, expireUnix: p.expire, subject: p.subject, ciphertext: ct}
	return r.appendTo(sc.carve(r.size())), nil
}

// Detokenize returns the original of each token. Per-item errors wrap ErrNotFound (unknown
// token, or a template other than the one named), ErrOutOfScope (outside the calling
// credential's scope, whether the token exists or not) or ErrIntegrity. A caller whose scope
// reveals masked gets each value masked by its template.
func (v *Vault) Detokenize(ctx context.Context, purpose string, items []TokenRef) ([]DetokenizeResult, error) {
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	scope := scopeOf(ctx)
	var rd itemReads
	sc := v.getReads()
	defer v.putReads(sc) // rd is sc's: nothing of it outlives this call
	err := v.store.View(ctx, func(tx store.Tx) error {
		rd = readItems(tx, scope, items, true, sc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	results := make([]DetokenizeResult, len(items))
	now := v.now().Unix()
	var ad []byte // associated data, reused
	for i, it := range items {
		results[i].Canary, results[i].CanaryLabel = rd.canary[i], rd.labels[i]
		if rd.out[i] {
			results[i].Err = ErrOutOfScope
			continue
		}
		r, err := v.checkRecord(rd.raw[i], DomainOr(it.Domain), it.Template, now)
		if err = scope.afterLookup(it, r, err); err != nil {
			results[i].Err = err
			continue
		}
		pt, err := v.openRecordAD(rd.raw[i], r, DomainOr(it.Domain), it.Token, &ad)
		if err != nil {
			results[i].Err = err
			continue
		}
		val, err := v.revealAs(ctx, pt, r.template, scope.Reveal)
		clear(pt)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i] = DetokenizeResult{Value: val, Template: r.template, Canary: rd.canary[i], CanaryLabel: rd.labels[i]}
	}
	// Audit before reveal: the values leave only once their event is durable.
	ev := v.newEvent(ctx, "Detokenize")
	ev.Purpose = purpose
	ev.Items = len(items)
	ds, ts := make([]string, 0, len(items)), make([]string, 0, len(items))
	fps := make([]byte, 0, len(items)*2*tokenFingerprintBytes)
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		d := DomainOr(items[i].Domain)
		ds, ts = append(ds, d), append(ts, r.Template)
		fps = appendTokenFingerprint(fps, d, items[i].Token)
		ev.Allowed++
	}
	ev.Tokens = splitFingerprints(fps)
	ev.Denied = len(items) - ev.Allowed
	ev.Domains, ev.Templates = uniqueSorted(ds), uniqueSorted(ts)
	ev.Outcome = outcomeOf(ev.Allowed, len(items))
	for i := range results {
		if results[i].Canary {
			ev.Reason = "canary token revealed"
		}
	}
	noteScopeDenials(&ev, countOutOfScope(func(i int) error { return results[i].Err }, len(results)))
	if scope.Reveal == RevealMasked && ev.Allowed > 0 {
		ev.Reason = strings.TrimPrefix(ev.Reason+"; masked", "; ")
	}
	if err := v.Audit(ctx, ev); err != nil {
		return nil, fmt.Errorf("recording the audit event (nothing revealed): %w", err)
	}
	return results, nil
}

// internal logs an unexpected error (never with values) and returns an opaque error.
func (v *Vault) internal(what string, err error) error {
	v.log.Error("internal error", slog.String("op", what), slog.String("error", err.Error()))
	return fmt.Errorf("internal error in %s", what)
}
