package audit

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tokenvault/tokenvault/crypto/keyring"
)

// ErrTampered is returned by Verify and VerifySignature when a trail or a signature does not
// verify; Verify's Report says where.
var ErrTampered = errors.New("audit trail does not verify")

// Report is the result of verifying an audit trail.
type Report struct {
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
func (r *Report) OK() bool { return r.Problem == "" }

// Verify checks an export (JSON lines) with publicKeyset, or, when publicKeyset is nil,
// with the keyset in the export's header. It checks sequence numbers, the hash chain and every
// checkpoint signature, and reports the first bad sequence number.
func Verify(r io.Reader, publicKeyset []byte) (Report, error) {
	var rep Report
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var verifier *keyring.Verifier
	var prevHash, anchorHash string
	var anchorSeq, fromSeq uint64
	sawHeader := false
	var expect uint64
	fail := func(seq uint64, problem string) (Report, error) {
		rep.BadSeq, rep.Problem = seq, problem
		return rep, fmt.Errorf("%w: at sequence %d: %s", ErrTampered, seq, problem)
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
				if err != nil || verifier.Verify(sig, AnchorMessage(anchorSeq, anchorHash)) != nil {
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
			if verifier == nil || err != nil || verifier.Verify(sig, CheckpointMessage(c.Seq, c.Hash, c.Time)) != nil {
				return fail(c.Seq, "checkpoint signature does not verify")
			}
			if c.Seq != rep.LastSeq || c.Hash != prevHash {
				return fail(c.Seq, "checkpoint does not match the events before it (edited, deleted or reordered events)")
			}
			rep.Checkpoints++
			rep.SignedUpTo = c.Seq
		case "":
			var ev Event
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
				if ev.Seq == 1 && ev.PrevHash != ZeroHash {
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
			prevHash = Hash(b)
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
