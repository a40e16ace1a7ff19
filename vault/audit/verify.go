package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tokenvault/tokenvault/crypto/keyring"
)

// ErrTampered is returned by Verify and VerifySignature when a trail or a signature does not
// verify; Verify's Report says where.
var ErrTampered = errors.New("audit trail does not verify")

// Key sources of a Report: where the public key that verified the trail came from.
const (
	KeyFromPubkey = "pubkey" // given by the caller (--pubkey): the only trustworthy source
	KeyFromData   = "data"   // stored beside the trail being checked (--data without --pubkey)
	KeyFromExport = "export" // the export's own header (--file without --pubkey)
)

// Report is the result of verifying an audit trail.
type Report struct {
	Events      uint64 `json:"events"` // events read
	FirstSeq    uint64 `json:"first_seq"`
	LastSeq     uint64 `json:"last_seq"`
	Checkpoints int    `json:"checkpoints"`  // valid checkpoints in the trail
	SignedUpTo  uint64 `json:"signed_up_to"` // the last event covered by a valid signature (checkpoint, witnessed checkpoint or export header)
	Unsigned    uint64 `json:"unsigned"`     // events after SignedUpTo (cutting or editing them cannot be detected)
	// KeySource says where the trusted public key came from: pubkey, data or export.
	KeySource string `json:"key_source"`
	// HeaderSigned is set for an export whose header signature verified: its start, its end
	// and every event between them are covered.
	HeaderSigned bool `json:"header_signed,omitempty"`
	// Witnessed counts witnessed checkpoints that matched the trail; WitnessBeyond those past
	// its last event that do not show truncation (an export older than them).
	Witnessed     int      `json:"witnessed,omitempty"`
	WitnessBeyond int      `json:"witness_beyond,omitempty"`
	Warnings      []string `json:"warnings,omitempty"`
	BadSeq        uint64   `json:"bad_seq,omitempty"` // the first bad sequence number (0: intact)
	Problem       string   `json:"problem,omitempty"` // what is wrong at BadSeq
	// Replica names the chain of BadSeq in a multi-replica trail.
	Replica string `json:"replica,omitempty"`
	// Chains reports each chain of a multi-replica trail (absent for the single-process one).
	Chains []ChainReport `json:"chains,omitempty"`
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return r.Problem == "" }

// Options configure a verification.
type Options struct {
	// PublicKeyset is the trusted audit public keyset. Nil: an export's header keyset, which
	// proves nothing against whoever wrote the export (Report.KeySource says export).
	PublicKeyset []byte
	// KeySource is Report.KeySource when PublicKeyset is set (default KeyFromPubkey).
	KeySource string
	// Strict refuses any event not covered by a signature (no unsigned tail) and an export
	// whose header is not signed.
	Strict bool
	// CheckpointInterval is the server's checkpoint interval (default
	// DefaultCheckpointInterval): an unsigned tail of a store's trail passes (reported) only if
	// it spans at most this (plus TailGrace) after the last valid checkpoint.
	CheckpointInterval time.Duration
	// Witnessed are checkpoints kept by an external witness (ReadWitness). Each must verify
	// under the trusted key, and the trail must have the witnessed hash at each witnessed
	// sequence number it holds; those count as coverage.
	Witnessed []Checkpoint
}

// Verifier checks a trail fed to it in order: Header (an export) or Start (a store's trail),
// then Event and Checkpoint lines, then Finish. The first failure sticks: later calls return it.
type Verifier struct {
	opts Options
	key  *keyring.Verifier
	rep  Report
	err  error

	started, export, hdrSigned bool
	hdr                        ExportHeader
	anchorSeq                  uint64
	anchorHash                 string

	prevHash, lastHash string
	lastTime           time.Time
	covSeq             uint64    // last event covered by a valid signature
	covTime            time.Time // when that signature was made (zero: the anchor)
	witness            map[uint64][]Checkpoint

	m *multi // a multi-replica trail (chains.go); nil for the single-process chain
}

