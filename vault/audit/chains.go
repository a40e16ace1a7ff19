package audit

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Verification of a multi-replica trail: one hash chain per replica (Event.Replica), the
// events of all chains interleaved in global sequence order, and checkpoints that sign the
// heads of every chain at one snapshot (Checkpoint.Heads). The single-process trail (no
// replica names, the first format) is verified by the code in verify.go, unchanged.

// ChainReport is one chain's part of a Report.
type ChainReport struct {
	Replica    string `json:"replica"`
	Events     uint64 `json:"events"`
	FirstSeq   uint64 `json:"first_seq,omitempty"`
	LastSeq    uint64 `json:"last_seq,omitempty"`
	SignedUpTo uint64 `json:"signed_up_to,omitempty"` // the chain's last event covered by a signature
	Unsigned   uint64 `json:"unsigned"`               // the chain's events after it
}

type pendingEvent struct {
	seq  uint64
	hash string
	time time.Time
}

type witnessed struct {
	seq  uint64
	hash string
	time time.Time
}

// chain is the state of one replica's chain.
type chain struct {
	replica string
	// The start: the event the chain's first event in this trail follows (0, ZeroHash at
	// the chain's start), from a pruning anchor or the export header.
	startSeq  uint64
	startHash string
	hdr       *ChainExtent // its extent in a signed export header

	events            uint64
	firstSeq, lastSeq uint64
	lastHash          string
	covSeq            uint64
	covHash           string
	covTime           time.Time // the latest signature naming the chain (zero: none)
	pending           []pendingEvent
	witness           []witnessed // witnessed heads not yet met, by seq
}

// multi is a Verifier's state for a multi-replica trail.
type multi struct {
	chains   map[string]*chain
	lastCkpt time.Time // the latest valid checkpoint's time
}

func (v *Verifier) chain(replica string) *chain {
	c := v.m.chains[replica]
	if c == nil {
		c = &chain{replica: replica, startHash: ZeroHash, lastHash: ZeroHash, covHash: ZeroHash}
		v.m.chains[replica] = c
	}
	return c
}

func (v *Verifier) failAt(replica string, seq uint64, problem string) error {
	if v.err == nil {
		v.rep.Replica = replica
	}
	return v.fail(seq, problem)
}

func name(replica string) string {
	if replica == "" {
		return "the single-process chain"
	}
	return "replica " + strconv.Quote(replica)
}

// startMulti starts a multi-replica trail: witnesses are sorted into their chains.
func (v *Verifier) startMulti() error {
	v.m = &multi{chains: map[string]*chain{}}
	for _, c := range v.opts.Witnessed {
		if !v.valid(c.Signature, c.Message()) {
			return v.fail(c.Seq, fmt.Sprintf("the witnessed checkpoint at %d (%s) does not verify under the trusted key", c.Seq, c.Time.Format(time.RFC3339)))
		}
		for _, h := range checkpointHeads(c) {
			ch := v.chain(h.Replica)
			ch.witness = append(ch.witness, witnessed{h.Seq, h.Hash, c.Time})
		}
	}
	for _, ch := range v.m.chains {
		sort.SliceStable(ch.witness, func(i, j int) bool { return ch.witness[i].seq < ch.witness[j].seq })
	}
	return nil
}

// checkpointHeads returns the chain heads c signs: its Heads, or for a single-chain
// checkpoint the head of the single-process chain.
func checkpointHeads(c Checkpoint) []Head {
	if len(c.Heads) == 0 {
		return []Head{{Seq: c.Seq, Hash: c.Hash}}
	}
	return c.Heads
}

// StartChains starts a store's multi-replica trail, with the signed pruning anchor of each
// chain that has one.
func (v *Verifier) StartChains(anchors []Anchor) error {
	if v.err != nil {
		return v.err
	}
	if v.key == nil {
		return fmt.Errorf("audit: verifying a store's trail needs a public keyset")
	}
	v.started = true
	if err := v.startMulti(); err != nil {
		return err
	}
	for _, a := range anchors {
		if !v.valid(a.Signature, a.Message()) {
			return v.failAt(a.Replica, a.Seq+1, fmt.Sprintf("the pruning anchor of %s does not verify", name(a.Replica)))
		}
		v.chain(a.Replica).anchorAt(a.Seq, a.Hash)
	}
	return nil
}

