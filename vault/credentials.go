package vault

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Role is what a credential may do. The server's authorization table maps each RPC to roles.
type Role string

// The roles.
const (
	RoleAdmin       Role = "admin"       // everything on the internal listeners
	RoleTokenizer   Role = "tokenizer"   // tokenize only
	RoleDetokenizer Role = "detokenizer" // internal detokenize
	RoleAuditor     Role = "auditor"     // audit read only
	RoleVendor      Role = "vendor"      // vendor listener only, through grants
)

// Roles lists every role.
func Roles() []Role {
	return []Role{RoleAdmin, RoleTokenizer, RoleDetokenizer, RoleAuditor, RoleVendor}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, x := range Roles() {
		if r == x {
			return true
		}
	}
	return false
}

// RootCredentialID is the id of the root (admin) credential created at initialisation or in
// dev mode.
const RootCredentialID = "root"

// Principal is an authenticated caller.
type Principal struct {
	ID     string
	Name   string
	Role   Role
	Vendor string
	// CertSAN, when set, binds the credential to a client certificate: it authenticates only
	// on a TLS connection whose verified client certificate carries this SAN.
	CertSAN string
	// JWTSubject, when set, is the JWT subject ("sub") the credential is bound to.
	JWTSubject string
	// AuthMethod is how this call authenticated: AuthSecret, AuthJWT or AuthCert.
	AuthMethod AuthMethod
	// Scope limits the items the caller may touch (tokenizer and detokenizer credentials);
	// the vault enforces it on every item. Zero: unscoped.
	Scope Scope
}

// AuthMethod is how a caller authenticated; the audit trail records it.
type AuthMethod string

// The authentication methods.
const (
	AuthSecret AuthMethod = "secret" // a bearer secret (tvs_…)
	AuthJWT    AuthMethod = "jwt"    // a bearer JWT whose subject is bound to the credential
	AuthCert   AuthMethod = "cert"   // a verified client certificate whose SAN is bound to the credential
)

// AuthSubject is the workload identity the call authenticated with: the JWT subject or the
// certificate SAN bound to the credential; "" for a bearer secret.
func (p Principal) AuthSubject() string {
	switch p.AuthMethod {
	case AuthJWT:
		return p.JWTSubject
	case AuthCert:
		return p.CertSAN
	}
	return ""
}

// Credential is a stored credential, without its secret.
type Credential struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Role       Role      `json:"role"`
	Vendor     string    `json:"vendor,omitempty"`
	CreateTime time.Time `json:"create_time"`
	Revoked    bool      `json:"revoked,omitempty"`
	Hash       []byte    `json:"hash"` // SHA-256 of the secret
	// CertSAN binds a credential to client certificates carrying this SAN (a DNS name, URI
	// or e-mail SAN; a SPIFFE ID is a URI SAN). Such a credential authenticates by
	// certificate alone, or by secret together with the certificate.
	CertSAN string `json:"cert_san,omitempty"`
	// JWTSubject binds an internal credential to bearer JWTs with this subject ("sub"), signed
	// by the issuer the server trusts. Such a credential has no secret (Hash is empty).
	JWTSubject string `json:"jwt_subject,omitempty"`
	// RotateTime is when the secret was last rotated (zero if never).
	RotateTime time.Time `json:"rotate_time,omitzero"`
	// PrevHash is the SHA-256 of the previous secret while a rotation's overlap runs: it
	// authenticates until PrevExpire. Both are cleared when the overlap ends (pruned by
	// PruneRotatedSecrets) or at the next rotation.
	PrevHash   []byte    `json:"prev_hash,omitempty"`
	PrevExpire time.Time `json:"prev_expire,omitzero"`
	// Scope limits a tokenizer's or detokenizer's items (domains, templates, masked reveal);
	// zero for every credential created without one.
	Scope
	// ExpireTime is when the credential stops authenticating (zero: never). Rotation keeps
	// it.
	ExpireTime time.Time `json:"expire_time,omitzero"`
	// Expired is set by ListCredentials when ExpireTime has passed (by the vault's clock);
	// it is not stored.
	Expired bool `json:"-"`
}

