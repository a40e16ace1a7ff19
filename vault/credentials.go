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
	"strings"
	"time"

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
	// CertSAN binds a vendor credential to client certificates carrying this SAN (a DNS
	// name, URI or e-mail SAN). Such a credential authenticates by certificate alone, or by
	// secret together with the certificate.
	CertSAN string `json:"cert_san,omitempty"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// secretPrefix marks tokenvault secrets, so secret scanners can find leaked ones.
const secretPrefix = "tvs_"

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// CreateCredential stores a new credential and returns it with its secret, which is shown
// only this once: the vault keeps only its SHA-256 (secrets are 256-bit random, so a fast hash
// is enough).
//
// certSAN (optional, vendors only) binds the credential to client certificates with that SAN.
func (v *Vault) CreateCredential(ctx context.Context, name string, role Role, vendor, certSAN string) (Credential, string, error) {
	if !nameRE.MatchString(name) {
		return Credential{}, "", fmt.Errorf("%w: credential name must match %s", ErrInvalidArgument, nameRE)
	}
	if !role.Valid() {
		return Credential{}, "", fmt.Errorf("%w: unknown role %q", ErrInvalidArgument, role)
	}
	if (role == RoleVendor) != (vendor != "") {
		return Credential{}, "", fmt.Errorf("%w: a vendor name is required for role vendor and only for it", ErrInvalidArgument)
	}
	if vendor != "" && !nameRE.MatchString(vendor) {
		return Credential{}, "", fmt.Errorf("%w: vendor name must match %s", ErrInvalidArgument, nameRE)
	}
	if certSAN != "" && (role != RoleVendor || len(certSAN) > 253 || strings.ContainsAny(certSAN, " \x00")) {
		return Credential{}, "", fmt.Errorf("%w: a certificate SAN binds only vendor credentials and must be a DNS name, URI or e-mail without spaces", ErrInvalidArgument)
	}
	var raw [32]byte
	if _, err := io.ReadFull(v.rand, raw[:]); err != nil {
		return Credential{}, "", err
	}
	var idb [8]byte
	if _, err := io.ReadFull(v.rand, idb[:]); err != nil {
		return Credential{}, "", err
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	c := Credential{ID: "cred_" + hex.EncodeToString(idb[:]), Name: name, Role: role, Vendor: vendor,
		CreateTime: v.now().UTC(), Hash: hashSecret(secret), CertSAN: certSAN}
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
	var raw [32]byte
	if _, err := io.ReadFull(v.rand, raw[:]); err != nil {
		return "", err
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	c := Credential{ID: RootCredentialID, Name: "root", Role: RoleAdmin, CreateTime: v.now().UTC(), Hash: hashSecret(secret)}
	blob, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	created := false
	ev := v.newEvent(ctx, "InitRoot")
	ev.Target, ev.Outcome, ev.Reason = RootCredentialID, OutcomeAllowed, "role admin"
	_, err = v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
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
	_, err = v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		if old := tx.Get(bucketCreds, []byte(c.ID)); old != nil {
			if !replace {
				return fmt.Errorf("%w: credential id collision", ErrInvalidArgument)
			}
			var prev Credential
			if json.Unmarshal(old, &prev) == nil {
				if err := tx.Delete(bucketCredHash, prev.Hash); err != nil {
					return err
				}
			}
		}
		if c.CertSAN != "" {
			if tx.Get(bucketCredSAN, []byte(c.CertSAN)) != nil {
				return fmt.Errorf("%w: another credential is bound to this certificate SAN", ErrInvalidArgument)
			}
			if err := tx.Put(bucketCredSAN, []byte(c.CertSAN), []byte(c.ID)); err != nil {
				return err
			}
		}
		if err := tx.Put(bucketCreds, []byte(c.ID), blob); err != nil {
			return err
		}
		return tx.Put(bucketCredHash, c.Hash, []byte(c.ID))
	})
	return err
}

// AuthenticateCert returns the vendor credential bound to one of sans (the SANs of a verified
// client certificate), or ErrUnauthenticated.
func (v *Vault) AuthenticateCert(ctx context.Context, sans []string) (Principal, error) {
	var c Credential
	found := false
	err := v.store.View(ctx, func(tx store.Tx) error {
		for _, san := range sans {
			id := tx.Get(bucketCredSAN, []byte(san))
			if id == nil {
				continue
			}
			if blob := tx.Get(bucketCreds, id); blob != nil && json.Unmarshal(blob, &c) == nil {
				found = true
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	if !found || c.Revoked || c.Role != RoleVendor {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role, Vendor: c.Vendor, CertSAN: c.CertSAN}, nil
}

// Authenticate returns the principal holding secret, or ErrUnauthenticated. The stored hash
// is compared in constant time.
func (v *Vault) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, ErrUnauthenticated
	}
	h := hashSecret(secret)
	var c Credential
	found := false
	err := v.store.View(ctx, func(tx store.Tx) error {
		id := tx.Get(bucketCredHash, h)
		if id == nil {
			return nil
		}
		blob := tx.Get(bucketCreds, id)
		if blob == nil {
			return nil
		}
		found = json.Unmarshal(blob, &c) == nil
		return nil
	})
	if err != nil {
		return Principal{}, err
	}
	if !found || subtle.ConstantTimeCompare(c.Hash, h) != 1 || c.Revoked {
		return Principal{}, ErrUnauthenticated
	}
	return Principal{ID: c.ID, Name: c.Name, Role: c.Role, Vendor: c.Vendor, CertSAN: c.CertSAN}, nil
}

// ListCredentials returns every credential (without hashes), sorted by id.
func (v *Vault) ListCredentials(ctx context.Context) ([]Credential, error) {
	var out []Credential
	err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketCreds, nil, nil, func(_, val []byte) error {
			var c Credential
			if err := json.Unmarshal(val, &c); err != nil {
				return err
			}
			c.Hash = nil
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
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
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
		if c.CertSAN != "" {
			if err := tx.Delete(bucketCredSAN, []byte(c.CertSAN)); err != nil {
				return err
			}
		}
		return tx.Delete(bucketCredHash, c.Hash)
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrCredentialNotFound
	}
	return nil
}
