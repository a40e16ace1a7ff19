package vault

import (
	"bytes"
	"encoding/binary"

	"github.com/tokenvault/tokenvault/vault/store"
)

// The storage layout: every bucket and every key of bucket meta the vault uses, and the
// functions that build (and take apart) composite keys. doc.go's storage table lists the same
// buckets and meta keys; layout_test.go keeps the two in step.

// Buckets of the store used by the vault.
const (
	bucketRecords         store.Bucket = "records"         // recordKey → stored record, or tombstone
	bucketIndex           store.Bucket = "index"           // indexKey → token
	bucketSubjects        store.Bucket = "subjects"        // subjectKey → ""
	bucketSubjectKeys     store.Bucket = "subjectkeys"     // subject fingerprint → wrapped subject key
	bucketSubjectKeyIDs   store.Bucket = "subjectkeyids"   // subject fingerprint → the subject key's random id (16 bytes), for the erasure log
	bucketSubjectErasing  store.Bucket = "subjecterasing"  // subject fingerprint → erasingMark (JSON): the erasures of the subject under way
	bucketExpiry          store.Bucket = "expiry"          // expiryKey → ""
	bucketCanaries        store.Bucket = "canaries"        // recordKey → canary label
	bucketTemplates       store.Bucket = "templates"       // name → template definition (JSON)
	bucketCreds           store.Bucket = "creds"           // id → Credential (JSON)
	bucketCredHash        store.Bucket = "credhash"        // sha256(secret) → id (current, and previous during an overlap)
	bucketCredSAN         store.Bucket = "credsan"         // certificate SAN → id
	bucketCredJWT         store.Bucket = "credjwt"         // JWT subject → id (live credentials only)
	bucketGrants          store.Bucket = "grants"          // grantKey → Grant (JSON)
	bucketGrantIDs        store.Bucket = "grantids"        // id → vendor
	bucketAudit           store.Bucket = "audit"           // seqKey → event line (JSON)
	bucketAuditCkpt       store.Bucket = "auditckpt"       // seqKey → checkpoint (JSON)
	bucketAuditHead       store.Bucket = "audithead"       // replica → seq (8 bytes) + SHA-256 of its chain's last event
	bucketAuditAnchor     store.Bucket = "auditanchor"     // replica → seq + hash of its chain's last pruned event + its signature
	bucketAuditExported   store.Bucket = "auditexported"   // replica → seq (8 bytes) + SHA-256 of its chain's last event exports delivered without a gap
	bucketMeta            store.Bucket = "meta"            // the meta keys below → …
	bucketReplicas        store.Bucket = "replicas"        // replica id → replicaRow (JSON): heartbeat
	bucketLeases          store.Bucket = "leases"          // lease name → leaseRow (JSON): holder, epoch, expiry
	bucketGrantRate       store.Bucket = "grantrate"       // grant id → rate state (16 bytes): tokens, time
	bucketConsoleSessions store.Bucket = "consolesessions" // sha256(session id) → console session (the console's format)
)

// Keys of bucket meta.
var (
	metaKeyring       = []byte("keyring")         // the keyring wrapped under the KEK
	metaSchema        = []byte("schema_version")  // seqKey(SchemaVersion)
	metaKeyMeta       = []byte("keymeta")         // data key id → keyMeta (JSON)
	metaRewrap        = []byte("rewrap")          // rewrapState (JSON)
	metaAuditHead     = []byte("audit_head")      // seq (8 bytes) + SHA-256 of the last event of the single-process chain
	metaAuditPub      = []byte("audit_pubkey")    // the audit public keyset, in clear
	metaAuditAnchor   = []byte("audit_anchor")    // seq (8 bytes) + hash of the single-process chain's last pruned event + its signature
	metaAuditExported = []byte("audit_exported")  // seq (8 bytes) of the last event a full export delivered
	metaKeyringVer    = []byte("keyring_version") // counter (8 bytes) bumped by every change of the stored keyring
	metaKeyringPrime  = []byte("keyring_primary") // id (4 bytes) of the primary data key of the stored keyring
	metaCredGen       = []byte("cred_gen")        // counter (8 bytes) bumped by every credential write
	metaSubjectGen    = []byte("subject_gen")     // counter (8 bytes) bumped by every subject erasure
)