// expired reports whether c no longer authenticates at now because its lifetime ran out.
// Every authentication path (secret, certificate, and any added later) refuses an expired
// credential exactly like an unknown one.
func (c Credential) expired(now time.Time) bool {
	return !c.ExpireTime.IsZero() && !now.Before(c.ExpireTime)
}

// MaxCredentialLifetime bounds CredentialSpec.Expires.
const MaxCredentialLifetime = 10 * 365 * 24 * time.Hour

// MaxRotationOverlap is the longest a previous secret may keep working after a rotation.
const MaxRotationOverlap = 30 * 24 * time.Hour

// BreakGlassActor is the audit actor of an offline root rotation (tokenvault credential
// rotate root --data DIR): no credential authenticated it, the caller held the store and its
// KEK.
const BreakGlassActor = "break-glass (offline)"

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// secretPrefix marks tokenvault secrets, so secret scanners can find leaked ones.
const secretPrefix = "tvs_"

// newSecret returns a new random secret (256 bits).
func (v *Vault) newSecret() (string, error) {
	var raw [32]byte
	if _, err := io.ReadFull(v.rand, raw[:]); err != nil {
		return "", err
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CredentialSpec describes a credential to create. Fields added later keep their zero value
// meaning what it meant before, so existing callers keep their behaviour.
type CredentialSpec struct {
	// Name is a human-readable name.
	Name string
	// Role is the credential's role.
	Role Role
	// Vendor is required for RoleVendor and only for it.
	Vendor string
	// CertSAN (optional) binds the credential to client certificates with that SAN: on the
	// vendor listener for vendors, on the internal listeners (with a client CA) for the
	// other roles.
	CertSAN string
	// Scope (optional, tokenizer and detokenizer only; Reveal detokenizer only) limits the
	// domains and templates the credential may touch, and makes a detokenizer see masks.
	// Its templates must exist. Zero: unscoped.
	Scope Scope
	// Expires (optional, any role) makes the credential stop authenticating this long after
	// it is created: more than 0 and at most MaxCredentialLifetime. Zero: never.
	Expires time.Duration
	// JWTSubject (optional, internal roles only, not with CertSAN) binds the credential to
	// bearer JWTs with that subject. The credential then has no secret: CreateCredential
	// returns "" for it.
	JWTSubject string
}

// MaxIdentityLen bounds a certificate SAN or JWT subject bound to a credential.
const MaxIdentityLen = 253

// validIdentity reports whether s can name a workload identity: 1 to MaxIdentityLen bytes of
// printable UTF-8 without spaces.
func validIdentity(s string) bool {
	if s == "" || len(s) > MaxIdentityLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// validate checks spec and returns an ErrInvalidArgument error naming the first problem.
func (spec CredentialSpec) validate() error {
	if !nameRE.MatchString(spec.Name) {
		return fmt.Errorf("%w: credential name must match %s", ErrInvalidArgument, nameRE)
	}
	if !spec.Role.Valid() {
		return fmt.Errorf("%w: unknown role %q", ErrInvalidArgument, spec.Role)
	}
	if (spec.Role == RoleVendor) != (spec.Vendor != "") {
		return fmt.Errorf("%w: a vendor name is required for role vendor and only for it", ErrInvalidArgument)
	}
	if spec.Vendor != "" && !nameRE.MatchString(spec.Vendor) {
		return fmt.Errorf("%w: vendor name must match %s", ErrInvalidArgument, nameRE)
	}
	if spec.CertSAN != "" && !validIdentity(spec.CertSAN) {
		return fmt.Errorf("%w: a certificate SAN must be a DNS name, URI or e-mail of at most %d bytes without spaces", ErrInvalidArgument, MaxIdentityLen)
	}
	switch {
	case spec.JWTSubject == "":
	case !validIdentity(spec.JWTSubject):
		return fmt.Errorf("%w: a JWT subject must be at most %d bytes of printable text without spaces", ErrInvalidArgument, MaxIdentityLen)
	case spec.Role == RoleVendor:
		return fmt.Errorf("%w: a JWT subject binds only internal credentials (admin, tokenizer, detokenizer, auditor); vendors use secrets or client certificates", ErrInvalidArgument)
	case spec.CertSAN != "":
		return fmt.Errorf("%w: bind a credential to a JWT subject or to a certificate SAN, not both", ErrInvalidArgument)
	}
	if err := spec.Scope.validate(spec.Role); err != nil {
		return err
	}
	if spec.Expires < 0 || spec.Expires > MaxCredentialLifetime {
		return fmt.Errorf("%w: expires must be more than 0 and at most %s (10 years), or unset for a credential that does not expire", ErrInvalidArgument, MaxCredentialLifetime)
	}
	return nil
}

// CreateCredential stores a new credential and returns it with its secret, which is shown
// only this once: the vault keeps only its SHA-256 (secrets are 256-bit random, so a fast hash
// is enough). A credential bound to a JWT subject gets no secret (""): its JWTs are its only
// credential, so the identity provider stays the one place that issues and expires them.
func (v *Vault) CreateCredential(ctx context.Context, spec CredentialSpec) (Credential, string, error) {
	if err := spec.validate(); err != nil {
		return Credential{}, "", err
	}
	if err := v.checkScopeTemplates(ctx, spec.Scope); err != nil {
		return Credential{}, "", err
	}
	var secret string
	if spec.JWTSubject == "" {
		var err error
		if secret, err = v.newSecret(); err != nil {
			return Credential{}, "", err
		}
	}
	var idb [8]byte
	if _, err := io.ReadFull(v.rand, idb[:]); err != nil {
		return Credential{}, "", err
	}
	now := v.now().UTC()
	c := Credential{ID: "cred_" + hex.EncodeToString(idb[:]), Name: spec.Name, Role: spec.Role, Vendor: spec.Vendor,
		CreateTime: now, CertSAN: spec.CertSAN, JWTSubject: spec.JWTSubject, Scope: spec.Scope.normalized()}
	if secret != "" {
		c.Hash = hashSecret(secret)
	}
	if spec.Expires > 0 {
		c.ExpireTime = now.Add(spec.Expires)
	}
	if err := v.putCredential(ctx, c, false, "CreateCredential"); err != nil {
		return Credential{}, "", err
	}
	c.Hash = nil
	return c, secret, nil
}

// SetRootSecret makes secret the root admin credential's secret, replacing any earlier one.
// Dev mode uses it for --dev-root-token and its random root token.
func (v *Vault) SetRootSecret(ctx context.Context, secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: empty root token", ErrInvalidArgument)
	}
	c := Credential{ID: RootCredentialID, Name: "root", Role: RoleAdmin, CreateTime: v.now().UTC(), Hash: hashSecret(secret)}
	return v.putCredential(ctx, c, true, "SetRootSecret")
}

// InitRoot creates a random root secret if the vault has no root credential yet. It returns
// the secret when it created one and "" when a root credential already existed.
func (v *Vault) InitRoot(ctx context.Context) (string, error) {
	secret, err := v.newSecret()
	if err != nil {
		return "", err
	}
	c := Credential{ID: RootCredentialID, Name: "root", Role: RoleAdmin, CreateTime: v.now().UTC(), Hash: hashSecret(secret)}
	blob, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	created := false
	ev := v.newEvent(ctx, "InitRoot")
	ev.Target, ev.Outcome, ev.Reason = RootCredentialID, OutcomeAllowed, "role admin"
	_, err = v.updateCredentials(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		created = false
		if tx.Get(bucketCreds, []byte(RootCredentialID)) != nil {
			return errSkipAudit
		}
		created = true
		if err := tx.Put(bucketCreds, []byte(c.ID), blob); err != nil {
			return err
		}
		return tx.Put(bucketCredHash, c.Hash, []byte(c.ID))
	})
	if err != nil || !created {
		return "", err
	}
	return secret, nil
}

func (v *Vault) putCredential(ctx context.Context, c Credential, replace bool, method string) error {
	blob, err := json.Marshal(c)
	if err != nil {
		return err
	}
	ev := v.newEvent(ctx, method)
	ev.Target, ev.Outcome, ev.Reason = c.ID, OutcomeAllowed, "role "+string(c.Role)
	if c.Vendor != "" {
		ev.Reason += ", vendor " + c.Vendor
	}
	// The scope and expiry, so a reviewer sees from the trail what a credential could do.
	ev.Domains, ev.Templates = c.Domains, c.Templates
	if c.Reveal != "" {
		ev.Reason += ", reveal " + string(c.Reveal)
	}
	if !c.ExpireTime.IsZero() {
		ev.Reason += ", expires " + c.ExpireTime.Format(time.RFC3339)
	}
	if c.CertSAN != "" {
		ev.Reason += ", bound to certificate SAN " + c.CertSAN
	}
	if c.JWTSubject != "" {
		ev.Reason += ", bound to JWT subject " + c.JWTSubject
	}
	_, err = v.updateCredentials(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		if !replace {
			if taken, err := liveNameTaken(tx, c.Name); err != nil {
				return err
			} else if taken {
				return fmt.Errorf("%w: a live credential is already named %q; pick another name, or revoke that one first", ErrCredentialExists, c.Name)
			}
		}
		if old := tx.Get(bucketCreds, []byte(c.ID)); old != nil {
			if !replace {
				return fmt.Errorf("%w: credential id collision", ErrInvalidArgument)
			}
			var prev Credential
			if json.Unmarshal(old, &prev) == nil {
				if err := deleteSecretHashes(tx, prev); err != nil {
					return err
				}
			}
		}
		for _, ix := range identityIndexes(c) {
			if tx.Get(ix.bucket, ix.key) != nil {
				return fmt.Errorf("%w: another live credential is bound to this %s", ErrInvalidArgument, ix.what)
			}
			if err := tx.Put(ix.bucket, ix.key, []byte(c.ID)); err != nil {
				return err
			}
		}
		if err := tx.Put(bucketCreds, []byte(c.ID), blob); err != nil {
			return err
		}
		if len(c.Hash) == 0 {
			return nil // bound to a JWT subject: no secret
		}
		return tx.Put(bucketCredHash, c.Hash, []byte(c.ID))
	})
	return err
}

