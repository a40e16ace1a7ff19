package vault

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// The audit trail, as the vault keeps it in its store.
//
// Package audit defines the line format, the hash chain, checkpoints and verification. Here
// the vault appends events to bucket "audit" under their sequence numbers (appendAudit, always
// through updateAudited, in the transaction of the change it records), signs checkpoints into
// bucket "auditckpt", exports, lists and prunes. Events hold no values and no keyed hashes of
// values: only token fingerprints (a SHA-256 prefix of domain and token), counts and names.

// Audit outcomes.
const (
	OutcomeAllowed = "allowed" // everything asked was done
	OutcomePartial = "partial" // some items failed or were denied
	OutcomeDenied  = "denied"  // nothing was done: authentication, authorization, grants, rate
	OutcomeFailed  = "failed"  // nothing was done: invalid request or internal error
)

// AuditEvent is one entry of the audit trail (package audit holds its format).
type AuditEvent = audit.Event

// Actor is who made a request.
type Actor = audit.Actor

// RequestInfo describes the request an operation runs for; the server attaches it to the
// context with WithRequest, and the vault copies it into audit events.
type RequestInfo struct {
	RequestID string
	Method    string
	Principal Principal
	Source    string
}

type requestKey struct{}

// WithRequest returns ctx carrying info for the audit trail.
func WithRequest(ctx context.Context, info RequestInfo) context.Context {
	return context.WithValue(ctx, requestKey{}, info)
}

func requestFrom(ctx context.Context) RequestInfo {
	info, _ := ctx.Value(requestKey{}).(RequestInfo)
	return info
}

// newEvent starts an event for the request in ctx.
func (v *Vault) newEvent(ctx context.Context, method string) AuditEvent {
	info := requestFrom(ctx)
	if info.Method != "" {
		method = info.Method
	}
	return AuditEvent{
		Time: v.now().UTC(), RequestID: info.RequestID, Method: method, Source: info.Source,
		Actor: Actor{CredentialID: info.Principal.ID, Role: string(info.Principal.Role), Vendor: info.Principal.Vendor,
			AuthMethod: string(info.Principal.AuthMethod), AuthSubject: info.Principal.AuthSubject()},
	}
}

// TokenFingerprint is the audit trail's fingerprint of a token.
func TokenFingerprint(domain, token string) string {
	var b [2 * tokenFingerprintBytes]byte
	return string(appendTokenFingerprint(b[:0], domain, token))
}

// tokenFingerprintBytes is the length of a token fingerprint before hex encoding.
const tokenFingerprintBytes = 8

// splitFingerprints returns the fingerprints appended to b (appendTokenFingerprint) as
// strings, sharing one allocation; nil for none.
func splitFingerprints(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	const n = 2 * tokenFingerprintBytes
	all := string(b)
	out := make([]string, 0, len(all)/n)
	for i := 0; i+n <= len(all); i += n {
		out = append(out, all[i:i+n])
	}
	return out
}

// appendTokenFingerprint appends TokenFingerprint(domain, token) to dst.
func appendTokenFingerprint(dst []byte, domain, token string) []byte {
	var buf [128]byte // the hashed input, on the stack unless it is long
	in := append(buf[:0], domain...)
	in = append(in, 0)
	in = append(in, token...)
	h := sha256.Sum256(in)
	return hex.AppendEncode(dst, h[:tokenFingerprintBytes])
}

// appendAudit appends ev to replica's chain inside tx. It has no effect outside tx (the store
// may run the enclosing function twice) and sets ev.Seq, ev.Replica and ev.PrevHash. The
// sequence number is global (the audit bucket's store sequence, so events list and export in
// one order); the hash chain and its head are the replica's own (auditHeadKey), so replicas
// sharing a store never write the same key: one Get and one Put of the head, the event's Put
// and one NextSequence.
func appendAudit(tx store.Tx, replica string, ev *AuditEvent) error {
	hb, hk := auditHeadKey(replica)
	var last uint64
	prev := make([]byte, 32)
	if h := tx.Get(hb, hk); len(h) == 40 {
		last = binary.BigEndian.Uint64(h[:8])
		copy(prev, h[8:])
	}
	seq, err := tx.NextSequence(bucketAudit)
	if err != nil {
		return err
	}
	if seq <= last {
		// The sequence is continued past every head when the vault opens (prepareAudit).
		return fmt.Errorf("vault: the audit sequence (%d) is behind the chain's head (%d)", seq, last)
	}
	ev.Seq, ev.Replica = seq, replica
	ev.PrevHash = audit.HashOf(prev)
	line, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := tx.Put(bucketAudit, seqKey(ev.Seq), line); err != nil {
		return err
	}
	sum := sha256.Sum256(line)
	head := make([]byte, 40)
	binary.BigEndian.PutUint64(head[:8], ev.Seq)
	copy(head[8:], sum[:])
	return tx.Put(hb, hk, head)
}