// anchorAt starts the chain after event seq with hash, which a signature vouches for.
func (c *chain) anchorAt(seq uint64, hash string) {
	c.startSeq, c.startHash, c.lastHash = seq, hash, hash
	c.covSeq, c.covHash = seq, hash
}

// headerMulti starts a multi-replica export.
func (v *Verifier) headerMulti(h ExportHeader) error {
	if err := v.startMulti(); err != nil {
		return err
	}
	for i := range h.Chains {
		e := &h.Chains[i]
		if i > 0 && h.Chains[i-1].Replica >= e.Replica {
			return v.failAt(e.Replica, h.FromSeq, "the export header's chains are not sorted or repeat a replica")
		}
		c := v.chain(e.Replica)
		switch {
		case v.hdrSigned:
			c.hdr = e
			c.anchorAt(e.PrevSeq, e.PrevHash)
		case e.Anchor != nil:
			a := *e.Anchor
			a.Replica = e.Replica
			if !v.valid(a.Signature, a.Message()) {
				return v.failAt(e.Replica, a.Seq+1, fmt.Sprintf("the pruning anchor of %s does not verify", name(e.Replica)))
			}
			c.anchorAt(a.Seq, a.Hash)
		}
	}
	return nil
}

func (v *Verifier) eventMulti(ev *Event, line []byte) error {
	if v.rep.Events == 0 {
		if v.export && ev.Seq < v.hdr.FromSeq {
			return v.failAt(ev.Replica, v.hdr.FromSeq, fmt.Sprintf("the export starts at %d but holds event %d", v.hdr.FromSeq, ev.Seq))
		}
		v.rep.FirstSeq = ev.Seq
	} else if ev.Seq <= v.rep.LastSeq {
		return v.failAt(ev.Replica, ev.Seq, fmt.Sprintf("event %d comes after event %d: events reordered or inserted", ev.Seq, v.rep.LastSeq))
	}
	c := v.m.chains[ev.Replica]
	if v.hdrSigned && (c == nil || c.hdr == nil) {
		return v.failAt(ev.Replica, ev.Seq, fmt.Sprintf("event %d belongs to %s, which the export's signed header does not name: events inserted", ev.Seq, name(ev.Replica)))
	}
	c = v.chain(ev.Replica)
	if ev.PrevHash != c.lastHash {
		if c.events == 0 {
			return v.failAt(c.replica, ev.Seq, fmt.Sprintf("the first event of %s (%d) does not chain to its start (event %d): events deleted at its start, or edited", name(c.replica), ev.Seq, c.startSeq))
		}
		return v.failAt(c.replica, c.lastSeq, fmt.Sprintf("hash chain of %s broken after event %d: event %d does not follow it (an event edited, deleted, inserted or reordered)", name(c.replica), c.lastSeq, ev.Seq))
	}
	if ev.Seq <= c.startSeq {
		return v.failAt(c.replica, ev.Seq, fmt.Sprintf("event %d of %s is not after its start (event %d)", ev.Seq, name(c.replica), c.startSeq))
	}
	h := Hash(line)
	var seen []time.Time // witnessed checkpoints of this event
	for len(c.witness) > 0 && c.witness[0].seq <= ev.Seq {
		w := c.witness[0]
		c.witness = c.witness[1:]
		switch {
		case w.seq <= c.startSeq:
			// before this trail's start of the chain (pruned, or before a partial export)
		case w.seq < ev.Seq || w.hash != h:
			first := max(c.covSeq+1, c.firstSeq)
			if c.events == 0 {
				first = ev.Seq
			}
			return v.failAt(c.replica, first, fmt.Sprintf("%s, events %d..%d: event %d differs from witnessed checkpoint: history rewritten (the witness holds a checkpoint of it signed at %s)", name(c.replica), first, ev.Seq, w.seq, w.time.Format(time.RFC3339)))
		default:
			seen = append(seen, w.time)
		}
	}
	if c.events == 0 {
		c.firstSeq = ev.Seq
	}
	c.events++
	c.lastSeq, c.lastHash = ev.Seq, h
	c.pending = append(c.pending, pendingEvent{ev.Seq, h, ev.Time})
	for _, t := range seen {
		v.rep.Witnessed++
		c.cover(ev.Seq, h, t)
	}
	v.rep.Events++
	v.rep.LastSeq = ev.Seq
	v.lastTime = ev.Time
	return nil
}