// liveNameTaken reports whether a credential that is not revoked has name: names identify
// credentials to people (lists, audit reasons), so two live ones may not share one.
func liveNameTaken(tx store.Tx, name string) (bool, error) {
	return anyCredential(tx, func(c Credential) bool { return c.Name == name && !c.Revoked })
}

// anyCredential reports whether a stored credential satisfies match, stopping at the first.
func anyCredential(tx store.Tx, match func(Credential) bool) (bool, error) {
	found := false
	err := tx.Scan(bucketCreds, nil, nil, func(_, val []byte) error {
		var c Credential
		if err := json.Unmarshal(val, &c); err != nil {
			return err
		}
		if found = match(c); found {
			return store.ErrStopScan
		}
		return nil
	})
	return found, err
}

// identityIndex is one entry of an index from a workload identity to a credential id.
type identityIndex struct {
	bucket store.Bucket
	key    []byte
	what   string
}

// identityIndexes are the index entries of c's bound identities (certificate SAN, JWT
// subject); each maps to c.ID while c is live.
func identityIndexes(c Credential) []identityIndex {
	var out []identityIndex
	if c.CertSAN != "" {
		out = append(out, identityIndex{bucketCredSAN, []byte(c.CertSAN), "certificate SAN"})
	}
	if c.JWTSubject != "" {
		out = append(out, identityIndex{bucketCredJWT, []byte(c.JWTSubject), "JWT subject"})
	}
	return out
}