// auditHeads returns the head of every chain in tx, sorted by replica ("" first).
func auditHeads(tx store.Tx) ([]audit.Head, error) {
	var heads []audit.Head
	if h := tx.Get(bucketMeta, metaAuditHead); len(h) == 40 {
		heads = append(heads, audit.Head{Seq: binary.BigEndian.Uint64(h[:8]), Hash: audit.HashOf(h[8:])})
	}
	err := tx.Scan(bucketAuditHead, nil, nil, func(k, h []byte) error {
		if len(h) != 40 {
			return fmt.Errorf("the audit head of replica %q is malformed", k)
		}
		heads = append(heads, audit.Head{Replica: string(k), Seq: binary.BigEndian.Uint64(h[:8]), Hash: audit.HashOf(h[8:])})
		return nil
	})
	return heads, err
}

// auditAnchors returns the pruning anchor of every chain that has one, sorted by replica.
func auditAnchors(tx store.Tx) []audit.Anchor {
	var out []audit.Anchor
	add := func(replica string, a []byte) {
		if len(a) > 40 {
			out = append(out, audit.Anchor{Replica: replica, Seq: binary.BigEndian.Uint64(a[:8]), Hash: audit.HashOf(a[8:40]),
				Signature: base64.StdEncoding.EncodeToString(a[40:])})
		}
	}
	add("", tx.Get(bucketMeta, metaAuditAnchor))
	tx.Scan(bucketAuditAnchor, nil, nil, func(k, a []byte) error { add(string(k), a); return nil })
	return out
}

// multiChain reports whether a trail with these heads and anchors has replica chains: its
// checkpoints, exports and verification then use the multi-replica format.
func multiChain(heads []audit.Head, anchors []audit.Anchor) bool {
	for _, h := range heads {
		if h.Replica != "" {
			return true
		}
	}
	for _, a := range anchors {
		if a.Replica != "" {
			return true
		}
	}
	return false
}

// prunedThrough is the last sequence number pruned (0: none): the highest anchor.
func prunedThrough(anchors []audit.Anchor) uint64 {
	var n uint64
	for _, a := range anchors {
		n = max(n, a.Seq)
	}
	return n
}

// auditMaxSeq is the highest sequence number of the trail: the highest head.
func auditMaxSeq(tx store.Tx) uint64 {
	heads, _ := auditHeads(tx)
	var n uint64
	for _, h := range heads {
		n = max(n, h.Seq)
	}
	return n
}

// validReplicaID checks Config.ReplicaID: it names a chain in keys, events and signed
// messages, so it is short, printable ASCII without spaces.
func validReplicaID(id string) error {
	if len(id) > 128 {
		return fmt.Errorf("vault: ReplicaID is longer than 128 bytes")
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' || id[i] == '/' {
			return fmt.Errorf("vault: ReplicaID must be printable ASCII without spaces or '/'")
		}
	}
	return nil
}

// maxAuditLanes bounds the chains of one replica: its audited writes in flight at once.
const maxAuditLanes = 32

// auditLanes hands out the chains of one replica, one per audited write in flight, so that
// a replica's concurrent writes do not conflict on one head either (on PostgreSQL each Update
// is its own transaction; two on one head would make one of them fail to serialize and run
// again). The first lane is the replica's ID, the others ID/1, ID/2, … up to maxAuditLanes,
// created as concurrency needs them; each is a chain of its own, signed with the others in
// every checkpoint. The single-process vault (ReplicaID "") has one chain: bbolt groups its
// writes into one transaction anyway.
type auditLanes struct {
	mu   sync.Mutex
	n    int         // lanes created
	free chan string // lanes not in use (capacity maxAuditLanes)
}

