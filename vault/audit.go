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
	c := Checkpoint{Type: "checkpoint", Seq: seq, Hash: audit.HashOf(head[8:]), Time: v.now().UTC()}
	sig, err := v.keyring().Sign(audit.CheckpointMessage(c.Seq, c.Hash, c.Time))
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
	if err := exportAudit(ctx, v.store, fromSeq, pub, v.keyring().Sign, v.now(), cw); err != nil {
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

// exportAudit writes the trail from fromSeq, from one snapshot: the header, then each event's
// stored bytes, each checkpoint right after the event it signs. With sign, the header is
// signed (audit.ExportMessage): its start, its last event and its time.
func exportAudit(ctx context.Context, s store.Store, fromSeq uint64, pub []byte, sign func([]byte) ([]byte, error), now time.Time, w io.Writer) error {
	if fromSeq == 0 {
		fromSeq = 1
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err := s.View(ctx, func(tx store.Tx) error {
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
			h.Time = now.UTC()
			sig, err := sign(audit.ExportMessage(h))
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
		bw.WriteByte('\n')
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
	if err := s.View(ctx, func(tx store.Tx) error {
		pub = append([]byte(nil), tx.Get(bucketMeta, metaAuditPub)...)
		anchor = append([]byte(nil), tx.Get(bucketMeta, metaAuditAnchor)...)
		return nil
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
		keys, err := scanKeys(tx, bucketAudit, nil, func(k []byte) bool { return binary.BigEndian.Uint64(k) > throughSeq })
		if err != nil {
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
		sig, err := v.keyring().Sign(audit.AnchorMessage(throughSeq, audit.HashOf(sum[:])))
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