// usable reports whether a stored credential may authenticate now: not revoked, not
// expired. Every Authenticate* path (secret, certificate, JWT subject) goes through it, so an
// expired credential is refused like an unknown one everywhere.
func (v *Vault) usable(c Credential) bool {
	return !c.Revoked && !c.expired(v.now())
}

// lookupIdentity returns the credential that identity index b maps the first of keys found in
// it to; found is false when none is there (or its credential cannot be read).
func (v *Vault) lookupIdentity(ctx context.Context, b store.Bucket, keys ...string) (Credential, bool, error) {
	return v.cachedCredential(ctx, identityCacheKey(b, keys), func() (Credential, bool, error) {
		return v.readIdentity(ctx, b, keys)
	})
}

// readIdentity is lookupIdentity's store read.
func (v *Vault) readIdentity(ctx context.Context, b store.Bucket, keys []string) (c Credential, found bool, err error) {
	err = v.store.View(ctx, func(tx store.Tx) error {
		found = false
		for _, k := range keys {
			if k == "" {
				continue
			}
			if id := tx.Get(b, []byte(k)); id != nil {
				blob := tx.Get(bucketCreds, id)
				found = blob != nil && json.Unmarshal(blob, &c) == nil
				return nil
			}
		}
		return nil
	})
	return c, found, err
}