// take returns a chain of replica for one audited write and the function that gives it back.
func (l *auditLanes) take(ctx context.Context, replica string) (string, func(), error) {
	if replica == "" {
		return "", func() {}, nil
	}
	l.mu.Lock()
	if l.free == nil {
		l.free = make(chan string, maxAuditLanes)
	}
	free := l.free
	var lane string
	select {
	case lane = <-free:
	default:
		if l.n < maxAuditLanes {
			lane = replica
			if l.n > 0 {
				lane = replica + "/" + strconv.Itoa(l.n)
			}
			l.n++
		}
	}
	l.mu.Unlock()
	if lane == "" {
		select {
		case lane = <-free:
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
	return lane, func() { free <- lane }, nil
}

// errSkipAudit, returned by the change function of updateAudited, commits what the change
// wrote (usually nothing: it found nothing to do) without an audit event.
var errSkipAudit = errors.New("vault: change not audited")

// updateAudited is how every change to the store is audited: change runs in one store
// transaction, and a copy of ev, which change may complete (counts, outcome, tokens), is
// appended to the audit chain in that same transaction. So a change commits only with its
// event, and an event only with its change. change may return errSkipAudit to commit without
// an event (nothing changed); a nil change records ev alone. Like every store function,
// change must have no effect outside tx: the store may run it more than once. updateAudited
// returns the event's sequence number (0 when skipped) once it is durable.
func (v *Vault) updateAudited(ctx context.Context, ev AuditEvent, change func(tx store.Tx, ev *AuditEvent) error) (uint64, error) {
	chain, release, err := v.lanes.take(ctx, v.replica)
	if err != nil {
		return 0, err
	}
	defer release()
	if change == nil {
		// An event alone (a detokenize, a denial) reads and overwrites only its lane's head,
		// which a concurrent write would make fail to commit, and creates the event under a
		// fresh sequence number: snapshot isolation is enough (store.WithSnapshotIsolation).
		// Under SERIALIZABLE, PostgreSQL's page-grained read tracking made concurrent events
		// of one replica abort each other, their heads sharing an index page.
		ctx = store.WithSnapshotIsolation(ctx)
	}
	var seq uint64
	err = v.store.Update(ctx, func(tx store.Tx) error {
		seq = 0
		e := ev
		if change != nil {
			if err := change(tx, &e); err == errSkipAudit {
				return nil
			} else if err != nil {
				return err
			}
		}
		if err := appendAudit(tx, chain, &e); err != nil {
			return err
		}
		seq = e.Seq
		return nil
	})
	return seq, err
}

// Audit records ev on its own (for events with no other write, such as denials at the edge).
// It returns once the event is durable.
func (v *Vault) Audit(ctx context.Context, ev AuditEvent) error {
	if ev.Time.IsZero() {
		ev.Time = v.now().UTC()
	}
	_, err := v.updateAudited(ctx, ev, nil)
	return err
}

// AuditDenial records a request refused before reaching the vault (authentication or
// authorization), with the request information in ctx.
func (v *Vault) AuditDenial(ctx context.Context, reason string) error {
	return v.AuditRequest(ctx, OutcomeDenied, reason)
}

// AuditRequest records the request in ctx (WithRequest) on its own, with outcome and reason:
// for requests that change nothing in the store, such as a console sign-in or sign-out.
func (v *Vault) AuditRequest(ctx context.Context, outcome, reason string) error {
	ev := v.newEvent(ctx, "")
	ev.Outcome, ev.Reason = outcome, reason
	return v.Audit(ctx, ev)
}

// Checkpoint is a signed statement of the audit chain's head.
type Checkpoint = audit.Checkpoint

// Checkpoint signs the current head of the audit chain if it moved since the last checkpoint.
// With replica chains it signs the heads of all of them, read in one snapshot, under the
// highest sequence number (a checkpoint there is replaced when a chain's head moved without
// raising it: on PostgreSQL an event can commit after one with a higher number). The server
// calls it at intervals and at shutdown; any replica may (the heads are in the store).
func (v *Vault) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	var heads []audit.Head
	var anchors []audit.Anchor
	var lastCkpt uint64
	var lastBlob []byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		var err error
		if heads, err = auditHeads(tx); err != nil {
			return err
		}
		anchors = auditAnchors(tx)
		return tx.Scan(bucketAuditCkpt, nil, nil, func(k, val []byte) error {
			lastCkpt, lastBlob = binary.BigEndian.Uint64(k), append(lastBlob[:0], val...)
			return nil
		})
	}); err != nil {
		return Checkpoint{}, false, err
	}
	if len(heads) == 0 {
		return Checkpoint{}, false, nil
	}
	c := Checkpoint{Type: "checkpoint", Time: v.now().UTC()}
	if multiChain(heads, anchors) {
		c.Heads = heads
		for _, h := range heads {
			if h.Seq > c.Seq {
				c.Seq, c.Hash = h.Seq, h.Hash
			}
		}
		var prev Checkpoint
		if c.Seq < lastCkpt || c.Seq == lastCkpt && json.Unmarshal(lastBlob, &prev) == nil && slices.Equal(prev.Heads, heads) {
			return Checkpoint{}, false, nil
		}
	} else {
		c.Seq, c.Hash = heads[0].Seq, heads[0].Hash
		if c.Seq <= lastCkpt {
			return Checkpoint{}, false, nil
		}
	}
	sig, err := v.keyring().Sign(c.Message())
	if err != nil {
		return Checkpoint{}, false, err
	}
	c.Signature = base64.StdEncoding.EncodeToString(sig)
	blob, err := json.Marshal(c)
	if err != nil {
		return Checkpoint{}, false, err
	}
	if err := v.store.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketAuditCkpt, seqKey(c.Seq), blob) }); err != nil {
		return Checkpoint{}, false, err
	}
	return c, true, nil
}

// AuditPublicKeyset returns the public keyset that verifies checkpoints.
func (v *Vault) AuditPublicKeyset() ([]byte, error) { return v.keyring().AuditPublicKeyset() }

// AuditFilter selects events for ListAudit. Zero fields match everything.
type AuditFilter struct {
	Start, End time.Time
	Credential string
	Vendor     string
	Outcome    string
	Method     string
	Domain     string // the event names this domain
	Template   string // the event names this template
	Purpose    string
	RequestID  string
	GrantID    string // the event names this grant
	AfterSeq   uint64 // page token: list events after this sequence number
	Limit      int    // at most this many events (default 100, at most 1000)
}

// maxAuditScan bounds the events one ListAudit call reads, so a selective filter over a long
// trail returns a page token instead of a long scan.
const maxAuditScan = 100000