// NewVerifier returns a Verifier with opts.
func NewVerifier(opts Options) (*Verifier, error) {
	v := &Verifier{opts: opts}
	if v.opts.CheckpointInterval <= 0 {
		v.opts.CheckpointInterval = DefaultCheckpointInterval
	}
	if opts.PublicKeyset != nil {
		k, err := keyring.NewVerifier(opts.PublicKeyset)
		if err != nil {
			return nil, err
		}
		v.key = k
		v.rep.KeySource = opts.KeySource
		if v.rep.KeySource == "" {
			v.rep.KeySource = KeyFromPubkey
		}
	}
	return v, nil
}

func (v *Verifier) fail(seq uint64, problem string) error {
	if v.err == nil {
		v.rep.BadSeq, v.rep.Problem = seq, problem
		v.err = fmt.Errorf("%w: at sequence %d: %s", ErrTampered, seq, problem)
	}
	return v.err
}

func (v *Verifier) warn(format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, fmt.Sprintf(format, args...))
}

func (v *Verifier) valid(sig string, msg []byte) bool {
	b, err := base64.StdEncoding.DecodeString(sig)
	return err == nil && v.key != nil && v.key.Verify(b, msg) == nil
}

// Header starts an export.
func (v *Verifier) Header(h ExportHeader) error {
	if v.err != nil {
		return v.err
	}
	if v.started {
		return v.fail(v.rep.LastSeq+1, "misplaced header")
	}
	v.started, v.export, v.hdr = true, true, h
	if v.key == nil {
		k, err := keyring.NewVerifier(h.PublicKeyset)
		if err != nil {
			return v.fail(h.FromSeq, "header holds no usable public keyset")
		}
		v.key, v.rep.KeySource = k, KeyFromExport
	}
	if len(h.Chains) > 0 {
		if h.Signature != "" {
			if !v.valid(h.Signature, ExportMessage(h)) {
				return v.fail(h.FromSeq, "the export header's signature does not verify under the trusted key: its start, end, time or chains were changed")
			}
			v.hdrSigned, v.rep.HeaderSigned = true, true
		} else {
			if v.opts.Strict {
				return v.fail(max(h.FromSeq, 1), "the export header is not signed (--strict): export again with this version")
			}
			v.warn("the export header is not signed (its signature was removed): only its checkpoints cover it; export again")
		}
		return v.headerMulti(h)
	}
	if h.AnchorHash != "" {
		if !v.valid(h.AnchorSignature, AnchorMessage(h.AnchorSeq, h.AnchorHash)) {
			return v.fail(h.AnchorSeq+1, "the pruning anchor's signature does not verify")
		}
		if h.FromSeq != h.AnchorSeq+1 {
			return v.fail(h.AnchorSeq+1, "the header's start does not follow its pruning anchor")
		}
		v.anchorSeq, v.anchorHash = h.AnchorSeq, h.AnchorHash
	}
	if h.Signature != "" {
		if !v.valid(h.Signature, ExportMessage(h)) {
			return v.fail(h.FromSeq, "the export header's signature does not verify under the trusted key: its start, end or time were changed")
		}
		if h.FromSeq <= 1 && h.PrevHash != ZeroHash {
			return v.fail(1, "the export header's start is not the start of the chain")
		}
		v.hdrSigned, v.rep.HeaderSigned = true, true
	} else {
		if v.opts.Strict {
			return v.fail(max(h.FromSeq, 1), "the export header is not signed (--strict): export again with this version")
		}
		v.warn("the export header is not signed (an export made before tokenvault signed exports, or its signature was removed): only its checkpoints cover it; export again")
	}
	return v.loadWitness()
}

