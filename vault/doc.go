// Package vault is tokenvault's domain core: tokens, templates, JSON documents, data
// subjects and erasure, credentials, vendor grants, canaries, key lifecycle and the audit
// trail. It speaks domain types and sentinel errors; it knows nothing of gRPC or HTTP.
//
// # Map
//
// Files of this package:
//
//	vault.go        Config, Open, the keyring and derived keys
//	layout.go       the storage layout: every bucket, meta key and key builder (table below)
//	errors.go       every sentinel error
//	storedrecord.go the stored record: binary format, associated data, the read path
//	storedjson.go   read-modify-write of stored JSON objects
//	tokens.go       Tokenize, Detokenize, TokenRef
//	documents.go    TokenizeRecords, DetokenizeRecords: fields of JSON documents (fieldpolicy)
//	text.go         TokenizeText, DetokenizeText: personal data in free text (textscan)
//	templates.go    custom templates
//	erasure.go      data subjects, DeleteTokens, EraseSubject, the erasure log, PurgeExpired, Backup
//	erasing.go      erasing marks: a tokenize waits for an erasure of its subject instead of holding it off
//	canary.go       canary tokens
//	credentials.go  credentials, roles, authentication, expiry, rotation (with an overlap) and the root
//	credcache.go    the verified-credential cache (store reads only; invalidated by every credential write)
//	scope.go        credential scopes (domains, templates, masked reveal), enforced on every item
//	grants.go       vendor grants and VendorDetokenize
//	keys.go         data key rotation, rewrap, disable/destroy, KEK rewrap
//	background.go   RunBackground (rewrap, automatic rotation, retention, purge) and Stats
//	cluster.go      replicas sharing one store: heartbeats, the background lease and its fencing
//	offline.go      what the offline commands ask of a store: its live replicas
//	consolesessions.go web console sessions, kept in the store for every replica (not audit events)
//	audit.go        the audit trail in the store: updateAudited, checkpoints, export, prune
//	auditview.go    read-only views of the trail for the web console: one event's chain position, stats, status
//	witness.go      Witness and FileWitness: signed checkpoints kept outside the store
//	schema.go       the schema version and migrations
//
// Sub-packages:
//
//	audit        the offline audit format and its verification (no store, no vault)
//	fieldpolicy  JSON-path field policies: which fields of a document to (de)tokenize
//	store        the transactional key-value store (bbolt with group commit and a write journal)
//	store/pgstore the same store on PostgreSQL, shared by replicas (serve --store postgres://…)
//	template     token templates: validation, candidate tokens, masking
//	textscan     detectors of personal data in free text (cards, SSNs, e-mails, phones, IBANs, IPs)
//
// # Auditing
//
// Every change to the store is audited in its own transaction: operations change the store
// only through updateAudited, which runs the change and appends its event to the hash chain
// in the same store transaction. A change commits only with its event, and an event only with
// its change; a change that finds nothing to do returns errSkipAudit. Reveals (Detokenize,
// VendorDetokenize, DetokenizeRecords) write their event before any value leaves, and fail
// closed when it cannot be written. Writes that are not changes of a caller's making (the
// keyring at first open, the audit public key, key dates, checkpoints, the export mark, rewrap
// batches before the last, heartbeats and leases, web console sessions, whose sign-in and
// sign-out the console audits, erasing marks, which EraseSubject's events cover) are not
// audited.
//
// The trail is one hash chain per writer: the single-process chain (ReplicaID "", the first
// format), or, for replicas, one chain per audited write in flight (lanes ID, ID/1, …), each
// with its own head, so concurrent writers never write the same key; sequence numbers are
// global (the audit bucket's store sequence). Checkpoints sign the heads of all chains at
// once (audit.go, docs/audit.md).
//
// # Basics
//
// A [Vault] is opened over a [store.Store] and a key-encryption key. On first open it creates
// a keyring (crypto/keyring) and stores it wrapped under the KEK.
//
// [Vault.Tokenize] validates each item against its template, then computes a candidate token
// (FF1 for deterministic templates with a large enough free space, random otherwise) and, in
// one store transaction per call, probes for a token that is free in the domain, stores the
// original encrypted under the data AEAD with associated data binding it to (domain, template,
// token), and records a blind index (HMAC of the value under a per-domain, per-template key) so
// the same value gets the same token again. Concurrent calls share commits (group commit), and
// a call returns only once its records are durable.
//
// [Vault.Detokenize] looks tokens up by (domain, token) in one read transaction and decrypts
// them outside it.
//
// Reads are batched so that a call's store round trips do not grow with its size (on
// PostgreSQL each is a network round trip): Tokenize decides its items in rounds, each round
// one [store.Tx.GetMany] per bucket for every key the pending items need next (blind-index
// entries, candidate records, subject keys with their subjects' erasing marks; after a
// collision, the next candidates of the colliding items only), and creates records and
// subject keys with the create-only [store.Tx.Insert]; the detokenize paths (internal, vendor, records, free text) and
// DeleteTokens read all records, then their subject keys and canary marks, one GetMany each.
//
// # Storage layout
//
//	records     domain 0x00 token                → record (template, times, subject, ciphertext), or a tombstone
//	index       domain 0x00 template 0x00 hmac   → token (deterministic templates with random candidates)
//	subjects    hmac(subject) domain 0x00 token  → "" (for erasure by data subject)
//	subjectkeys hmac(subject)                    → the subject's key, wrapped by the data AEAD
//	subjectkeyids hmac(subject)                  → the subject key's random id (16 bytes): the erasure log names the key it destroyed
//	subjecterasing hmac(subject)                 → erasing mark while the subject is erased: each erasure's replica, start time, random id (JSON)
//	expiry      expiry (8 bytes) domain 0x00 token → "" (tokens with a TTL, in order of expiry)
//	canaries    domain 0x00 token                → canary label
//	templates   name                             → custom template definition (JSON)
//	creds       id                               → credential (JSON, with SHA-256 of its secret, and of the previous one during a rotation's overlap; scope and expiry)
//	credhash    sha256(secret)                   → id (the current secret; also the previous one until its overlap is pruned)
//	credsan     certificate SAN                  → id (live credentials bound to mTLS client certificates)
//	credjwt     JWT subject                      → id (live internal credentials bound to a JWT subject)
//	grants      vendor 0x00 id                   → grant (JSON, with its use count)
//	grantids    id                               → vendor
//	audit       seq (8 bytes)                    → event (one line of JSON, chained by hash to the previous event of its replica)
//	auditckpt   seq (8 bytes)                    → signed checkpoint of event seq (JSON; with several chains, the heads of all of them)
//	audithead   replica                          → seq (8 bytes) and SHA-256 of the last event of the replica's chain
//	auditanchor replica                          → seq, hash and signature of the last pruned event of the replica's chain
//	auditexported replica (0x00 for "")          → seq (8 bytes) and SHA-256 of the replica chain's last event exports delivered without a gap
//	replicas    replica id                       → heartbeat: started, last seen, loaded keyring version and primary key (JSON)
//	leases      lease name                       → holder, epoch (fencing token) and expiry of a lease (JSON)
//	grantrate   grant id                         → the grant's rate state: tokens left (float64) and when (unix ns)
//	consolesessions sha256(session id)           → a web console session (opaque to the vault: server/console's format)
//	meta        "keyring"                        → keyring wrapped under the KEK
//	meta        "schema_version"                 → SchemaVersion (8 bytes)
//	meta        "keymeta"                        → creation and destruction times of data keys (JSON)
//	meta        "rewrap"                         → progress of the background rewrap (JSON)
//	meta        "audit_head"                     → seq (8 bytes) and SHA-256 of the last event of the single-process chain
//	meta        "audit_pubkey"                   → the audit public keyset, in clear (offline verification)
//	meta        "audit_anchor"                   → seq, hash and signature of the single-process chain's last pruned event
//	meta        "audit_exported"                 → seq (8 bytes) of the last event a full export delivered
//	meta        "keyring_version"                → counter (8 bytes) bumped by every change of the stored keyring
//	meta        "keyring_primary"                → id (4 bytes) of the stored keyring's primary data key
//	meta        "cred_gen"                       → counter (8 bytes) bumped by every credential write (cache check)
//	meta        "subject_gen"                    → counter (8 bytes) bumped by every subject erasure
//
// # Stores
//
// The vault sees only the [store.Store] interface. Two backends implement it and pass the
// same conformance suite (store/storetest): the embedded bbolt file (store.Bolt: one process,
// Update calls grouped into one transaction and one fsync of an append-only journal, merged
// into the B-tree in the background; Options.NoJournal, serve --store-journal=false, commits
// into the B-tree instead) and PostgreSQL (store/pgstore:
// any number of processes on one database; every bucket in one table keyed by (bucket, key),
// View in a REPEATABLE READ read-only snapshot, each Update in its own SERIALIZABLE
// transaction, Tokenize's and a lone audit event's in REPEATABLE READ through
// store.WithSnapshotIsolation). On
// PostgreSQL two replicas can race on the same value: the loser's transaction fails to
// serialize or its create-only Insert hits a unique violation, and its function is re-run,
// which the Update contract (functions may run more than once, without side effects) already
// allows; the re-run finds the winner's token. One case is new: when the connection is lost while
// COMMIT is in flight, Update returns an error wrapping [store.ErrCommitUnknown]; the change
// and its audit event may or may not be durable, and a reveal must then fail closed, as it
// does for any Update error. The server opens either (cmd/tokenvault: --data DIR for bbolt,
// --store postgres://… for PostgreSQL); tokenvault migrate copies a stopped vault between them
// (store.Copy), and Backup writes either as a bbolt snapshot (docs/ha.md).
//
// # Replicas
//
// Several vaults may share one store (PostgreSQL), each named by Config.ReplicaID. They
// coordinate through rows of the store only, with the same code on bbolt (cluster.go): a
// heartbeat per replica, one lease (with an epoch checked inside every write made for the work
// it guards: fencing) for background work, grant rates and quotas charged in the transaction of
// the reveal, a keyring version and primary key id checked by every key change and every
// sealing transaction, and caches that check a generation in the store (credentials) or read
// the store on a miss (templates). docs/ha.md states the bounds.
//
// # Caveats
//
// Tokens are unique per domain across all templates. A domain name and a template name are
// visible in the store's keys; values and subjects are not. The vault never logs values,
// tokens or secrets.
package vault
