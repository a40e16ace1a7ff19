package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/crypto/kek"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"

	"github.com/tink-crypto/tink-go/v2/tink"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Data key lifecycle: status, rotation, disable, destroy, KEK rewrap"}

	statusCmd := func(use, short string) *cobra.Command {
		var cf clientFlags
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				c, err := cf.dial()
				if err != nil {
					return err
				}
				defer c.Close()
				resp, err := tvpb.NewKeyServiceClient(c.Conn()).GetKeyStatus(cmd.Context(), &tvpb.GetKeyStatusRequest{})
				if err != nil {
					return callErr(err)
				}
				if cf.output == "json" {
					return printProto(cmd.OutOrStdout(), resp)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "KEY ID\tSTATE\tCREATED\tRECORDS")
				for _, k := range resp.GetKeys() {
					created := "-"
					if k.GetCreateTime() != nil {
						created = k.GetCreateTime().AsTime().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d\n", k.GetKeyId(), k.GetState(), created, k.GetRecords())
				}
				tw.Flush()
				state := "running"
				if resp.GetRewrapDone() || resp.GetRewrapTarget() == 0 {
					state = "idle"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\nrewrap: %s; %d rewrapped, %d of %d not yet under the primary key\n",
					state, resp.GetRewrapped(), resp.GetRemaining(), resp.GetTotal())
				return nil
			},
		}
		addClientFlags(c, &cf)
		return c
	}

	var rf clientFlags
	rotate := &cobra.Command{
		Use: "rotate", Short: "Add a new primary data key; a background rewrap moves old records to it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := rf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewKeyServiceClient(c.Conn()).RotateKey(cmd.Context(), &tvpb.RotateKeyRequest{})
			if err != nil {
				return callErr(err)
			}
			if rf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new primary data key %d; rewrap started (tokenvault keys status)\n", resp.GetKeyId())
			return nil
		},
	}
	addClientFlags(rotate, &rf)

	keyOp := func(use, short string, call func(context.Context, tvpb.KeyServiceClient, uint32) error) *cobra.Command {
		var cf clientFlags
		c := &cobra.Command{
			Use: use + " KEY_ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := strconv.ParseUint(args[0], 10, 32)
				if err != nil {
					return fmt.Errorf("KEY_ID must be a number (see tokenvault keys status)")
				}
				c, err := cf.dial()
				if err != nil {
					return err
				}
				defer c.Close()
				if err := call(cmd.Context(), tvpb.NewKeyServiceClient(c.Conn()), uint32(id)); err != nil {
					return callErr(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: data key %d\n", use, id)
				return nil
			},
		}
		addClientFlags(c, &cf)
		return c
	}

	var data, oldFile, oldURI, newFile, newURI string
	rewrapKEK := &cobra.Command{
		Use:   "rewrap-kek --data DIR (--old-kek-file F | --old-kek-uri U) (--new-kek-file F | --new-kek-uri U)",
		Short: "Offline: re-encrypt the stored keysets under a new KEK (instant, whatever the store's size)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			oldKEK, err := openKEK(ctx, oldFile, oldURI, false)
			if err != nil {
				return fmt.Errorf("old KEK: %w", err)
			}
			newKEK, err := openKEK(ctx, newFile, newURI, true)
			if err != nil {
				return fmt.Errorf("new KEK: %w", err)
			}
			st, err := store.Open(filepath.Join(data, store.FileName), store.Options{})
			if errors.Is(err, store.ErrLocked) {
				return fmt.Errorf("%s is in use: stop the server first", data)
			}
			if err != nil {
				return err
			}
			defer st.Close()
			v, err := vault.Open(ctx, vault.Config{Store: st, KEK: oldKEK})
			if err != nil {
				return err
			}
			if err := v.RewrapKEK(vault.WithRequest(ctx, vault.RequestInfo{Method: "cli:keys rewrap-kek"}), newKEK); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "the keysets are now wrapped by the new KEK; start the server with it")
			return nil
		},
	}
	rewrapKEK.Flags().StringVar(&data, "data", "", "the stopped server's data directory")
	rewrapKEK.Flags().StringVar(&oldFile, "old-kek-file", "", "current local KEK file")
	rewrapKEK.Flags().StringVar(&oldURI, "old-kek-uri", "", "current KMS KEK")
	rewrapKEK.Flags().StringVar(&newFile, "new-kek-file", "", "new local KEK file (created 0600 if missing)")
	rewrapKEK.Flags().StringVar(&newURI, "new-kek-uri", "", "new KMS KEK")
	_ = rewrapKEK.MarkFlagRequired("data")

	cmd.AddCommand(
		statusCmd("status", "Show each data key's state, the records it protects, and the rewrap's progress"),
		statusCmd("list", "Same as status"),
		rotate,
		keyOp("disable", "Disable a data key that protects no record", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.DisableKey(ctx, &tvpb.DisableKeyRequest{KeyId: id})
			return err
		}),
		keyOp("enable", "Re-enable a disabled data key", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.EnableKey(ctx, &tvpb.EnableKeyRequest{KeyId: id})
			return err
		}),
		keyOp("destroy", "Destroy a disabled data key that protects no record (irreversible)", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.DestroyKey(ctx, &tvpb.DestroyKeyRequest{KeyId: id})
			return err
		}),
		rewrapKEK,
	)
	return cmd
}