// Start starts a store's trail: from event 1, or after the signed pruning anchor (anchorSeq,
// anchorHash, anchorSig) when anchorHash is set.
func (v *Verifier) Start(anchorSeq uint64, anchorHash, anchorSig string) error {
	if v.err != nil {
		return v.err
	}
	if v.key == nil {
		return errors.New("audit: verifying a store's trail needs a public keyset")
	}
	v.started = true
	if anchorHash != "" {
		if !v.valid(anchorSig, AnchorMessage(anchorSeq, anchorHash)) {
			return v.fail(anchorSeq+1, "the pruning anchor's signature does not verify")
		}
		v.anchorSeq, v.anchorHash = anchorSeq, anchorHash
	}
	return v.loadWitness()
}

func (v *Verifier) loadWitness() error {
	v.witness = map[uint64][]Checkpoint{}
	for _, c := range v.opts.Witnessed {
		if !v.valid(c.Signature, c.Message()) {
			return v.fail(c.Seq, fmt.Sprintf("the witnessed checkpoint at %d (%s) does not verify under the trusted key", c.Seq, c.Time.Format(time.RFC3339)))
		}
		v.witness[c.Seq] = append(v.witness[c.Seq], c)
	}
	return nil
}

func (v *Verifier) cover(seq uint64, t time.Time) {
	if seq > v.covSeq || (seq == v.covSeq && t.After(v.covTime)) {
		v.covSeq, v.covTime = seq, t
	}
}

// Event checks the next event's stored line.
func (v *Verifier) Event(line []byte) error {
	if v.err != nil {
		return v.err
	}
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil {
		return v.fail(v.rep.LastSeq+1, "malformed event")
	}
	if !v.started {
		return v.fail(ev.Seq, "not an export: the header line with the public key and start is missing")
	}
	if v.m != nil {
		return v.eventMulti(&ev, line)
	}
	if ev.Replica != "" {
		return v.fail(ev.Seq, fmt.Sprintf("event %d belongs to replica %q, in a trail whose header or store names no replica chains: events inserted, or the chains were removed from the header", ev.Seq, ev.Replica))
	}
	if v.rep.Events == 0 {
		if v.export && v.hdr.FromSeq != 0 && ev.Seq != v.hdr.FromSeq {
			return v.fail(v.hdr.FromSeq, fmt.Sprintf("the export starts at %d but its first event is %d (events deleted at the start)", v.hdr.FromSeq, ev.Seq))
		}
		switch {
		case v.hdrSigned:
			if ev.PrevHash != v.hdr.PrevHash {
				return v.fail(ev.Seq, "the first event does not chain to the export's signed start (events deleted or edited at the start)")
			}
		case v.anchorHash != "":
			if ev.Seq != v.anchorSeq+1 || ev.PrevHash != v.anchorHash {
				return v.fail(v.anchorSeq+1, "first event does not chain to the pruning anchor (events deleted after pruning)")
			}
			v.cover(v.anchorSeq, time.Time{})
		case ev.Seq != 1:
			return v.fail(1, fmt.Sprintf("the trail starts at event %d, and nothing signed says where it starts (no signed export header, no pruning anchor): events before it could have been deleted", ev.Seq))
		case ev.PrevHash != ZeroHash:
			return v.fail(1, "first event does not start the chain")
		}
		v.rep.FirstSeq = ev.Seq
	} else {
		expect := v.rep.LastSeq + 1
		if ev.Seq != expect {
			return v.fail(expect, fmt.Sprintf("expected event %d, found %d (deleted, inserted or reordered events)", expect, ev.Seq))
		}
		if ev.PrevHash != v.prevHash {
			return v.fail(ev.Seq-1, fmt.Sprintf("hash chain broken: event %d was edited (event %d no longer follows it)", ev.Seq-1, ev.Seq))
		}
	}
	h := Hash(line)
	for _, c := range v.witness[ev.Seq] {
		if c.Hash != h {
			// The rewrite lies after the last event a signature vouches for, up to ev.Seq.
			first := max(v.covSeq+1, v.rep.FirstSeq)
			if v.rep.Events == 0 {
				first = ev.Seq
			}
			return v.fail(first, fmt.Sprintf("events %d..%d: event %d differs from witnessed checkpoint: history rewritten (the witness holds a checkpoint of it signed at %s)", first, ev.Seq, ev.Seq, c.Time.Format(time.RFC3339)))
		}
		v.rep.Witnessed++
		v.cover(ev.Seq, c.Time)
	}
	v.prevHash, v.lastHash, v.lastTime = h, h, ev.Time
	v.rep.Events++
	v.rep.LastSeq = ev.Seq
	return nil
}

