package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
)

// chains builds a multi-replica trail: events at the given sequence numbers (gaps allowed),
// each on the chain named beside it.
type chains struct {
	*trail
	seqs  []uint64
	heads map[string]audit.Head
	at    map[uint64]audit.Head // the heads after each event
}

func newChains(t *testing.T, events ...any) *chains {
	c := &chains{trail: newTrail(t, 0, 0), heads: map[string]audit.Head{}, at: map[uint64]audit.Head{}}
	for i := 0; i < len(events); i += 2 {
		seq, replica := uint64(events[i].(int)), events[i+1].(string)
		prev := audit.ZeroHash
		if h, ok := c.heads[replica]; ok {
			prev = h.Hash
		}
		b, _ := json.Marshal(audit.Event{Seq: seq, Replica: replica, Time: c.t0.Add(time.Duration(seq) * time.Second), Method: "m", Outcome: "allowed", PrevHash: prev})
		c.lines = append(c.lines, b)
		c.seqs = append(c.seqs, seq)
		c.heads[replica] = audit.Head{Replica: replica, Seq: seq, Hash: audit.Hash(b)}
	}
	return c
}

// checkpoint signs the heads of all chains as they are after event upTo.
func (c *chains) checkpoint(upTo uint64, at time.Time) audit.Checkpoint {
	heads := map[string]audit.Head{}
	for i, s := range c.seqs {
		if s > upTo {
			break
		}
		var ev audit.Event
		json.Unmarshal(c.lines[i], &ev)
		heads[ev.Replica] = audit.Head{Replica: ev.Replica, Seq: s, Hash: audit.Hash(c.lines[i])}
	}
	ck := audit.Checkpoint{Type: "checkpoint", Time: at}
	for _, r := range []string{"", "a", "b", "c"} {
		if h, ok := heads[r]; ok {
			ck.Heads = append(ck.Heads, h)
			if h.Seq > ck.Seq {
				ck.Seq, ck.Hash = h.Seq, h.Hash
			}
		}
	}
	ck.Signature = c.sign(ck.Message())
	return ck
}

// verify feeds the trail as a store's, with checkpoints after the events they name.
func (c *chains) verify(opts audit.Options, ckpts ...audit.Checkpoint) (audit.Report, error) {
	v, err := audit.NewVerifier(opts)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := v.StartChains(nil); err != nil {
		return v.Finish()
	}
	for i, l := range c.lines {
		v.Event(l)
		for _, ck := range ckpts {
			if ck.Seq == c.seqs[i] {
				v.Checkpoint(ck)
			}
		}
	}
	return v.Finish()
}

func TestVerifyChains(t *testing.T) {
	c := newChains(t, 1, "a", 2, "b", 4, "a", 5, "b", 7, "a", 8, "b")
	at := c.t0.Add(9 * time.Second)
	key := audit.Options{PublicKeyset: c.pub, Strict: true}
	full := c.checkpoint(8, at)
	rep, err := c.verify(key, full)
	if err != nil || len(rep.Chains) != 2 || rep.Events != 6 || rep.SignedUpTo != 8 {
		t.Fatalf("two chains with gaps, checkpointed: %+v, %v", rep, err)
	}
	// The heads cannot be dropped: the signature covers them.
	stripped := full
	stripped.Heads = nil
	rep, err = c.verify(key, stripped)
	wantFail(t, rep, err, 8, "signature does not verify")
	// A checkpoint naming b at 5 and a at 7: b's event 8 is the tail; young, it passes
	// (reported), --strict refuses it.
	mid := c.checkpoint(7, at)
	rep, err = c.verify(audit.Options{PublicKeyset: c.pub}, mid)
	if err != nil || rep.Unsigned != 1 || rep.SignedUpTo != 7 || len(rep.Warnings) != 1 {
		t.Fatalf("young tail of one chain: %+v, %v", rep, err)
	}
	rep, err = c.verify(key, mid)
	wantFail(t, rep, err, 8, "--strict")
	// A trail read as single-chain (Start) refuses replica events.
	v, _ := audit.NewVerifier(key)
	v.Start(0, "", "")
	v.Event(c.lines[0])
	rep, err = v.Finish()
	wantFail(t, rep, err, 1, "belongs to replica")
	// A witness of a's first event catches a rewritten from scratch without it (the trail's
	// own checkpoint re-signed with the stolen key).
	w := c.checkpoint(2, at)
	forged := newChains(t, 2, "b", 4, "a", 5, "b", 7, "a", 8, "b")
	forged.signer, forged.pub = c.signer, c.pub
	rep, err = forged.verify(audit.Options{PublicKeyset: c.pub, Witnessed: []audit.Checkpoint{w}}, forged.checkpoint(8, at))
	if err == nil || !strings.Contains(rep.Problem, "history rewritten") {
		t.Fatalf("chain a rewritten without its first event, against a witness: %+v, %v", rep, err)
	}
	// A chain that appears long after the last checkpoint (a forged chain) fails.
	late := newChains(t, 1, "a", 2, "b", 100, "c")
	rep, err = late.verify(audit.Options{PublicKeyset: late.pub}, late.checkpoint(2, late.t0.Add(2*time.Second)))
	if err == nil || rep.Replica != "c" || !strings.Contains(rep.Problem, "longer than the checkpoint interval") {
		t.Fatalf("a chain far past the last checkpoint: %+v, %v", rep, err)
	}
}