// cover records that a signature made at t vouches for the chain up to event seq.
func (c *chain) cover(seq uint64, hash string, t time.Time) {
	if seq >= c.covSeq {
		c.covSeq, c.covHash = seq, hash
		i := 0
		for i < len(c.pending) && c.pending[i].seq <= seq {
			i++
		}
		c.pending = slices.Delete(c.pending, 0, i)
	}
	if t.After(c.covTime) {
		c.covTime = t
	}
}

func (v *Verifier) checkpointMulti(ck Checkpoint) error {
	if len(ck.Heads) > 0 {
		top := ck.Heads[0]
		for i, h := range ck.Heads {
			if i > 0 && ck.Heads[i-1].Replica >= h.Replica {
				return v.fail(ck.Seq, "checkpoint heads not sorted or repeated")
			}
			if h.Seq > top.Seq {
				top = h
			}
		}
		if top.Seq != ck.Seq || top.Hash != ck.Hash {
			return v.fail(ck.Seq, "checkpoint's seq and hash are not its highest head")
		}
	}
	for _, h := range checkpointHeads(ck) {
		c := v.m.chains[h.Replica]
		switch {
		case c == nil:
			return v.failAt(h.Replica, h.Seq, fmt.Sprintf("a checkpoint names event %d of %s, whose events are all missing: a replica's events deleted", h.Seq, name(h.Replica)))
		case h.Seq < c.startSeq:
			// before this trail's start of the chain (a partial export, pruning)
		case h.Seq == c.covSeq:
			if h.Hash != c.covHash {
				return v.failAt(h.Replica, h.Seq, fmt.Sprintf("checkpoint does not match event %d of %s (edited, deleted or inserted events)", h.Seq, name(h.Replica)))
			}
			c.cover(h.Seq, h.Hash, ck.Time)
		case h.Seq > c.lastSeq && c.events == 0 && c.startSeq == 0:
			return v.failAt(h.Replica, h.Seq, fmt.Sprintf("a checkpoint names event %d of %s, whose events are all missing: a replica's events deleted", h.Seq, name(h.Replica)))
		case h.Seq > c.lastSeq:
			return v.failAt(h.Replica, c.lastSeq+1, fmt.Sprintf("a checkpoint names event %d of %s, but its events end at %d: events removed from the end of the chain", h.Seq, name(h.Replica), c.lastSeq))
		default:
			i := slices.IndexFunc(c.pending, func(p pendingEvent) bool { return p.seq == h.Seq })
			if i < 0 || c.pending[i].hash != h.Hash {
				return v.failAt(h.Replica, h.Seq, fmt.Sprintf("checkpoint does not match event %d of %s (edited, deleted, inserted or reordered events)", h.Seq, name(h.Replica)))
			}
			c.cover(h.Seq, h.Hash, ck.Time)
		}
	}
	if ck.Seq > v.rep.LastSeq {
		return v.fail(ck.Seq, "checkpoint comes before the event it signs (reordered, or events deleted)")
	}
	v.rep.Checkpoints++
	if ck.Time.After(v.m.lastCkpt) {
		v.m.lastCkpt = ck.Time
	}
	return nil
}

