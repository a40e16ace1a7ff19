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
	"sort"
	"strconv"
	"time"

	"github.com/tokenvault/tokenvault/crypto/keyring"
	"github.com/tokenvault/tokenvault/vault/store"
)

// The audit trail.
//
// Every event is stored as one line of JSON in bucket "audit" under its sequence number
// (8 bytes, big-endian, so appends are sequential). Event n carries prev_hash, the SHA-256 of
// the stored bytes of event n-1: editing, deleting, inserting or reordering an event breaks
// the chain. Checkpoints sign (seq, hash of event seq) with the keyring's Ed25519 audit key,
// so the chain's head cannot be rewritten either. Events hold no values and no keyed hashes of
// values: only token fingerprints (a SHA-256 prefix of domain and token), counts and names.

const (
	auditHashPrefix  = "sha256:"
	checkpointDomain = "tokenvault/audit/checkpoint/v1"
)

// Audit outcomes.
const (
	OutcomeAllowed = "allowed" // everything asked was done
	OutcomePartial = "partial" // some items failed or were denied
	OutcomeDenied  = "denied"  // nothing was done: authentication, authorization, grants, rate
	OutcomeFailed  = "failed"  // nothing was done: invalid request or internal error
)

// Actor is who made a request.
type Actor struct {
	CredentialID string `json:"credential_id,omitempty"`
	Role         string `json:"role,omitempty"`
	Vendor       string `json:"vendor,omitempty"`
}

// AuditEvent is one entry of the audit trail. It never holds a value or a keyed hash of one.
type AuditEvent struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id,omitempty"`
	Actor     Actor     `json:"actor"`
	Method    string    `json:"method"`
	Source    string    `json:"source,omitempty"`
	Domains   []string  `json:"domains,omitempty"`
	Templates []string  `json:"templates,omitempty"`
	Items     int       `json:"items,omitempty"`
	Allowed   int       `json:"allowed,omitempty"`
	Denied    int       `json:"denied,omitempty"`
	GrantIDs  []string  `json:"grant_ids,omitempty"`
	Purpose   string    `json:"purpose,omitempty"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason,omitempty"`
	// Tokens are fingerprints of the tokens revealed (or issued): hex of the first 8 bytes of
	// SHA-256(domain 0x00 token). An investigator holding a token can find its events.
	Tokens []string `json:"tokens,omitempty"`
	// Target names the object of a configuration change (credential, grant or template id).
	Target   string `json:"target,omitempty"`
	PrevHash string `json:"prev_hash"`
}

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
		Actor: Actor{CredentialID: info.Principal.ID, Role: string(info.Principal.Role), Vendor: info.Principal.Vendor},
	}
}

// TokenFingerprint is the audit trail's fingerprint of a token.
func TokenFingerprint(domain, token string) string {
	h := sha256.Sum256([]byte(domain + "\x00" + token))
	return hex.EncodeToString(h[:8])
}

