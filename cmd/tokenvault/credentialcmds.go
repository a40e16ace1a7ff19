package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

func newCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage credentials (admin)"}
	cmd.AddCommand(newCredentialCreateCmd(), newCredentialListCmd(), newCredentialRevokeCmd(), newCredentialRotateCmd())
	return cmd
}

func newCredentialCreateCmd() *cobra.Command {
	var req tvpb.CreateCredentialRequest
	var expires time.Duration
	var cmd *cobra.Command
	cmd = clientCmd(&cobra.Command{
		Use:   "create --name N --role ROLE [--vendor V] [--cert-san SAN | --jwt-subject SUB] [--domains a,b] [--templates t1,t2] [--reveal full|masked] [--expires DURATION]",
		Short: "Create a credential; prints its secret once",
		Long: `Create a credential and print its secret once.

A tokenizer or detokenizer credential may be scoped: --domains and --templates list the token
domains and templates it may touch (empty: all), and --reveal masked makes a detokenizer see
each value masked by its template (e.g. ************1111), as a masked vendor grant does. Items
outside the scope are denied one by one (permission denied), whether their token exists or not.
--expires (any role) makes the credential stop authenticating that long after it is created
(at most 87600h, 10 years). See docs/access.md.

--cert-san binds it to client certificates carrying that SAN (a DNS name, a URI such as a
SPIFFE ID, or an e-mail): it then authenticates by certificate alone (vendors on the vendor
listener, other roles on the internal listeners of a server with --client-ca), or by secret
only together with the certificate.

--jwt-subject binds an internal credential (not vendor) to bearer JWTs with that subject,
e.g. system:serviceaccount:payments:billing for a Kubernetes service account, signed by the
issuer of serve --jwt-issuer. Such a credential has no secret: nothing is printed to keep.
See docs/workload-identity.md.`,
		Args: cobra.NoArgs,
	}, func(s *session, _ []string) error {
		if cmd.Flags().Changed("expires") {
			req.Expires = durationpb.New(expires)
		}
		resp, err := s.credentials().CreateCredential(s.ctx, &req)
		if err != nil {
			return err
		}
		return s.print(resp, func(w io.Writer) error {
			cr := resp.GetCredential()
			fmt.Fprintf(w, "id:     %s\nrole:   %s\n", cr.GetId(), cr.GetRole())
			if cr.GetVendor() != "" {
				fmt.Fprintf(w, "vendor: %s\n", cr.GetVendor())
			}
			if sc := scopeText(cr); sc != "-" {
				fmt.Fprintf(w, "scope:  %s\n", sc)
			}
			if cr.GetExpireTime() != nil {
				fmt.Fprintf(w, "expires: %s\n", cr.GetExpireTime().AsTime().Format(time.RFC3339))
			}
			if cr.GetCertSan() != "" {
				fmt.Fprintf(w, "cert-san: %s\n", cr.GetCertSan())
			}
			if cr.GetJwtSubject() != "" {
				fmt.Fprintf(w, "jwt-subject: %s\n\nIt authenticates with bearer JWTs of that subject only: it has no secret.\n", cr.GetJwtSubject())
				return nil
			}
			fmt.Fprintf(w, "secret: %s\n\nThe secret is shown only now; the vault keeps only its hash.\n", resp.GetSecret())
			return nil
		})
	})
	cmd.Flags().StringVar(&req.Name, "name", "", "a name for the credential")
	cmd.Flags().StringVar(&req.Role, "role", "", "admin, tokenizer, detokenizer, auditor or vendor")
	cmd.Flags().StringVar(&req.Vendor, "vendor", "", "for role vendor: the vendor it acts for")
	cmd.Flags().StringVar(&req.CertSan, "cert-san", "", "bind to client certificates with this SAN, e.g. spiffe://corp/ns/payments/sa/billing (mTLS: vendor listener for vendors, internal listeners with serve --client-ca for other roles)")
	cmd.Flags().StringVar(&req.JwtSubject, "jwt-subject", "", "internal roles: bind to bearer JWTs with this subject, e.g. system:serviceaccount:payments:billing (no secret is issued)")
	cmd.Flags().StringSliceVar(&req.Domains, "domains", nil, "for tokenizer and detokenizer: only these token domains (comma-separated; default all)")
	cmd.Flags().StringSliceVar(&req.Templates, "templates", nil, "for tokenizer and detokenizer: only these templates (comma-separated; default all)")
	cmd.Flags().StringVar(&req.Reveal, "reveal", "", "for detokenizer: full (default) or masked (values masked by their template)")
	cmd.Flags().DurationVar(&expires, "expires", 0, "the credential stops working this long after creation, e.g. 720h (at most 87600h; default never)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("role")
	return cmd
}

func newCredentialListCmd() *cobra.Command {
	return clientCmd(&cobra.Command{Use: "list", Short: "List credentials", Args: cobra.NoArgs},
		func(s *session, _ []string) error {
			resp, err := s.credentials().ListCredentials(s.ctx, &tvpb.ListCredentialsRequest{})
			if err != nil {
				return err
			}
			return s.print(resp, func(w io.Writer) error {
				t := newTable(w, "ID", "NAME", "ROLE", "VENDOR", "IDENTITY", "CREATED", "STATUS", "SCOPE", "EXPIRES")
				for _, cr := range resp.GetCredentials() {
					expires := "never"
					if cr.GetExpireTime() != nil {
						expires = cr.GetExpireTime().AsTime().Format(time.RFC3339)
					}
					t.row(cr.GetId(), cr.GetName(), cr.GetRole(), cr.GetVendor(), credIdentity(cr), cr.GetCreateTime().AsTime().Format(time.RFC3339),
						credentialStatus(cr), scopeText(cr), expires)
				}
				return t.flush()
			})
		})
}

// credIdentity is the workload identity a credential is bound to, for the list: "san:…",
// "jwt:…", or "-".
func credIdentity(cr *tvpb.Credential) string {
	switch {
	case cr.GetCertSan() != "":
		return "san:" + cr.GetCertSan()
	case cr.GetJwtSubject() != "":
		return "jwt:" + cr.GetJwtSubject()
	}
	return "-"
}

func newCredentialRevokeCmd() *cobra.Command {
	return clientCmd(&cobra.Command{Use: "revoke ID", Short: "Revoke a credential at once", Args: cobra.ExactArgs(1)},
		func(s *session, args []string) error {
			resp, err := s.credentials().RevokeCredential(s.ctx, &tvpb.RevokeCredentialRequest{Id: args[0]})
			if err != nil {
				return err
			}
			return s.printRevoked(resp, args[0])
		})
}

func newCredentialRotateCmd() *cobra.Command {
	var overlap time.Duration
	var off offlineFlags
	cmd := clientCmd(&cobra.Command{
		Use:   "rotate ID [--overlap DURATION]",
		Short: "Give a credential a new secret, printed once; the old one works for the overlap",
		Long: `Give a credential a new random secret, printed once (-o json: the credential and "secret").
The previous secret keeps working for --overlap (default 0: it is dead at once; at most 720h,
30 days), then is refused like an unknown one. Rotating again ends an earlier overlap at once.
Audited, with the credential id as target.

The root credential is rotated without overlap: "credential rotate root" makes the old root
token dead at once. A revoked credential cannot be rotated, and a vendor credential bound to
client certificates (--cert-san) authenticates by its certificate: rotate the certificate.

Break glass, for a lost root token: with the server stopped, on the server's host,

  tokenvault credential rotate root (--data DIR | --store URL) (--kek-file FILE | --kek-uri URI)

opens the store directly (it fails while a server holds DIR; on PostgreSQL, stop every
replica first), sets a new root secret, audits it (actor "break-glass (offline)") and prints
the new root token once. It needs what reads every value anyway: the store and its KEK.`,
		Args: cobra.ExactArgs(1),
	}, func(s *session, args []string) error {
		req := &tvpb.RotateCredentialRequest{Id: args[0]}
		if overlap != 0 {
			req.Overlap = durationpb.New(overlap)
		}
		resp, err := s.credentials().RotateCredential(s.ctx, req)
		if err != nil {
			return err
		}
		return s.printRotated(resp)
	})
	online := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if off.data == "" && off.url == "" {
			if off.kekFile != "" || off.kekURI != "" {
				return errors.New("--kek-file and --kek-uri go with --data or --store (the offline break-glass rotation of the root)")
			}
			return online(cmd, args)
		}
		if err := off.resolveOffline(false); err != nil {
			return err
		}
		output, _ := cmd.Flags().GetString("output")
		if err := checkOutput(output); err != nil {
			return err
		}
		return breakGlassRotateRoot(cmd, off, args[0], overlap, newPrinter(cmd, output))
	}
	cmd.Flags().DurationVar(&overlap, "overlap", 0, "how long the previous secret keeps working, e.g. 24h (0: dead at once; at most 720h; root: always 0)")
	off.register(cmd, "break glass: rotate the root offline in this data directory (server stopped); or --store URL")
	return cmd
}