// principal is the Principal of c authenticated by method.
func (c Credential) principal(method AuthMethod) Principal {
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role, Vendor: c.Vendor, CertSAN: c.CertSAN, JWTSubject: c.JWTSubject, AuthMethod: method, Scope: c.Scope}
}

// AuthenticateCert returns the credential bound to one of sans (the SANs of a verified
// client certificate, which the caller must take from the connection's verified TLS state,
// never from anything the client sends), or ErrUnauthenticated. Any role may be bound to a
// certificate; the server's listeners and authorization table decide what it may call.
func (v *Vault) AuthenticateCert(ctx context.Context, sans []string) (Principal, error) {
	c, found, err := v.lookupIdentity(ctx, bucketCredSAN, sans...)
	if err != nil {
		return Principal{}, err
	}
	if !found || !v.usable(c) {
		return Principal{}, ErrUnauthenticated
	}
	return c.principal(AuthCert), nil
}

// AuthenticateJWTSubject returns the live internal credential bound to subject, the "sub" of
// a JWT the caller (the server) has already verified: signature, issuer, audience and times.
// An unbound subject, a revoked credential and a vendor credential are all ErrUnauthenticated,
// alike.
func (v *Vault) AuthenticateJWTSubject(ctx context.Context, subject string) (Principal, error) {
	if subject == "" || len(subject) > MaxIdentityLen {
		return Principal{}, ErrUnauthenticated
	}
	c, found, err := v.lookupIdentity(ctx, bucketCredJWT, subject)
	if err != nil {
		return Principal{}, err
	}
	if !found || !v.usable(c) || c.Role == RoleVendor || c.JWTSubject != subject {
		return Principal{}, ErrUnauthenticated
	}
	return c.principal(AuthJWT), nil
}

// Authenticate returns the principal holding secret, or ErrUnauthenticated. The stored hash
// is compared in constant time.
func (v *Vault) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrUnauthenticated
	}
	h := hashSecret(secret)
	// The cache spares the store read only: every check below runs on every call.
	c, found, err := v.cachedCredential(ctx, credCacheKey{index: bucketCredHash, key: string(h)}, func() (Credential, bool, error) {
		return v.readIdentity(ctx, bucketCredHash, []string{string(h)})
	})
	if err != nil {
		return Principal{}, err
	}
	if !found || !v.usable(c) {
		return Principal{}, ErrUnauthenticated
	}
	current := len(c.Hash) > 0 && subtle.ConstantTimeCompare(c.Hash, h) == 1
	// The previous secret of a rotation works only until its overlap ends; past it, it is
	// refused like an unknown secret (its index entry goes at the next prune or rotation).
	previous := len(c.PrevHash) > 0 && subtle.ConstantTimeCompare(c.PrevHash, h) == 1 && v.now().Before(c.PrevExpire)
	if !current && !previous {
		return Principal{}, ErrUnauthenticated
	}
	return c.principal(AuthSecret), nil
}

// deleteSecretHashes removes c's secret hashes (current and previous) from the hash index,
// where they still point at c.
func deleteSecretHashes(tx store.Tx, c Credential) error {
	for _, h := range [][]byte{c.Hash, c.PrevHash} {
		if len(h) == 0 {
			continue
		}
		if err := deleteIfOwned(tx, bucketCredHash, h, c.ID); err != nil {
			return err
		}
	}
	return nil
}