// ListAudit returns events matching f in sequence order, and the page token for the next call
// (0 when the trail is exhausted).
func (v *Vault) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, uint64, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	var out []AuditEvent
	var next, scanned uint64
	err := v.store.View(ctx, func(tx store.Tx) error {
		out, next, scanned = out[:0], 0, 0
		return tx.Scan(bucketAudit, nil, seqKey(f.AfterSeq+1), func(k, val []byte) error {
			scanned++
			seq := binary.BigEndian.Uint64(k)
			if len(out) >= f.Limit || scanned > maxAuditScan {
				next = seq - 1
				return store.ErrStopScan
			}
			var ev AuditEvent
			if err := json.Unmarshal(val, &ev); err != nil {
				return fmt.Errorf("audit event %d is malformed: %w", seq, err)
			}
			if f.matches(&ev) {
				out = append(out, ev)
			}
			return nil
		})
	})
	return out, next, err
}

func (f *AuditFilter) matches(ev *AuditEvent) bool {
	return (f.Start.IsZero() || !ev.Time.Before(f.Start)) &&
		(f.End.IsZero() || ev.Time.Before(f.End)) &&
		(f.Credential == "" || ev.Actor.CredentialID == f.Credential) &&
		(f.Vendor == "" || ev.Actor.Vendor == f.Vendor) &&
		(f.Outcome == "" || ev.Outcome == f.Outcome) &&
		(f.Method == "" || ev.Method == f.Method) &&
		(f.Domain == "" || slices.Contains(ev.Domains, f.Domain)) &&
		(f.Template == "" || slices.Contains(ev.Templates, f.Template)) &&
		(f.Purpose == "" || ev.Purpose == f.Purpose) &&
		(f.RequestID == "" || ev.RequestID == f.RequestID) &&
		(f.GrantID == "" || slices.Contains(ev.GrantIDs, f.GrantID))
}

// ExportAudit writes the trail from sequence number fromSeq (1: everything) as JSON lines:
// a header, then each event's stored bytes, each checkpoint right after the event it covers.
// It reads one consistent snapshot.
func (v *Vault) ExportAudit(ctx context.Context, fromSeq uint64, w io.Writer) error {
	pub, err := v.keyring().AuditPublicKeyset()
	if err != nil {
		return err
	}
	// An export counts as delivering the trail only if it leaves no gap after what was
	// delivered (or pruned) before: a resumed export from further on does not.
	var delivered uint64
	marks := map[string]string{} // per chain: the hash its next delivered event must follow
	if err := v.store.View(ctx, func(tx store.Tx) error {
		if e := tx.Get(bucketMeta, metaAuditExported); len(e) == 8 {
			delivered = binary.BigEndian.Uint64(e)
		}
		anchors := auditAnchors(tx)
		delivered = max(delivered, prunedThrough(anchors))
		clear(marks)
		for _, a := range anchors {
			marks[a.Replica] = a.Hash
		}
		return tx.Scan(bucketAuditExported, nil, nil, func(k, m []byte) error {
			if len(m) == 40 {
				marks[exportedChainOf(k)] = audit.HashOf(m[8:])
			}
			return nil
		})
	}); err != nil {
		return err
	}
	contiguous := fromSeq <= delivered+1
	cw := &lastSeqWriter{w: w, marks: marks, chains: map[string]*exportedChain{}}
	if err := exportAudit(ctx, v.store, fromSeq, pub, v.keyring().Sign, v.now(), cw); err != nil {
		return err
	}
	// Everything up to the last event written has been delivered (the caller's writer took it).
	if cw.last > 0 && contiguous {
		if err := v.markExported(ctx, cw.last); err != nil {
			return err
		}
	}
	return v.markExportedChains(ctx, cw.chains)
}

// exportedChain is what an export delivered of one chain.
type exportedChain struct {
	from    string // the chain's export mark (or anchor) when the export started
	spans   bool   // the export holds the event after from, or the chain's first event
	lastSeq uint64
	lastSum [32]byte
}

// markExportedChains records, per chain of a multi-replica trail, the last event exports
// delivered without a gap in that chain (bucket auditexported), which PruneAudit requires:
// on PostgreSQL an event can commit after an export that skipped it (its number is below
// the export's last), and a global mark would let it be pruned undelivered. A chain's mark
// moves only when this export delivered the event right after it (or the chain from its
// start or its pruning anchor).
func (v *Vault) markExportedChains(ctx context.Context, chains map[string]*exportedChain) error {
	multi := false
	for r := range chains {
		multi = multi || r != ""
	}
	if !multi {
		return nil // the single-process chain: the global mark says it all
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		anchors := map[string]string{}
		for _, a := range auditAnchors(tx) {
			anchors[a.Replica] = a.Hash
		}
		for r, c := range chains {
			cur := tx.Get(bucketAuditExported, exportedKey(r))
			from := anchors[r]
			if len(cur) == 40 {
				if binary.BigEndian.Uint64(cur[:8]) >= c.lastSeq {
					continue
				}
				from = audit.HashOf(cur[8:])
			}
			if !c.spans || from != c.from {
				continue // a gap between what was delivered before and this export
			}
			mark := append(seqKey(c.lastSeq), c.lastSum[:]...)
			if err := tx.Put(bucketAuditExported, exportedKey(r), mark); err != nil {
				return err
			}
		}
		return nil
	})
}