// Checkpoint checks a checkpoint, which must follow the event it signs.
func (v *Verifier) Checkpoint(c Checkpoint) error {
	if v.err != nil {
		return v.err
	}
	if !v.valid(c.Signature, c.Message()) {
		return v.fail(c.Seq, "checkpoint signature does not verify under the trusted key")
	}
	if v.m != nil {
		return v.checkpointMulti(c)
	}
	if len(c.Heads) > 0 {
		return v.fail(c.Seq, "a checkpoint of several replica chains in a single-chain trail: the chains were removed from the header or the store")
	}
	if v.rep.Events == 0 || c.Seq != v.rep.LastSeq || c.Hash != v.prevHash {
		return v.fail(c.Seq, "checkpoint does not match the events before it (edited, deleted or reordered events)")
	}
	v.rep.Checkpoints++
	v.cover(c.Seq, c.Time)
	return nil
}

// Finish checks the end of the trail and what covers it, and returns the report.
func (v *Verifier) Finish() (Report, error) {
	if v.err != nil {
		return v.rep, v.err
	}
	if !v.started {
		return v.rep, v.fail(1, "empty: no header and no events")
	}
	if v.m != nil {
		return v.finishMulti()
	}
	rep := &v.rep
	if v.hdrSigned {
		h := v.hdr
		switch {
		case rep.Events == 0 && h.ToSeq >= h.FromSeq:
			return v.rep, v.fail(h.FromSeq, fmt.Sprintf("the export's signed extent is events %d..%d, but it holds none (events deleted)", h.FromSeq, h.ToSeq))
		case rep.Events == 0:
		case rep.LastSeq < h.ToSeq:
			return v.rep, v.fail(rep.LastSeq+1, fmt.Sprintf("the export's signed extent ends at event %d, but its events end at %d (events removed from the end)", h.ToSeq, rep.LastSeq))
		case rep.LastSeq > h.ToSeq:
			return v.rep, v.fail(h.ToSeq+1, fmt.Sprintf("the export's signed extent ends at event %d: events after it were added", h.ToSeq))
		case v.lastHash != h.ToHash:
			first := max(v.covSeq+1, rep.FirstSeq)
			return v.rep, v.fail(first, fmt.Sprintf("events %d..%d do not match the export's signed head (event %d): edited, inserted or deleted events at or after %d", first, h.ToSeq, h.ToSeq, first))
		default:
			v.cover(h.ToSeq, h.Time)
		}
	}
	// Witnessed checkpoints past the end: a store (or an export taken after them) lost events.
	for seq, cs := range v.witness {
		if seq <= rep.LastSeq || (rep.Events == 0 && seq < v.anchorSeq+1) {
			continue
		}
		for _, c := range cs {
			switch {
			case !v.export || (v.hdrSigned && c.Time.Before(v.hdr.Time)):
				return v.rep, v.fail(rep.LastSeq+1, fmt.Sprintf("the trail ends at event %d, but a checkpoint of event %d was witnessed at %s: events removed from the end (truncated or rolled back)", rep.LastSeq, seq, c.Time.Format(time.RFC3339)))
			default:
				rep.WitnessBeyond++
			}
		}
	}
	if rep.WitnessBeyond > 0 {
		v.warn("%d witnessed checkpoints are past the end of this export (made after it was taken, or the export's end was cut: an unsigned export cannot tell)", rep.WitnessBeyond)
	}
	if rep.Events == 0 {
		return v.rep, nil
	}
	rep.SignedUpTo = min(v.covSeq, rep.LastSeq)
	if v.covSeq >= rep.LastSeq {
		return v.rep, nil
	}
	first := max(v.covSeq+1, rep.FirstSeq)
	rep.Unsigned = rep.LastSeq - first + 1
	span := v.lastTime.Sub(v.covTime)
	switch {
	case v.opts.Strict:
		return v.rep, v.fail(first, fmt.Sprintf("events %d..%d are not covered by a valid checkpoint (--strict)", first, rep.LastSeq))
	case v.covTime.IsZero():
		return v.rep, v.fail(first, fmt.Sprintf("events %d..%d are not covered by any valid checkpoint: they may have been edited, inserted or removed", first, rep.LastSeq))
	case v.export:
		return v.rep, v.fail(first, fmt.Sprintf("events %d..%d are after the last valid checkpoint of an export whose header is not signed: they may have been edited, inserted or removed", first, rep.LastSeq))
	case span > v.opts.CheckpointInterval+TailGrace:
		return v.rep, v.fail(first, fmt.Sprintf("events %d..%d are not covered by a valid checkpoint and run %s past the last one, longer than the checkpoint interval (%s): checkpoints were deleted or events rewritten", first, rep.LastSeq, span.Round(time.Millisecond), v.opts.CheckpointInterval))
	}
	v.warn("%d events after the last checkpoint are unsigned (events %d..%d, within the checkpoint interval of it): cutting or editing them cannot be detected; --strict refuses them", rep.Unsigned, first, rep.LastSeq)
	return v.rep, nil
}

