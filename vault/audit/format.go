package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// The line format of an export and of the stored trail.

// HashPrefix starts every hash in the trail: "sha256:" and 64 hex digits.
const HashPrefix = "sha256:"

// ZeroHash is the PrevHash of event 1: the chain starts from 32 zero bytes.
var ZeroHash = HashOf(make([]byte, 32))

// Hash returns the hash of one stored event line, which the next event carries as PrevHash.
func Hash(line []byte) string {
	sum := sha256.Sum256(line)
	return HashOf(sum[:])
}

// HashOf formats a SHA-256 sum as the trail writes it.
func HashOf(sum []byte) string { return HashPrefix + hex.EncodeToString(sum) }

// Actor is who made a request.
type Actor struct {
	CredentialID string `json:"credential_id,omitempty"`
	Role         string `json:"role,omitempty"`
	Vendor       string `json:"vendor,omitempty"`
	// AuthMethod is how the caller authenticated: "secret", "jwt" or "cert" (empty in events
	// written before tokenvault recorded it, and for actors no credential authenticated).
	AuthMethod string `json:"auth_method,omitempty"`
	// AuthSubject is the workload identity it authenticated with: the JWT subject or the
	// client certificate SAN bound to the credential; empty for a bearer secret. Never a
	// secret or a token.
	AuthSubject string `json:"auth_subject,omitempty"`
}

// Event is one entry of the audit trail: one line of JSON. It never holds a value or a keyed hash of one.
type Event struct {
	Seq uint64 `json:"seq"`
	// Replica names the chain the event belongs to: the replica that wrote it (vault
	// Config.ReplicaID). Empty, and then absent from the line, for the single-process chain,
	// so events written before replicas existed keep their bytes.
	Replica   string    `json:"replica,omitempty"`
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
	Target string `json:"target,omitempty"`
	// PrevHash is the Hash of the previous event of the same chain (Replica); ZeroHash for
	// the chain's first event.
	PrevHash string `json:"prev_hash"`
}

const checkpointDomain = "tokenvault/audit/checkpoint/v1"

// Checkpoint is a signed statement of the audit chain's head.
type Checkpoint struct {
	Type string    `json:"type"` // "checkpoint"
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"` // hash of event Seq
	Time time.Time `json:"time"`
	// Heads are the heads of every chain of a multi-replica trail at one snapshot, sorted
	// by replica; Seq and Hash are then the one with the highest sequence number. Absent
	// for the single-process chain, whose checkpoints keep their first format.
	Heads     []Head `json:"heads,omitempty"`
	Signature string `json:"signature"` // base64 of the Tink Ed25519 signature
}

// Head is the last event of one chain: its replica, sequence number and hash.
type Head struct {
	Replica string `json:"replica"`
	Seq     uint64 `json:"seq"`
	Hash    string `json:"hash"`
}

// CheckpointMessage is what a checkpoint's signature signs: event seq has hash, at t.
func CheckpointMessage(seq uint64, hash string, t time.Time) []byte {
	return []byte(checkpointDomain + "\n" + strconv.FormatUint(seq, 10) + "\n" + hash + "\n" + t.UTC().Format(time.RFC3339Nano))
}

const checkpointDomainV2 = "tokenvault/audit/checkpoint/v2"

// Message is what c's signature signs: CheckpointMessage for a single-chain checkpoint;
// with Heads, the v2 domain line, then the JSON of seq, hash, time (RFC 3339, UTC) and heads.
func (c Checkpoint) Message() []byte {
	if len(c.Heads) == 0 {
		return CheckpointMessage(c.Seq, c.Hash, c.Time)
	}
	body, _ := json.Marshal(struct {
		Seq   uint64 `json:"seq"`
		Hash  string `json:"hash"`
		Time  string `json:"time"`
		Heads []Head `json:"heads"`
	}{c.Seq, c.Hash, c.Time.UTC().Format(time.RFC3339Nano), c.Heads})
	return append([]byte(checkpointDomainV2+"\n"), body...)
}

// ExportHeader is the first line of an export: the public keyset that verifies its
// checkpoints, and the signed extent of the export. A verifier should use a public key
// obtained separately when it can.
type ExportHeader struct {
	Type         string          `json:"type"` // "header"
	FromSeq      uint64          `json:"from_seq"`
	PublicKeyset json.RawMessage `json:"public_keyset"`
	// PrevHash is the hash the first event (FromSeq) chains to: ZeroHash from event 1.
	PrevHash string `json:"prev_hash,omitempty"`
	// ToSeq and ToHash are the last event of the export and its hash (ToSeq < FromSeq: the
	// export holds no event).
	ToSeq  uint64 `json:"to_seq,omitempty"`
	ToHash string `json:"to_hash,omitempty"`
	// Time is when the export was taken.
	Time time.Time `json:"time,omitzero"`
	// Signature signs ExportMessage(header) with the audit key, so that the export's start,
	// its end and everything between them are covered. Exports made before tokenvault signed
	// them have none.
	Signature string `json:"signature,omitempty"`
	// AnchorSeq and AnchorHash name the last pruned event when the export starts right after
	// it: the first event must chain to AnchorHash.
	AnchorSeq  uint64 `json:"anchor_seq,omitempty"`
	AnchorHash string `json:"anchor_hash,omitempty"`
	// AnchorSignature signs (AnchorSeq, AnchorHash) with the audit key, made when pruning.
	AnchorSignature string `json:"anchor_signature,omitempty"`
	// Chains, in a multi-replica trail, give the extent of every chain in the export,
	// sorted by replica; the single-chain fields above (PrevHash, ToHash, Anchor…) are then
	// unused. The signature covers them (ExportMessage).
	Chains []ChainExtent `json:"chains,omitempty"`
}