func openKEK(ctx context.Context, file, uri string, create bool) (tink.AEAD, error) {
	switch {
	case (file == "") == (uri == ""):
		return nil, errors.New("give exactly one of a KEK file or a KEK URI")
	case uri != "":
		return kek.Open(ctx, uri)
	case create:
		k, _, err := insecurekek.LoadOrCreate(file)
		return k, err
	}
	return insecurekek.Load(file)
}

func newBackupCmd() *cobra.Command {
	var cf clientFlags
	var out string
	cmd := &cobra.Command{
		Use:   "backup --out FILE",
		Short: "Stream a consistent online snapshot of the vault to FILE (keys stay wrapped by the KEK)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := tvpb.NewKeyServiceClient(c.Conn()).Backup(cmd.Context(), &tvpb.BackupRequest{})
			if err != nil {
				return callErr(err)
			}
			tmp := out + ".partial"
			f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				return err
			}
			var n int64
			for {
				msg, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					f.Close()
					os.Remove(tmp)
					return callErr(err)
				}
				m, err := f.Write(msg.GetChunk())
				n += int64(m)
				if err != nil {
					f.Close()
					os.Remove(tmp)
					return err
				}
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := os.Rename(tmp, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d bytes to %s\n", n, out)
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	cmd.Flags().StringVar(&out, "out", "", "the backup file (written 0600)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func newRestoreCmd() *cobra.Command {
	var in, data, erasureLog string
	cmd := &cobra.Command{
		Use:   "restore --in FILE --data DIR [--erasure-log FILE]",
		Short: "Offline: write a backup into an empty data directory; the vault opens with the same KEK",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(in)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := os.MkdirAll(data, 0o700); err != nil {
				return err
			}
			dst := filepath.Join(data, store.FileName)
			if _, err := os.Stat(dst); err == nil {
				return fmt.Errorf("%s already holds a store; restore into an empty directory", data)
			}
			n, err := store.RestoreFile(f, dst)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %d bytes into %s.\n", n, dst)
			if erasureLog == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "WARNING: no --erasure-log given. Erasures made after this backup are re-applied only if the\nserver starts with the installation's erasure log (serve --erasure-log FILE).\n")
				return nil
			}
			if err := copyNewFile(erasureLog, filepath.Join(data, "erasure.log")); err != nil {
				return fmt.Errorf("copying the erasure log: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied the erasure log to %s: start the server with the same KEK and --data %s, and the erasures made since the backup are re-applied.\n",
				filepath.Join(data, "erasure.log"), data)
			return nil
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "a file made by tokenvault backup")
	cmd.Flags().StringVar(&data, "data", "", "the (empty) data directory to restore into")
	cmd.Flags().StringVar(&erasureLog, "erasure-log", "", "the installation's erasure log, copied in so erasures made after the backup are re-applied at start")
	_ = cmd.MarkFlagRequired("in")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}

func newEraseCmds() []*cobra.Command {
	var df clientFlags
	var domain string
	del := &cobra.Command{
		Use:   "delete [--domain D] TOKEN...",
		Short: "Erase tokens and their originals; prints the signed receipt",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			req := &tvpb.DeleteTokensRequest{}
			for _, a := range args {
				req.Items = append(req.Items, &tvpb.DetokenizeItem{Token: a, Domain: domain})
			}
			resp, err := tvpb.NewTokenServiceClient(c.Conn()).DeleteTokens(cmd.Context(), req)
			if err != nil {
				return callErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetReceipt().GetReceiptJson())
			failed := 0
			for i, r := range resp.GetResults() {
				if r.GetError() != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "item %d: %s: %s\n", i+1, r.GetError().GetCode(), r.GetError().GetMessage())
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d tokens were not erased", failed, len(args))
			}
			return nil
		},
	}
	addClientFlags(del, &df)
	del.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")

	var ef clientFlags
	erase := &cobra.Command{
		Use:   "erase-subject SUBJECT",
		Short: "Erase every original of one data subject (crypto-shredding); prints the signed receipt",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := ef.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewTokenServiceClient(c.Conn()).EraseSubject(cmd.Context(), &tvpb.EraseSubjectRequest{Subject: args[0]})
			if err != nil {
				return callErr(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.GetReceipt().GetReceiptJson())
			return nil
		},
	}
	addClientFlags(erase, &ef)
	return []*cobra.Command{del, erase}
}

func copyNewFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