// recordKey is domain 0x00 token (buckets records and canaries).
func recordKey(domain, token string) []byte {
	return appendRecordKey(make([]byte, 0, len(domain)+1+len(token)), domain, token)
}

// appendRecordKey appends recordKey(domain, token) to k.
func appendRecordKey(k []byte, domain, token string) []byte {
	k = append(k, domain...)
	k = append(k, 0)
	return append(k, token...)
}

// splitRecordKey takes a recordKey apart; ok is false when k has no separator.
func splitRecordKey(k []byte) (domain, token string, ok bool) {
	d, t, ok := bytes.Cut(k, []byte{0})
	return string(d), string(t), ok
}

// indexKey is domain 0x00 template 0x00 fingerprint of the value (bucket index).
func indexKey(domain, tmpl string, fp []byte) []byte {
	k := make([]byte, 0, len(domain)+len(tmpl)+2+len(fp))
	k = append(k, domain...)
	k = append(k, 0)
	k = append(k, tmpl...)
	k = append(k, 0)
	return append(k, fp...)
}

// subjectKey is the subject's fingerprint followed by recordKey(domain, token) (bucket
// subjects), so a subject's tokens are one prefix scan.
func subjectKey(fp []byte, domain, token string) []byte {
	k := make([]byte, 0, len(fp)+len(domain)+1+len(token))
	k = append(k, fp...)
	k = append(k, domain...)
	k = append(k, 0)
	return append(k, token...)
}

// expiryKey is the expiry time (unix seconds, 8 bytes big-endian) followed by
// recordKey(domain, token) (bucket expiry), so a scan meets tokens in order of expiry.
func expiryKey(unix int64, domain, token string) []byte {
	k := make([]byte, 8, 8+len(domain)+1+len(token))
	binary.BigEndian.PutUint64(k, uint64(unix))
	k = append(k, domain...)
	k = append(k, 0)
	return append(k, token...)
}

// grantKey is vendor 0x00 id (bucket grants), so one vendor's grants are one prefix scan.
func grantKey(vendor, id string) []byte { return []byte(vendor + "\x00" + id) }

// grantPrefix is the prefix of vendor's grantKeys; nil (every grant) for an empty vendor.
func grantPrefix(vendor string) []byte {
	if vendor == "" {
		return nil
	}
	return []byte(vendor + "\x00")
}

// seqKey is a sequence number, 8 bytes big-endian (buckets audit and auditckpt), so appends
// are sequential.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// tombstone marks an erased or purged token in bucket records. The key stays, so the token is
// never issued again (to another value) and the probing for deterministic tokens passes over
// it.
var tombstone = []byte{0xFF}

func isTombstone(b []byte) bool { return len(b) == 1 && b[0] == 0xFF }

// auditHeadKey is where the head of replica's audit chain lives: meta "audit_head" for the
// single-process chain (""), bucket audithead under the replica's name for the others, so
// that replicas never write the same key.
func auditHeadKey(replica string) (store.Bucket, []byte) {
	if replica == "" {
		return bucketMeta, metaAuditHead
	}
	return bucketAuditHead, []byte(replica)
}

// auditAnchorKey is where the pruning anchor of replica's chain lives (like auditHeadKey).
func auditAnchorKey(replica string) (store.Bucket, []byte) {
	if replica == "" {
		return bucketMeta, metaAuditAnchor
	}
	return bucketAuditAnchor, []byte(replica)
}

// exportedKey is the key of replica's chain in bucket auditexported: its name, or a single
// 0x00 byte for the single-process chain (names are printable).
func exportedKey(replica string) []byte {
	if replica == "" {
		return []byte{0}
	}
	return []byte(replica)
}

// exportedChainOf is the chain an auditexported key names.
func exportedChainOf(k []byte) string {
	if len(k) == 1 && k[0] == 0 {
		return ""
	}
	return string(k)
}