func (v *Verifier) finishMulti() (Report, error) {
	rep := &v.rep
	names := make([]string, 0, len(v.m.chains))
	for r := range v.m.chains {
		names = append(names, r)
	}
	sort.Strings(names)
	if v.hdrSigned {
		for _, r := range names {
			c := v.m.chains[r]
			e := c.hdr
			if e == nil {
				continue // only witnessed
			}
			switch {
			case e.ToSeq == e.PrevSeq && c.events > 0:
				return v.rep, v.failAt(r, c.firstSeq, fmt.Sprintf("the export's signed header says %s has no event in it, but it holds some: events added", name(r)))
			case e.ToSeq != e.PrevSeq && c.events == 0:
				return v.rep, v.failAt(r, e.PrevSeq+1, fmt.Sprintf("the export's signed extent of %s is events %d..%d, but it holds none: a replica's events deleted", name(r), e.PrevSeq+1, e.ToSeq))
			case c.lastSeq < e.ToSeq:
				return v.rep, v.failAt(r, c.lastSeq+1, fmt.Sprintf("the export's signed extent of %s ends at event %d, but its events end at %d: events removed from the end", name(r), e.ToSeq, c.lastSeq))
			case c.lastSeq > e.ToSeq:
				return v.rep, v.failAt(r, e.ToSeq+1, fmt.Sprintf("the export's signed extent of %s ends at event %d: events after it were added", name(r), e.ToSeq))
			case c.lastHash != e.ToHash:
				first := max(c.covSeq+1, c.firstSeq)
				return v.rep, v.failAt(r, first, fmt.Sprintf("events of %s from %d do not match the export's signed head (event %d): edited, inserted or deleted events", name(r), first, e.ToSeq))
			}
			c.cover(c.lastSeq, c.lastHash, v.hdr.Time)
		}
	}
	// Witnessed heads past the end of a chain: events removed from its end.
	for _, r := range names {
		c := v.m.chains[r]
		for _, w := range c.witness {
			if w.seq <= c.startSeq {
				continue
			}
			if !v.export || (v.hdrSigned && w.time.Before(v.hdr.Time)) {
				what := "events removed from the end (truncated or rolled back)"
				if c.events == 0 && c.startSeq == 0 {
					what = "a replica's events deleted"
				}
				return v.rep, v.failAt(r, c.lastSeq+1, fmt.Sprintf("%s ends at event %d, but a checkpoint naming its event %d was witnessed at %s: %s", name(r), c.lastSeq, w.seq, w.time.Format(time.RFC3339), what))
			}
			rep.WitnessBeyond++
		}
	}
	if rep.WitnessBeyond > 0 {
		v.warn("%d witnessed chain heads are past the end of this export (made after it was taken, or the export's end was cut: an unsigned export cannot tell)", rep.WitnessBeyond)
	}
	rep.SignedUpTo = rep.LastSeq
	for _, r := range names {
		c := v.m.chains[r]
		cr := ChainReport{Replica: r, Events: c.events, FirstSeq: c.firstSeq, LastSeq: c.lastSeq, SignedUpTo: min(c.covSeq, c.lastSeq), Unsigned: uint64(len(c.pending))}
		if c.events > 0 || c.hdr != nil || c.startSeq > 0 {
			rep.Chains = append(rep.Chains, cr)
		}
		if len(c.pending) == 0 {
			continue
		}
		first, last := c.pending[0], c.pending[len(c.pending)-1]
		rep.Unsigned += uint64(len(c.pending))
		rep.SignedUpTo = min(rep.SignedUpTo, first.seq-1)
		since := c.covTime
		if since.IsZero() {
			since = v.m.lastCkpt // a chain that started after the last checkpoint
		}
		span := last.time.Sub(since)
		switch {
		case v.opts.Strict:
			return v.rep, v.failAt(r, first.seq, fmt.Sprintf("events %d..%d of %s are not covered by a valid checkpoint (--strict)", first.seq, last.seq, name(r)))
		case since.IsZero():
			return v.rep, v.failAt(r, first.seq, fmt.Sprintf("events %d..%d of %s are not covered by any valid checkpoint: they may have been edited, inserted or removed", first.seq, last.seq, name(r)))
		case v.export:
			return v.rep, v.failAt(r, first.seq, fmt.Sprintf("events %d..%d of %s are after the last valid checkpoint of an export whose header is not signed: they may have been edited, inserted or removed", first.seq, last.seq, name(r)))
		case span > v.opts.CheckpointInterval+TailGrace:
			return v.rep, v.failAt(r, first.seq, fmt.Sprintf("events %d..%d of %s are not covered by a valid checkpoint and run %s past the last one, longer than the checkpoint interval (%s): checkpoints were deleted or events rewritten", first.seq, last.seq, name(r), span.Round(time.Millisecond), v.opts.CheckpointInterval))
		}
		v.warn("%d events of %s after the last checkpoint are unsigned (events %d..%d, within the checkpoint interval of it): cutting or editing them cannot be detected; --strict refuses them", len(c.pending), name(r), first.seq, last.seq)
	}
	if rep.Events == 0 {
		rep.SignedUpTo = 0
	}
	return v.rep, nil
}