// scanChainsThrough calls fn with each event up to throughSeq, in order, and its chain.
func scanChainsThrough(tx store.Tx, throughSeq uint64, fn func(seq uint64, replica string, k, val []byte) error) error {
	return tx.Scan(bucketAudit, nil, nil, func(k, val []byte) error {
		seq := binary.BigEndian.Uint64(k)
		if seq > throughSeq {
			return store.ErrStopScan
		}
		var ev struct {
			Replica string `json:"replica"`
		}
		if err := json.Unmarshal(val, &ev); err != nil {
			return fmt.Errorf("audit event %d is malformed: %w", seq, err)
		}
		return fn(seq, ev.Replica, k, val)
	})
}

// lastPrunable returns the last event up to throughSeq that PruneAudit may prune through:
// throughSeq itself, or in a multi-replica trail the event before the first one no export
// delivered (notExportedInChain); 0 for none.
func lastPrunable(tx store.Tx, throughSeq uint64) (uint64, error) {
	bad, _, err := notExportedInChain(tx, throughSeq)
	if err != nil || bad == 0 {
		return throughSeq, err
	}
	var last uint64
	err = tx.Scan(bucketAudit, nil, nil, func(k, _ []byte) error {
		if seq := binary.BigEndian.Uint64(k); seq < bad {
			last = seq
			return nil
		}
		return store.ErrStopScan
	})
	return last, err
}

// notExportedInChain reports the first event of the chains of a multi-replica trail, up to
// throughSeq, that no export delivered (markExportedChains): 0 when there is none, or when
// the trail has a single chain.
func notExportedInChain(tx store.Tx, throughSeq uint64) (uint64, string, error) {
	heads, err := auditHeads(tx)
	if err != nil || !multiChain(heads, auditAnchors(tx)) {
		return 0, "", err
	}
	marks := map[string]uint64{}
	tx.Scan(bucketAuditExported, nil, nil, func(k, v []byte) error {
		if len(v) == 40 {
			marks[exportedChainOf(k)] = binary.BigEndian.Uint64(v[:8])
		}
		return nil
	})
	var bad uint64
	var chain string
	err = scanChainsThrough(tx, throughSeq, func(seq uint64, replica string, _, _ []byte) error {
		if seq > marks[replica] {
			bad, chain = seq, replica
			return store.ErrStopScan
		}
		return nil
	})
	return bad, chain, err
}

// lastSeqWriter passes lines through and remembers the last event's sequence number, and
// what it delivered of each chain.
type lastSeqWriter struct {
	w      io.Writer
	buf    []byte
	last   uint64
	marks  map[string]string // per chain: its export mark or anchor hash before the export
	chains map[string]*exportedChain
}

func (l *lastSeqWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	l.buf = append(l.buf, p[:n]...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		var probe struct {
			Type     string `json:"type"`
			Seq      uint64 `json:"seq"`
			Replica  string `json:"replica"`
			PrevHash string `json:"prev_hash"`
		}
		if json.Unmarshal(l.buf[:i], &probe) == nil && probe.Type == "" && probe.Seq > 0 {
			l.last = probe.Seq
			c := l.chains[probe.Replica]
			if c == nil {
				c = &exportedChain{from: l.marks[probe.Replica]}
				l.chains[probe.Replica] = c
			}
			c.spans = c.spans || probe.PrevHash == audit.ZeroHash || probe.PrevHash == c.from
			c.lastSeq, c.lastSum = probe.Seq, sha256.Sum256(l.buf[:i])
		}
		l.buf = l.buf[i+1:]
	}
	return n, err
}