// ChainExtent is one chain's part of an export.
type ChainExtent struct {
	Replica string `json:"replica"`
	// PrevSeq and PrevHash are the event the chain's first event in the export follows
	// (0 and ZeroHash from the chain's start). A chain with no event in the export has
	// ToSeq == PrevSeq.
	PrevSeq  uint64 `json:"prev_seq,omitempty"`
	PrevHash string `json:"prev_hash"`
	// ToSeq and ToHash are the chain's head when the export was taken.
	ToSeq  uint64 `json:"to_seq,omitempty"`
	ToHash string `json:"to_hash,omitempty"`
	// Anchor is the chain's signed pruning anchor when the export starts at or before the
	// event after it (unsigned exports chain to it).
	Anchor *Anchor `json:"anchor,omitempty"`
}

// Anchor is the signed hash of the last pruned event of one chain.
type Anchor struct {
	Replica   string `json:"replica,omitempty"`
	Seq       uint64 `json:"seq"`
	Hash      string `json:"hash"`
	Signature string `json:"signature"`
}

// Message is what a's signature signs: AnchorMessage for the single-process chain, the v2
// domain with the replica's name for the others.
func (a Anchor) Message() []byte {
	if a.Replica == "" {
		return AnchorMessage(a.Seq, a.Hash)
	}
	return []byte("tokenvault/audit/anchor/v2\n" + strconv.Quote(a.Replica) + "\n" + strconv.FormatUint(a.Seq, 10) + "\n" + a.Hash)
}

// AnchorMessage is what a pruning anchor's signature signs: the last pruned event seq had hash.
func AnchorMessage(seq uint64, hash string) []byte {
	return []byte("tokenvault/audit/anchor/v1\n" + strconv.FormatUint(seq, 10) + "\n" + hash)
}

const exportDomain = "tokenvault/audit/export/v1"

// ExportMessage is what an export header's signature signs: the export runs from event
// FromSeq, chained to PrevHash, to event ToSeq with hash ToHash, taken at Time, starting after
// the pruning anchor (AnchorSeq, AnchorHash) when it has one. A multi-replica header (Chains)
// signs the domain line with "/chains", then the JSON of from_seq, to_seq, time and each
// chain's extent and anchor (without the anchor's own signature).
func ExportMessage(h ExportHeader) []byte {
	if len(h.Chains) > 0 {
		type signedExtent struct {
			Replica    string `json:"replica"`
			PrevSeq    uint64 `json:"prev_seq"`
			PrevHash   string `json:"prev_hash"`
			ToSeq      uint64 `json:"to_seq"`
			ToHash     string `json:"to_hash"`
			AnchorSeq  uint64 `json:"anchor_seq"`
			AnchorHash string `json:"anchor_hash"`
		}
		cs := make([]signedExtent, len(h.Chains))
		for i, c := range h.Chains {
			cs[i] = signedExtent{Replica: c.Replica, PrevSeq: c.PrevSeq, PrevHash: c.PrevHash, ToSeq: c.ToSeq, ToHash: c.ToHash}
			if c.Anchor != nil {
				cs[i].AnchorSeq, cs[i].AnchorHash = c.Anchor.Seq, c.Anchor.Hash
			}
		}
		body, _ := json.Marshal(struct {
			FromSeq uint64         `json:"from_seq"`
			ToSeq   uint64         `json:"to_seq"`
			Time    string         `json:"time"`
			Chains  []signedExtent `json:"chains"`
		}{h.FromSeq, h.ToSeq, h.Time.UTC().Format(time.RFC3339Nano), cs})
		return append([]byte(exportDomain+"/chains\n"), body...)
	}
	return []byte(exportDomain + "\n" + strconv.FormatUint(h.FromSeq, 10) + "\n" + h.PrevHash + "\n" +
		strconv.FormatUint(h.ToSeq, 10) + "\n" + h.ToHash + "\n" + h.Time.UTC().Format(time.RFC3339Nano) + "\n" +
		strconv.FormatUint(h.AnchorSeq, 10) + "\n" + h.AnchorHash)
}

// DefaultCheckpointInterval is how often a server signs the head of its trail by default.
const DefaultCheckpointInterval = 10 * time.Second

// TailGrace is added to the checkpoint interval when judging whether an unsigned tail is
// young enough: ticks are late, and signing takes a moment.
const TailGrace = 2 * time.Second
