// Package audit is the offline format of tokenvault's audit trail and its verification: the
// event line, the hash chain, signed checkpoints and pruning anchors, the export header, and
// Verify, which checks an export without a vault (the CLI's audit verify). The vault appends
// events to its store (vault.updateAudited) and signs checkpoints with its keyring; this
// package only reads and checks.
//
// # Format
//
// An export is JSON lines: an ExportHeader (type "header", the public keyset that verifies
// it and, after pruning, the signed anchor the first event chains to), then each Event's
// stored bytes in sequence order, each Checkpoint (type "checkpoint") right after the event it
// covers. Event n carries PrevHash, the Hash of the stored line of event n-1 (ZeroHash for
// event 1): editing, deleting, inserting or reordering an event breaks the chain. A checkpoint
// signs CheckpointMessage (seq, hash of event seq, time) with the Ed25519 audit key, so the
// head cannot be rewritten either. An export's header is signed too (ExportMessage: its
// start, its last event, its time). Verify (and Verifier, which the vault feeds a store's
// trail) requires every event to be covered by a signature under the trusted key: a
// checkpoint, the signed header, or a checkpoint an external witness kept (ReadWitness); a
// store's events after its last checkpoint pass only within the checkpoint interval of it,
// and Report.Unsigned counts them. docs/audit.md has the threat model.
//
// # Replica chains
//
// Replicas sharing a database (and each replica's concurrent writers, its lanes) each keep a
// chain of their own: Event.Replica names it, and PrevHash is the hash of the previous event
// of that chain. Sequence numbers stay global (gaps allowed); a Checkpoint then signs the
// Heads of all chains (Checkpoint.Message), an ExportHeader gives each chain's extent
// (Chains), and pruning anchors are per chain (Anchor). Verifier follows each chain by its
// links (chains.go) and checks that every checkpoint's heads are in the trail, so a chain
// edited, cut short or deleted as a whole is caught; the Report says per chain what is
// covered (Report.Chains). A trail with no replica chains keeps the first format and is
// verified exactly as before.
//
// Events hold no values and no keyed hashes of values: only token fingerprints, counts and
// names.
package audit