// breakGlassRotateRoot rotates the root secret in a stopped server's store.
func breakGlassRotateRoot(cmd *cobra.Command, off offlineFlags, id string, overlap time.Duration, p printer) error {
	if id != vault.RootCredentialID {
		return fmt.Errorf("offline rotation (--data, --store) is only for the root credential (break glass); rotate %s through the server", id)
	}
	if overlap != 0 {
		return errors.New("the root credential is rotated without overlap: its old secret dies at once; drop --overlap")
	}
	if _, err := os.Stat(filepath.Join(off.data, store.FileName)); off.data != "" && errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no store in %s: there is no root to rotate; initialise it with: %s", off.data, initHint(off.hint(), off.kekHint()))
	}
	ctx := cmd.Context()
	st, ok, err := off.openRootStore(ctx, "break glass")
	if err != nil {
		return err
	}
	defer st.Close()
	if !ok {
		return fmt.Errorf("%s is not initialised: there is no root to rotate; initialise it with: %s", off.where(), initHint(off.hint(), off.kekHint()))
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	v, err := off.openVault(ctx, st, log, false)
	if err != nil {
		return err
	}
	ctx = vault.WithRequest(ctx, vault.RequestInfo{Method: "BreakGlassRotateRoot", Principal: vault.Principal{ID: vault.BreakGlassActor}})
	cred, secret, err := v.RotateCredential(ctx, vault.RootCredentialID, 0)
	if err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	resp := &tvpb.RotateCredentialResponse{Secret: secret, Credential: &tvpb.Credential{
		Id: cred.ID, Name: cred.Name, Role: string(cred.Role), CreateTime: timestamppb.New(cred.CreateTime), RotateTime: timestamppb.New(cred.RotateTime)}}
	return p.printRotated(resp)
}