// Verify checks an export (JSON lines) with opts: sequence numbers, the hash chain, the
// header's signature, every checkpoint signature, the witnessed checkpoints, and that every
// event is covered by a signature. It reports the first bad sequence number.
func Verify(r io.Reader, opts Options) (Report, error) {
	v, err := NewVerifier(opts)
	if err != nil {
		return Report{}, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
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
			return v.rep, v.fail(v.rep.LastSeq+1, fmt.Sprintf("line %d is not JSON", line))
		}
		switch probe.Type {
		case "header":
			var h ExportHeader
			if line != 1 || json.Unmarshal(b, &h) != nil {
				return v.rep, v.fail(v.rep.LastSeq+1, "misplaced or malformed header")
			}
			err = v.Header(h)
		case "checkpoint":
			var c Checkpoint
			if json.Unmarshal(b, &c) != nil {
				return v.rep, v.fail(v.rep.LastSeq, "malformed checkpoint")
			}
			err = v.Checkpoint(c)
		case "":
			err = v.Event(b)
		default:
			return v.rep, v.fail(v.rep.LastSeq+1, fmt.Sprintf("line %d has unknown type %q", line, probe.Type))
		}
		if err != nil {
			return v.rep, err
		}
	}
	if err := sc.Err(); err != nil {
		return v.rep, err
	}
	return v.Finish()
}

// ReadWitness reads a witness's record: JSON lines, each a signed Checkpoint as the server
// sends it (blank lines are skipped).
func ReadWitness(r io.Reader) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal(b, &c); err != nil || c.Type != "checkpoint" || c.Signature == "" {
			return nil, fmt.Errorf("witness line %d is not a signed checkpoint", n)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// VerifySignature checks sig over msg with the audit public keyset (a checkpoint, an anchor or
// an erasure receipt). It returns ErrTampered for a signature that does not verify.
func VerifySignature(publicKeyset, sig, msg []byte) error {
	v, err := keyring.NewVerifier(publicKeyset)
	if err != nil {
		return err
	}
	if v.Verify(sig, msg) != nil {
		return ErrTampered
	}
	return nil
}