// exportAudit writes the trail from fromSeq, from one snapshot: the header, then each event's
// stored bytes, each checkpoint right after the event it signs. With sign, the header is
// signed (audit.ExportMessage): its start, its last event and its time.
func exportAudit(ctx context.Context, s store.Store, fromSeq uint64, pub []byte, sign func([]byte) ([]byte, error), now time.Time, w io.Writer) error {
	if fromSeq == 0 {
		fromSeq = 1
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err := s.View(ctx, func(tx store.Tx) error {
		heads, err := auditHeads(tx)
		if err != nil {
			return err
		}
		if anchors := auditAnchors(tx); multiChain(heads, anchors) {
			return exportChains(ctx, tx, fromSeq, heads, anchors, pub, sign, now, bw)
		}
		h := audit.ExportHeader{Type: "header", FromSeq: fromSeq, PublicKeyset: json.RawMessage(compactJSON(pub))}
		if a := tx.Get(bucketMeta, metaAuditAnchor); len(a) > 40 {
			seq := binary.BigEndian.Uint64(a[:8])
			if h.FromSeq <= seq+1 {
				h.FromSeq, h.AnchorSeq, h.AnchorHash = seq+1, seq, audit.HashOf(a[8:40])
				h.AnchorSignature = base64.StdEncoding.EncodeToString(a[40:])
			}
		}
		if sign != nil {
			h.ToSeq = h.FromSeq - 1
			if first := tx.Get(bucketAudit, seqKey(h.FromSeq)); first != nil {
				var ev audit.Event
				if err := json.Unmarshal(first, &ev); err != nil {
					return fmt.Errorf("audit event %d is malformed: %w", h.FromSeq, err)
				}
				h.PrevHash = ev.PrevHash
				if head := tx.Get(bucketMeta, metaAuditHead); len(head) == 40 {
					h.ToSeq, h.ToHash = binary.BigEndian.Uint64(head[:8]), audit.HashOf(head[8:])
				}
			}
		}
		if err := writeHeader(bw, &h, sign, now); err != nil {
			return err
		}
		ckpts := map[uint64][]byte{}
		if err := tx.Scan(bucketAuditCkpt, nil, seqKey(h.FromSeq), func(k, val []byte) error {
			ckpts[binary.BigEndian.Uint64(k)] = append([]byte(nil), val...)
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan(bucketAudit, nil, seqKey(h.FromSeq), func(k, val []byte) error {
			bw.Write(val)
			bw.WriteByte('\n')
			if c, ok := ckpts[binary.BigEndian.Uint64(k)]; ok {
				bw.Write(c)
				bw.WriteByte('\n')
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// exportChains is exportAudit for a trail with replica chains: the header gives each
// chain's extent (audit.ChainExtent), and each checkpoint comes before the first event after
// it (after the events it signs, also when the event at its own number is missing).
func exportChains(ctx context.Context, tx store.Tx, fromSeq uint64, heads []audit.Head, anchors []audit.Anchor, pub []byte, sign func([]byte) ([]byte, error), now time.Time, bw *bufio.Writer) error {
	h := audit.ExportHeader{Type: "header", FromSeq: max(fromSeq, prunedThrough(anchors)+1), PublicKeyset: json.RawMessage(compactJSON(pub))}
	byReplica := map[string]*audit.ChainExtent{}
	for _, hd := range heads {
		byReplica[hd.Replica] = &audit.ChainExtent{Replica: hd.Replica, ToSeq: hd.Seq, ToHash: hd.Hash}
		h.ToSeq = max(h.ToSeq, hd.Seq)
	}
	for _, a := range anchors {
		e := byReplica[a.Replica]
		if e == nil { // pruned with no head: cannot happen, heads outlive pruning
			e = &audit.ChainExtent{Replica: a.Replica, ToSeq: a.Seq, ToHash: a.Hash}
			byReplica[a.Replica] = e
		}
		if h.FromSeq == prunedThrough(anchors)+1 {
			e.Anchor = &audit.Anchor{Seq: a.Seq, Hash: a.Hash, Signature: a.Signature}
		}
	}
	// Where each chain starts in the export: chains with events from FromSeq start at the
	// first one's prev_hash (PrevSeq FromSeq-1: none of their events before it is here), the
	// others are all before it (PrevSeq = ToSeq).
	open := 0
	for _, e := range byReplica {
		if e.ToSeq < h.FromSeq {
			e.PrevSeq, e.PrevHash = e.ToSeq, e.ToHash
		} else {
			e.PrevSeq = h.FromSeq - 1
			open++
		}
	}
	if open > 0 {
		if err := tx.Scan(bucketAudit, nil, seqKey(h.FromSeq), func(k, val []byte) error {
			var ev audit.Event
			if err := json.Unmarshal(val, &ev); err != nil {
				return fmt.Errorf("audit event %d is malformed: %w", binary.BigEndian.Uint64(k), err)
			}
			if e := byReplica[ev.Replica]; e != nil && e.PrevHash == "" {
				e.PrevHash = ev.PrevHash
				if open--; open == 0 {
					return store.ErrStopScan
				}
			}
			return ctx.Err()
		}); err != nil {
			return err
		}
	}
	for _, e := range byReplica {
		if e.PrevHash == "" { // its head's event is missing: the export will not verify
			e.PrevHash = audit.ZeroHash
		}
		h.Chains = append(h.Chains, *e)
	}
	sort.Slice(h.Chains, func(i, j int) bool { return h.Chains[i].Replica < h.Chains[j].Replica })
	if err := writeHeader(bw, &h, sign, now); err != nil {
		return err
	}
	return scanTrail(ctx, tx, h.FromSeq, func(line []byte) error {
		bw.Write(line)
		return bw.WriteByte('\n')
	}, func(c []byte) error {
		bw.Write(c)
		return bw.WriteByte('\n')
	})
}

// writeHeader signs h (with sign, at now) and writes it as the export's first line.
func writeHeader(bw *bufio.Writer, h *audit.ExportHeader, sign func([]byte) ([]byte, error), now time.Time) error {
	if sign != nil {
		h.Time = now.UTC()
		sig, err := sign(audit.ExportMessage(*h))
		if err != nil {
			return err
		}
		h.Signature = base64.StdEncoding.EncodeToString(sig)
	}
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	bw.Write(hdr)
	return bw.WriteByte('\n')
}

// scanTrail calls event for each stored event from fromSeq and checkpoint for each stored
// checkpoint from fromSeq, in sequence order, each checkpoint before the first event after
// its number.
func scanTrail(ctx context.Context, tx store.Tx, fromSeq uint64, event, checkpoint func([]byte) error) error {
	type ckpt struct {
		seq  uint64
		blob []byte
	}
	var ckpts []ckpt
	if err := tx.Scan(bucketAuditCkpt, nil, seqKey(fromSeq), func(k, val []byte) error {
		ckpts = append(ckpts, ckpt{binary.BigEndian.Uint64(k), append([]byte(nil), val...)})
		return nil
	}); err != nil {
		return err
	}
	if err := tx.Scan(bucketAudit, nil, seqKey(fromSeq), func(k, val []byte) error {
		seq := binary.BigEndian.Uint64(k)
		for len(ckpts) > 0 && ckpts[0].seq < seq {
			if err := checkpoint(ckpts[0].blob); err != nil {
				return err
			}
			ckpts = ckpts[1:]
		}
		if err := event(val); err != nil {
			return err
		}
		return ctx.Err()
	}); err != nil {
		return err
	}
	for _, c := range ckpts {
		if err := checkpoint(c.blob); err != nil {
			return err
		}
	}
	return nil
}

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// VerifyStoreAudit verifies the audit trail of a store (opened offline): from event 1, or
// from its signed pruning anchor, with opts. Without opts.PublicKeyset it falls back to the
// public keyset stored beside the trail, which proves nothing against whoever could rewrite
// the store: the report's KeySource then says "data".
func VerifyStoreAudit(ctx context.Context, s store.Store, opts audit.Options) (audit.Report, error) {
	var pub, anchor []byte
	var multi bool
	var anchors []audit.Anchor
	if err := s.View(ctx, func(tx store.Tx) error {
		pub = append([]byte(nil), tx.Get(bucketMeta, metaAuditPub)...)
		anchor = append([]byte(nil), tx.Get(bucketMeta, metaAuditAnchor)...)
		heads, err := auditHeads(tx)
		anchors = auditAnchors(tx)
		multi = multiChain(heads, anchors)
		return err
	}); err != nil {
		return audit.Report{}, err
	}
	if opts.PublicKeyset == nil {
		if len(pub) == 0 {
			return audit.Report{}, errors.New("this store has no audit public key (never opened by a server?)")
		}
		opts.PublicKeyset, opts.KeySource = pub, audit.KeyFromData
	}
	vf, err := audit.NewVerifier(opts)
	if err != nil {
		return audit.Report{}, err
	}
	if multi {
		return verifyStoreChains(ctx, s, vf, anchors)
	}
	var aSeq uint64
	var aHash, aSig string
	if len(anchor) > 40 {
		aSeq, aHash, aSig = binary.BigEndian.Uint64(anchor[:8]), audit.HashOf(anchor[8:40]), base64.StdEncoding.EncodeToString(anchor[40:])
	}
	if err := vf.Start(aSeq, aHash, aSig); err != nil {
		return vf.Finish()
	}
	err = s.View(ctx, func(tx store.Tx) error {
		ckpts := map[uint64][]byte{}
		if err := tx.Scan(bucketAuditCkpt, nil, nil, func(k, val []byte) error {
			ckpts[binary.BigEndian.Uint64(k)] = append([]byte(nil), val...)
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan(bucketAudit, nil, nil, func(k, val []byte) error {
			if vf.Event(val) != nil {
				return store.ErrStopScan
			}
			if b, ok := ckpts[binary.BigEndian.Uint64(k)]; ok {
				var c audit.Checkpoint
				if json.Unmarshal(b, &c) != nil {
					c = audit.Checkpoint{Seq: binary.BigEndian.Uint64(k)}
				}
				if vf.Checkpoint(c) != nil {
					return store.ErrStopScan
				}
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return audit.Report{}, err
	}
	return vf.Finish()
}

// verifyStoreChains feeds a store's multi-replica trail to vf, from one snapshot.
func verifyStoreChains(ctx context.Context, s store.Store, vf *audit.Verifier, anchors []audit.Anchor) (audit.Report, error) {
	if err := vf.StartChains(anchors); err != nil {
		return vf.Finish()
	}
	stop := errors.New("stop")
	err := s.View(ctx, func(tx store.Tx) error {
		return scanTrail(ctx, tx, 1, func(line []byte) error {
			if vf.Event(line) != nil {
				return stop
			}
			return nil
		}, func(b []byte) error {
			var c audit.Checkpoint
			if json.Unmarshal(b, &c) != nil {
				c = audit.Checkpoint{Signature: "malformed"}
			}
			if vf.Checkpoint(c) != nil {
				return stop
			}
			return nil
		})
	})
	if err != nil && err != stop {
		return audit.Report{}, err
	}
	return vf.Finish()
}

// markExported records that an export delivered events up to seq.
func (v *Vault) markExported(ctx context.Context, seq uint64) error {
	return v.store.Update(ctx, func(tx store.Tx) error {
		cur := tx.Get(bucketMeta, metaAuditExported)
		if len(cur) == 8 && binary.BigEndian.Uint64(cur) >= seq {
			return nil
		}
		return tx.Put(bucketMeta, metaAuditExported, seqKey(seq))
	})
}

// PruneAudit deletes events (and checkpoints) up to and including throughSeq, keeping the
// remaining chain verifiable: the hash of the last pruned event is kept as an anchor, which
// exports carry in their header. Only exported events can be pruned. It returns how many
// events were deleted.
func (v *Vault) PruneAudit(ctx context.Context, throughSeq uint64) (int, error) {
	ev := v.newEvent(ctx, "PruneAudit")
	ev.Outcome, ev.Target = OutcomeAllowed, fmt.Sprintf("events through %d", throughSeq)
	n := 0
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, e *AuditEvent) error {
		n = 0
		exp := tx.Get(bucketMeta, metaAuditExported)
		if len(exp) != 8 || binary.BigEndian.Uint64(exp) < throughSeq {
			return ErrNotExported
		}
		if tx.Get(bucketAudit, seqKey(throughSeq)) == nil {
			return fmt.Errorf("%w: no audit event %d (already pruned?)", ErrInvalidArgument, throughSeq)
		}
		if bad, chain, err := notExportedInChain(tx, throughSeq); err != nil {
			return err
		} else if bad > 0 {
			return fmt.Errorf("%w: event %d (chain %q) was not delivered by an export without a gap in its chain (it committed after an export that skipped it): export again from %d or earlier", ErrNotExported, bad, chain, bad)
		}
		// The last pruned event of each chain becomes its anchor.
		type last struct {
			seq uint64
			sum [32]byte
		}
		lasts := map[string]last{}
		var keys [][]byte
		if err := scanChainsThrough(tx, throughSeq, func(seq uint64, replica string, k, val []byte) error {
			lasts[replica] = last{seq, sha256.Sum256(val)}
			keys = append(keys, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(bucketAudit, k); err != nil {
				return err
			}
		}
		ckeys, err := scanKeys(tx, bucketAuditCkpt, nil, func(k []byte) bool { return binary.BigEndian.Uint64(k) > throughSeq })
		if err != nil {
			return err
		}
		for _, k := range ckeys {
			if err := tx.Delete(bucketAuditCkpt, k); err != nil {
				return err
			}
		}
		for replica, l := range lasts {
			a := audit.Anchor{Replica: replica, Seq: l.seq, Hash: audit.HashOf(l.sum[:])}
			sig, err := v.keyring().Sign(a.Message())
			if err != nil {
				return err
			}
			ab, ak := auditAnchorKey(replica)
			if err := tx.Put(ab, ak, append(append(seqKey(l.seq), l.sum[:]...), sig...)); err != nil {
				return err
			}
		}
		n = len(keys)
		e.Items = n
		return nil
	})
	return n, err
}

// prepareAudit readies the trail when the vault opens: it stores the audit public keyset in
// clear beside the trail, for offline verification with --data, and continues the audit
// bucket's sequence past every chain's head (stores written before events took their number
// from the sequence, and data migrated from another store, have a sequence behind them).
func (v *Vault) prepareAudit(ctx context.Context) error {
	pub, err := v.keyring().AuditPublicKeyset()
	if err != nil {
		return err
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		if top := auditMaxSeq(tx); top > 0 {
			if err := tx.AdvanceSequence(bucketAudit, top); err != nil {
				return err
			}
		}
		if bytes.Equal(tx.Get(bucketMeta, metaAuditPub), pub) {
			return nil
		}
		return tx.Put(bucketMeta, metaAuditPub, pub)
	})
}

// uniqueSorted returns the distinct strings of in, sorted.
func uniqueSorted(in []string) []string {
	if len(in) > 0 && !slices.ContainsFunc(in[1:], func(s string) bool { return s != in[0] }) {
		return []string{in[0]} // all the same: the common case of a batch
	}
	m := map[string]struct{}{}
	for _, s := range in {
		m[s] = struct{}{}
	}
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// LatestCheckpoint returns the newest signed checkpoint; ok is false when there is none.
func (v *Vault) LatestCheckpoint(ctx context.Context) (c Checkpoint, ok bool, err error) {
	var last []byte
	err = v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketAuditCkpt, nil, nil, func(_, val []byte) error {
			last = append(last[:0], val...)
			return nil
		})
	})
	if err != nil || last == nil {
		return c, false, err
	}
	if err := json.Unmarshal(last, &c); err != nil {
		return c, false, fmt.Errorf("the latest audit checkpoint is malformed: %w", err)
	}
	return c, true, nil
}

// LastCheckpoint returns the sequence number of the newest signed checkpoint (0: none).
func (v *Vault) LastCheckpoint(ctx context.Context) (uint64, error) {
	var seq uint64
	err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketAuditCkpt, nil, nil, func(k, _ []byte) error {
			seq = binary.BigEndian.Uint64(k)
			return nil
		})
	})
	return seq, err
}