// credentialStatus is a credential's state in one word: active, revoked or expired.
func credentialStatus(cr *tvpb.Credential) string {
	switch {
	case cr.GetRevoked():
		return "revoked"
	case cr.GetExpired():
		return "expired"
	}
	return "active"
}

// scopeText describes a credential's scope in one cell: "all" for an unscoped tokenizer or
// detokenizer, "-" for the roles scopes do not apply to.
func scopeText(cr *tvpb.Credential) string {
	if r := vault.Role(cr.GetRole()); r != vault.RoleTokenizer && r != vault.RoleDetokenizer {
		return "-"
	}
	var parts []string
	if len(cr.GetDomains()) > 0 {
		parts = append(parts, "domains="+strings.Join(cr.GetDomains(), ","))
	}
	if len(cr.GetTemplates()) > 0 {
		parts = append(parts, "templates="+strings.Join(cr.GetTemplates(), ","))
	}
	if cr.GetReveal() != "" {
		parts = append(parts, "reveal="+cr.GetReveal())
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// printRotated prints a rotation's response: the id and the new secret, once.
func (p printer) printRotated(resp *tvpb.RotateCredentialResponse) error {
	return p.print(resp, func(w io.Writer) error {
		cr := resp.GetCredential()
		fmt.Fprintf(w, "id:     %s\nrole:   %s\nsecret: %s\n\n", cr.GetId(), cr.GetRole(), resp.GetSecret())
		if t := resp.GetPreviousExpireTime(); t != nil {
			fmt.Fprintf(w, "The previous secret works until %s.\n", t.AsTime().Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "The previous secret no longer works.\n")
		}
		_, err := fmt.Fprintf(w, "The new secret is shown only now; the vault keeps only its hash.\n")
		return err
	})
}

// printRevoked prints a revoke call's response: "revoked ID", or the response with -o json.
func (p printer) printRevoked(resp proto.Message, id string) error {
	return p.print(resp, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "revoked %s\n", id)
		return err
	})
}