// deleteIfOwned deletes index entry key of b if it still points at credential id (a newer
// credential may hold it since).
func deleteIfOwned(tx store.Tx, b store.Bucket, key []byte, id string) error {
	if cur := tx.Get(b, key); cur != nil && string(cur) == id {
		return tx.Delete(b, key)
	}
	return nil
}

// RotateCredential gives credential id a new random secret and returns the credential and
// the secret, which is shown only this once. The previous secret keeps authenticating until
// now+overlap (0: it is dead at once); an earlier rotation's previous secret dies at once.
//
// Refused with ErrInvalidArgument for an overlap below 0 or above MaxRotationOverlap, and for
// the root credential with any overlap (a root secret is rotated because it may have leaked:
// it must die at once); with ErrCredentialNotFound for an unknown id; with
// ErrCredentialState for a revoked credential and for a vendor credential bound to client
// certificates (it authenticates by its certificate: rotate the certificate).
//
// The rotation is audited with the credential id as its target, never the secret.
func (v *Vault) RotateCredential(ctx context.Context, id string, overlap time.Duration) (Credential, string, error) {
	switch {
	case overlap < 0:
		return Credential{}, "", fmt.Errorf("%w: the overlap cannot be negative", ErrInvalidArgument)
	case overlap > MaxRotationOverlap:
		return Credential{}, "", fmt.Errorf("%w: the overlap is at most 30 days (%s)", ErrInvalidArgument, MaxRotationOverlap)
	case id == RootCredentialID && overlap != 0:
		return Credential{}, "", fmt.Errorf("%w: the root credential is rotated without overlap: its old secret dies at once (rotate it because it may have leaked; give running admin tools a named admin credential instead)", ErrInvalidArgument)
	}
	secret, err := v.newSecret()
	if err != nil {
		return Credential{}, "", err
	}
	now := v.now().UTC()
	h := hashSecret(secret)
	var out Credential
	found := false
	ev := v.newEvent(ctx, "RotateCredential")
	ev.Target, ev.Outcome = id, OutcomeAllowed
	_, err = v.updateCredentials(ctx, ev, func(tx store.Tx, ev *AuditEvent) error {
		found = false
		blob := tx.Get(bucketCreds, []byte(id))
		if blob == nil {
			return errSkipAudit
		}
		found = true
		var c Credential
		if err := json.Unmarshal(blob, &c); err != nil {
			return err
		}
		switch {
		case c.Revoked:
			return fmt.Errorf("%w: credential %s is revoked; create a new one", ErrCredentialState, id)
		case c.expired(now):
			return fmt.Errorf("%w: credential %s has expired; create a new one", ErrCredentialState, id)
		case c.CertSAN != "":
			return fmt.Errorf("%w: credential %s is bound to client certificates (SAN %s) and authenticates by its certificate, which has no secret to rotate here: issue a new certificate with that SAN, or revoke the credential and create a new one", ErrCredentialState, id, c.CertSAN)
		case c.JWTSubject != "":
			return fmt.Errorf("%w: credential %s is bound to a JWT subject and has no secret: its identity provider issues and rotates its tokens (and their signing keys)", ErrCredentialState, id)
		}
		// An earlier overlap ends now.
		if len(c.PrevHash) > 0 {
			if err := deleteSecretHashes(tx, Credential{ID: c.ID, Hash: c.PrevHash}); err != nil {
				return err
			}
		}
		c.PrevHash, c.PrevExpire = nil, time.Time{}
		if overlap > 0 {
			c.PrevHash, c.PrevExpire = c.Hash, now.Add(overlap)
			ev.Reason = "role " + string(c.Role) + ", previous secret works until " + c.PrevExpire.Format(time.RFC3339)
		} else {
			if err := deleteSecretHashes(tx, Credential{ID: c.ID, Hash: c.Hash}); err != nil {
				return err
			}
			ev.Reason = "role " + string(c.Role) + ", previous secret revoked at once"
		}
		c.Hash, c.RotateTime = h, now
		nb, err := json.Marshal(c)
		if err != nil {
			return err
		}
		if err := tx.Put(bucketCreds, []byte(id), nb); err != nil {
			return err
		}
		if err := tx.Put(bucketCredHash, h, []byte(id)); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return Credential{}, "", err
	}
	if !found {
		return Credential{}, "", ErrCredentialNotFound
	}
	out.Hash, out.PrevHash = nil, nil
	return out, secret, nil
}

// PruneRotatedSecrets ends the overlaps that have run out: it removes each expired previous
// secret from the hash index and the credential, with an audit event per credential
// (RotationOverlapEnded, target the credential id). Authenticate already refuses them; this
// removes what is left. RunBackground calls it on every pass. It returns how many ended.
func (v *Vault) PruneRotatedSecrets(ctx context.Context) (int, error) {
	now := v.now()
	var due []string
	if err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketCreds, nil, nil, func(k, val []byte) error {
			var c Credential
			if json.Unmarshal(val, &c) == nil && len(c.PrevHash) > 0 && !now.Before(c.PrevExpire) {
				due = append(due, string(k))
			}
			return nil
		})
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range due {
		ev := v.newEvent(WithRequest(ctx, RequestInfo{Method: "RotationOverlapEnded"}), "")
		ev.Target, ev.Outcome, ev.Reason = id, OutcomeAllowed, "the previous secret no longer authenticates"
		ended := false
		_, err := v.updateCredentials(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
			ended = false
			var prev Credential
			if _, err := updateJSON(tx, bucketCreds, []byte(id), func(c *Credential) error {
				if len(c.PrevHash) == 0 || now.Before(c.PrevExpire) {
					return nil
				}
				prev = Credential{ID: c.ID, Hash: c.PrevHash}
				c.PrevHash, c.PrevExpire, ended = nil, time.Time{}, true
				return nil
			}); err != nil {
				return err
			}
			if !ended {
				return errSkipAudit
			}
			return deleteSecretHashes(tx, prev)
		})
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// RootExists reports whether s holds a root credential: whether the store was initialised
// (tokenvault init, or a dev server). It needs no KEK.
func RootExists(ctx context.Context, s store.Store) (bool, error) {
	var ok bool
	err := s.View(ctx, func(tx store.Tx) error {
		ok = tx.Get(bucketCreds, []byte(RootCredentialID)) != nil
		return nil
	})
	return ok, err
}

// ListCredentials returns every credential (without hashes), sorted by id, with Expired set
// for those whose lifetime has run out.
func (v *Vault) ListCredentials(ctx context.Context) ([]Credential, error) {
	now := v.now()
	var out []Credential
	err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketCreds, nil, nil, func(_, val []byte) error {
			var c Credential
			if err := json.Unmarshal(val, &c); err != nil {
				return err
			}
			c.Hash, c.PrevHash, c.Expired = nil, nil, c.expired(now)
			out = append(out, c)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, err
}

// RevokeCredential revokes a credential at once. Revoking the root credential is refused so an
// installation cannot lock itself out.
func (v *Vault) RevokeCredential(ctx context.Context, id string) error {
	if id == RootCredentialID {
		return fmt.Errorf("%w: the root credential cannot be revoked", ErrInvalidArgument)
	}
	found := false
	ev := v.newEvent(ctx, "RevokeCredential")
	ev.Target, ev.Outcome = id, OutcomeAllowed
	_, err := v.updateCredentials(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		var c Credential
		var err error
		found, err = updateJSON(tx, bucketCreds, []byte(id), func(cr *Credential) error {
			cr.Revoked, c = true, *cr
			return nil
		})
		if err != nil {
			return err
		}
		if !found {
			return errSkipAudit
		}
		// The identities are freed for a new credential; an entry that already points at a
		// newer credential (this one revoked before) stays.
		for _, ix := range identityIndexes(c) {
			if err := deleteIfOwned(tx, ix.bucket, ix.key, c.ID); err != nil {
				return err
			}
		}
		return deleteSecretHashes(tx, c)
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrCredentialNotFound
	}
	return nil
}