// appendAudit appends ev to the chain inside tx. It has no effect outside tx (the store may run
// the enclosing function twice) and sets ev.Seq and ev.PrevHash.
func appendAudit(tx store.Tx, ev *AuditEvent) error {
	var seq uint64
	prev := make([]byte, 32)
	if h := tx.Get(bucketMeta, metaAuditHead); len(h) == 40 {
		seq = binary.BigEndian.Uint64(h[:8])
		copy(prev, h[8:])
	}
	ev.Seq = seq + 1
	ev.PrevHash = auditHashPrefix + hex.EncodeToString(prev)
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
	return tx.Put(bucketMeta, metaAuditHead, head)
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
	var seq uint64
	err := v.store.Update(ctx, func(tx store.Tx) error {
		seq = 0
		e := ev
		if change != nil {
			if err := change(tx, &e); err == errSkipAudit {
				return nil
			} else if err != nil {
				return err
			}
		}
		if err := appendAudit(tx, &e); err != nil {
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
	ev := v.newEvent(ctx, "")
	ev.Outcome, ev.Reason = OutcomeDenied, reason
	return v.Audit(ctx, ev)
}

// Checkpoint is a signed statement of the audit chain's head.
type Checkpoint struct {
	Type      string    `json:"type"` // "checkpoint"
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"` // hash of event Seq
	Time      time.Time `json:"time"`
	Signature string    `json:"signature"` // base64 of the Tink Ed25519 signature
}

func checkpointMessage(seq uint64, hash string, t time.Time) []byte {
	return []byte(checkpointDomain + "\n" + strconv.FormatUint(seq, 10) + "\n" + hash + "\n" + t.UTC().Format(time.RFC3339Nano))
}

// Checkpoint signs the current head of the audit chain if it moved since the last checkpoint.
// The server calls it at intervals and at shutdown.
func (v *Vault) Checkpoint(ctx context.Context) (Checkpoint, bool, error) {
	var head []byte
	var lastCkpt uint64
	if err := v.store.View(ctx, func(tx store.Tx) error {
		head = append([]byte(nil), tx.Get(bucketMeta, metaAuditHead)...)
		return tx.Scan(bucketAuditCkpt, nil, nil, func(k, _ []byte) error {
			lastCkpt = binary.BigEndian.Uint64(k)
			return nil
		})
	}); err != nil {
		return Checkpoint{}, false, err
	}
	if len(head) != 40 {
		return Checkpoint{}, false, nil
	}
	seq := binary.BigEndian.Uint64(head[:8])
	if seq <= lastCkpt {
		return Checkpoint{}, false, nil
	}
	c := Checkpoint{Type: "checkpoint", Seq: seq, Hash: auditHashPrefix + hex.EncodeToString(head[8:]), Time: v.now().UTC()}
	sig, err := v.keyring().Sign(checkpointMessage(c.Seq, c.Hash, c.Time))
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
		(f.Method == "" || ev.Method == f.Method)
}

// ExportHeader is the first line of an export: the public keyset that verifies its
// checkpoints. A verifier should use a public key obtained separately when it can.
type ExportHeader struct {
	Type         string          `json:"type"` // "header"
	FromSeq      uint64          `json:"from_seq"`
	PublicKeyset json.RawMessage `json:"public_keyset"`
	// AnchorSeq and AnchorHash name the last pruned event when the export starts right after
	// it: the first event must chain to AnchorHash.
	AnchorSeq  uint64 `json:"anchor_seq,omitempty"`
	AnchorHash string `json:"anchor_hash,omitempty"`
	// AnchorSignature signs (AnchorSeq, AnchorHash) with the audit key, made when pruning.
	AnchorSignature string `json:"anchor_signature,omitempty"`
}

func anchorMessage(seq uint64, hash string) []byte {
	return []byte("tokenvault/audit/anchor/v1\n" + strconv.FormatUint(seq, 10) + "\n" + hash)
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
	if err := v.store.View(ctx, func(tx store.Tx) error {
		if e := tx.Get(bucketMeta, metaAuditExported); len(e) == 8 {
			delivered = binary.BigEndian.Uint64(e)
		}
		if a := tx.Get(bucketMeta, metaAuditAnchor); len(a) >= 8 {
			delivered = max(delivered, binary.BigEndian.Uint64(a[:8]))
		}
		return nil
	}); err != nil {
		return err
	}
	contiguous := fromSeq <= delivered+1
	cw := &lastSeqWriter{w: w}
	if err := exportAudit(ctx, v.store, fromSeq, pub, cw); err != nil {
		return err
	}
	// Everything up to the last event written has been delivered (the caller's writer took it).
	if cw.last > 0 && contiguous {
		return v.markExported(ctx, cw.last)
	}
	return nil
}

// lastSeqWriter passes lines through and remembers the last event's sequence number.
type lastSeqWriter struct {
	w    io.Writer
	buf  []byte
	last uint64
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
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
		}
		if json.Unmarshal(l.buf[:i], &probe) == nil && probe.Type == "" && probe.Seq > 0 {
			l.last = probe.Seq
		}
		l.buf = l.buf[i+1:]
	}
	return n, err
}

func exportAudit(ctx context.Context, s store.Store, fromSeq uint64, pub []byte, w io.Writer) error {
	if fromSeq == 0 {
		fromSeq = 1
	}
	h := ExportHeader{Type: "header", FromSeq: fromSeq, PublicKeyset: json.RawMessage(compactJSON(pub))}
	if err := s.View(ctx, func(tx store.Tx) error {
		if a := tx.Get(bucketMeta, metaAuditAnchor); len(a) > 40 {
			seq := binary.BigEndian.Uint64(a[:8])
			if fromSeq <= seq+1 {
				h.FromSeq, h.AnchorSeq, h.AnchorHash = seq+1, seq, auditHashPrefix+hex.EncodeToString(a[8:40])
				h.AnchorSignature = base64.StdEncoding.EncodeToString(a[40:])
				fromSeq = seq + 1
			}
		}
		return nil
	}); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	hdr, err := json.Marshal(h)
	if err != nil {
		return err
	}
	bw.Write(hdr)
	bw.WriteByte('\n')
	err = s.View(ctx, func(tx store.Tx) error {
		ckpts := map[uint64][]byte{}
		if err := tx.Scan(bucketAuditCkpt, nil, seqKey(fromSeq), func(k, val []byte) error {
			ckpts[binary.BigEndian.Uint64(k)] = append([]byte(nil), val...)
			return nil
		}); err != nil {
			return err
		}
		return tx.Scan(bucketAudit, nil, seqKey(fromSeq), func(k, val []byte) error {
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

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return b
	}
	return out.Bytes()
}

// VerifyReport is the result of verifying an audit trail.
type VerifyReport struct {
	Events      uint64 `json:"events"` // events read
	FirstSeq    uint64 `json:"first_seq"`
	LastSeq     uint64 `json:"last_seq"`
	Checkpoints int    `json:"checkpoints"`       // valid checkpoints
	SignedUpTo  uint64 `json:"signed_up_to"`      // the last event covered by a valid checkpoint
	Unsigned    uint64 `json:"unsigned"`          // events after the last valid checkpoint (truncation there is undetectable)
	BadSeq      uint64 `json:"bad_seq,omitempty"` // the first bad sequence number (0: intact)
	Problem     string `json:"problem,omitempty"` // what is wrong at BadSeq
}

// OK reports whether the trail verified.
func (r *VerifyReport) OK() bool { return r.Problem == "" }

// VerifyAudit checks an export (JSON lines) with publicKeyset, or, when publicKeyset is nil,
// with the keyset in the export's header. It checks sequence numbers, the hash chain and every
// checkpoint signature, and reports the first bad sequence number.
func VerifyAudit(r io.Reader, publicKeyset []byte) (VerifyReport, error) {
	var rep VerifyReport
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var verifier *keyring.Verifier
	var prevHash, anchorHash string
	var anchorSeq, fromSeq uint64
	sawHeader := false
	var expect uint64
	fail := func(seq uint64, problem string) (VerifyReport, error) {
		rep.BadSeq, rep.Problem = seq, problem
		return rep, fmt.Errorf("%w: at sequence %d: %s", ErrAuditTampered, seq, problem)
	}
	if publicKeyset != nil {
		v, err := keyring.NewVerifier(publicKeyset)
		if err != nil {
			return rep, err
		}
		verifier = v
	}
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			return fail(expect+1, fmt.Sprintf("line %d is not JSON", line))
		}
		switch probe.Type {
		case "header":
			var h ExportHeader
			if line != 1 || json.Unmarshal(b, &h) != nil {
				return fail(expect+1, "misplaced or malformed header")
			}
			if verifier == nil {
				v, err := keyring.NewVerifier(h.PublicKeyset)
				if err != nil {
					return fail(h.FromSeq, "header holds no usable public keyset")
				}
				verifier = v
			}
			anchorSeq, anchorHash, fromSeq, sawHeader = h.AnchorSeq, h.AnchorHash, h.FromSeq, true
			if anchorHash != "" {
				sig, err := base64.StdEncoding.DecodeString(h.AnchorSignature)
				if err != nil || verifier.Verify(sig, anchorMessage(anchorSeq, anchorHash)) != nil {
					return fail(anchorSeq+1, "the pruning anchor's signature does not verify")
				}
				if fromSeq != anchorSeq+1 {
					return fail(anchorSeq+1, "the header's start does not follow its pruning anchor")
				}
			}
		case "checkpoint":
			var c Checkpoint
			if err := json.Unmarshal(b, &c); err != nil {
				return fail(expect, "malformed checkpoint")
			}
			sig, err := base64.StdEncoding.DecodeString(c.Signature)
			if verifier == nil || err != nil || verifier.Verify(sig, checkpointMessage(c.Seq, c.Hash, c.Time)) != nil {
				return fail(c.Seq, "checkpoint signature does not verify")
			}
			if c.Seq != rep.LastSeq || c.Hash != prevHash {
				return fail(c.Seq, "checkpoint does not match the events before it (edited, deleted or reordered events)")
			}
			rep.Checkpoints++
			rep.SignedUpTo = c.Seq
		case "":
			var ev AuditEvent
			if err := json.Unmarshal(b, &ev); err != nil {
				return fail(expect+1, "malformed event")
			}
			if rep.Events == 0 {
				if !sawHeader {
					return fail(ev.Seq, "not an export: the header line with the public key and start is missing")
				}
				if fromSeq != 0 && ev.Seq != fromSeq {
					return fail(fromSeq, fmt.Sprintf("the export starts at %d but its first event is %d (events deleted at the start)", fromSeq, ev.Seq))
				}
				rep.FirstSeq, expect = ev.Seq, ev.Seq
				if ev.Seq == 1 && ev.PrevHash != auditHashPrefix+hex.EncodeToString(make([]byte, 32)) {
					return fail(1, "first event does not start the chain")
				}
				if anchorHash != "" && (ev.Seq != anchorSeq+1 || ev.PrevHash != anchorHash) {
					return fail(ev.Seq, "first event does not chain to the pruning anchor (events deleted after pruning)")
				}
			} else {
				expect++
				if ev.Seq != expect {
					return fail(expect, fmt.Sprintf("expected event %d, found %d (deleted, inserted or reordered events)", expect, ev.Seq))
				}
				if ev.PrevHash != prevHash {
					return fail(ev.Seq-1, fmt.Sprintf("hash chain broken: event %d was edited (event %d no longer follows it)", ev.Seq-1, ev.Seq))
				}
			}
			sum := sha256.Sum256(b)
			prevHash = auditHashPrefix + hex.EncodeToString(sum[:])
			rep.Events++
			rep.LastSeq = ev.Seq
		default:
			return fail(expect+1, fmt.Sprintf("line %d has unknown type %q", line, probe.Type))
		}
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	switch {
	case rep.Events == 0:
	case rep.SignedUpTo == 0:
		rep.Unsigned = rep.Events
	case rep.LastSeq > rep.SignedUpTo:
		rep.Unsigned = rep.LastSeq - rep.SignedUpTo
	}
	return rep, nil
}

// VerifyStoreAudit verifies the audit trail of a store (opened offline) with the public
// keyset kept beside it in clear.
func VerifyStoreAudit(ctx context.Context, s store.Store) (VerifyReport, error) {
	var pub []byte
	if err := s.View(ctx, func(tx store.Tx) error {
		pub = append([]byte(nil), tx.Get(bucketMeta, metaAuditPub)...)
		return nil
	}); err != nil {
		return VerifyReport{}, err
	}
	if len(pub) == 0 {
		return VerifyReport{}, errors.New("this store has no audit public key (never opened by a server?)")
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(exportAudit(ctx, s, 1, pub, pw)) }()
	rep, err := VerifyAudit(pr, pub)
	pr.CloseWithError(io.EOF)
	return rep, err
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
		last := tx.Get(bucketAudit, seqKey(throughSeq))
		if last == nil {
			return fmt.Errorf("%w: no audit event %d (already pruned?)", ErrInvalidArgument, throughSeq)
		}
		sum := sha256.Sum256(last)
		var keys [][]byte
		if err := tx.Scan(bucketAudit, nil, nil, func(k, _ []byte) error {
			if binary.BigEndian.Uint64(k) > throughSeq {
				return store.ErrStopScan
			}
			keys = append(keys, bytes.Clone(k))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(bucketAudit, k); err != nil {
				return err
			}
			if err := tx.Delete(bucketAuditCkpt, k); err != nil {
				return err
			}
		}
		sig, err := v.keyring().Sign(anchorMessage(throughSeq, auditHashPrefix+hex.EncodeToString(sum[:])))
		if err != nil {
			return err
		}
		anchor := append(append(seqKey(throughSeq), sum[:]...), sig...)
		if err := tx.Put(bucketMeta, metaAuditAnchor, anchor); err != nil {
			return err
		}
		n = len(keys)
		e.Items = n
		return nil
	})
	return n, err
}

// publishAuditKey stores the audit public keyset in clear beside the trail, for offline
// verification with --data.
func (v *Vault) publishAuditKey(ctx context.Context) error {
	pub, err := v.keyring().AuditPublicKeyset()
	if err != nil {
		return err
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		if bytes.Equal(tx.Get(bucketMeta, metaAuditPub), pub) {
			return nil
		}
		return tx.Put(bucketMeta, metaAuditPub, pub)
	})
}

// uniqueSorted returns the distinct strings of in, sorted.
func uniqueSorted(in []string) []string {
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

func verifySig(publicKeyset, sig, msg []byte) error {
	v, err := keyring.NewVerifier(publicKeyset)
	if err != nil {
		return err
	}
	if v.Verify(sig, msg) != nil {
		return ErrAuditTampered
	}
	return nil
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
