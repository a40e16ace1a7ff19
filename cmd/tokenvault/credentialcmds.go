package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

func newCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage credentials (admin)"}
	cmd.AddCommand(newCredentialCreateCmd(), newCredentialListCmd(), newCredentialRevokeCmd())
	return cmd
}

func newCredentialCreateCmd() *cobra.Command {
	var req tvpb.CreateCredentialRequest
	cmd := clientCmd(&cobra.Command{
		Use:   "create --name N --role ROLE [--vendor V]",
		Short: "Create a credential; prints its secret once",
		Args:  cobra.NoArgs,
	}, func(s *session, _ []string) error {
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
			fmt.Fprintf(w, "secret: %s\n\nThe secret is shown only now; the vault keeps only its hash.\n", resp.GetSecret())
			return nil
		})
	})
	cmd.Flags().StringVar(&req.Name, "name", "", "a name for the credential")
	cmd.Flags().StringVar(&req.Role, "role", "", "admin, tokenizer, detokenizer, auditor or vendor")
	cmd.Flags().StringVar(&req.Vendor, "vendor", "", "for role vendor: the vendor it acts for")
	cmd.Flags().StringVar(&req.CertSan, "cert-san", "", "for role vendor: bind to client certificates with this SAN (mTLS on the vendor listener)")
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
				t := newTable(w, "ID", "NAME", "ROLE", "VENDOR", "CREATED", "REVOKED")
				for _, cr := range resp.GetCredentials() {
					t.row(cr.GetId(), cr.GetName(), cr.GetRole(), cr.GetVendor(), cr.GetCreateTime().AsTime().Format(time.RFC3339), cr.GetRevoked())
				}
				return t.flush()
			})
		})
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

// printRevoked prints a revoke call's response: "revoked ID", or the response with -o json.
func (p printer) printRevoked(resp proto.Message, id string) error {
	return p.print(resp, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "revoked %s\n", id)
		return err
	})
}
