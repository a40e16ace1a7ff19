package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/crypto/kek"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Data key lifecycle: status, rotation, disable, destroy, KEK rewrap"}
	cmd.AddCommand(
		newKeyStatusCmd("status", "Show each data key's state, the records it protects, and the rewrap's progress"),
		newKeyStatusCmd("list", "Same as status"),
		newKeyRotateCmd(),
		newKeyOpCmd("disable", "Disable a data key that protects no record", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.DisableKey(ctx, &tvpb.DisableKeyRequest{KeyId: id})
			return err
		}),
		newKeyOpCmd("enable", "Re-enable a disabled data key", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.EnableKey(ctx, &tvpb.EnableKeyRequest{KeyId: id})
			return err
		}),
		newKeyOpCmd("destroy", "Destroy a disabled data key that protects no record (irreversible)", func(ctx context.Context, c tvpb.KeyServiceClient, id uint32) error {
			_, err := c.DestroyKey(ctx, &tvpb.DestroyKeyRequest{KeyId: id})
			return err
		}),
		newRewrapKEKCmd(),
	)
	return cmd
}

func newKeyStatusCmd(use, short string) *cobra.Command {
	return clientCmd(&cobra.Command{Use: use, Short: short, Args: cobra.NoArgs}, func(s *session, _ []string) error {
		resp, err := s.keys().GetKeyStatus(s.ctx, &tvpb.GetKeyStatusRequest{})
		if err != nil {
			return err
		}
		return s.print(resp, func(w io.Writer) error {
			t := newTable(w, "KEY ID", "STATE", "CREATED", "RECORDS")
			for _, k := range resp.GetKeys() {
				t.row(k.GetKeyId(), k.GetState(), timeOrDash(k.GetCreateTime()), k.GetRecords())
			}
			t.flush()
			state := "running"
			if resp.GetRewrapDone() || resp.GetRewrapTarget() == 0 {
				state = "idle"
			}
			fmt.Fprintf(w, "\nrewrap: %s; %d rewrapped, %d of %d not yet under the primary key\n",
				state, resp.GetRewrapped(), resp.GetRemaining(), resp.GetTotal())
			if len(resp.GetReplicas()) == 0 {
				return nil
			}
			fmt.Fprintln(w, "\nREPLICAS")
			t = newTable(w, "ID", "LIVE", "PRIMARY", "KEYRING", "LAST SEEN")
			for _, r := range resp.GetReplicas() {
				t.row(r.GetId(), r.GetLive(), r.GetPrimaryKeyId(), r.GetKeyringVersion(), timeOrDash(r.GetLastSeen()))
			}
			return t.flush()
		})
	})
}

// timeOrDash is ts in RFC 3339, or "-" when it is unset.
func timeOrDash(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Format(time.RFC3339)
}

// rewrapPoll is how often keys rotate --wait asks for the rewrap's progress (each status
// scans the store).
const rewrapPoll = time.Second

func newKeyRotateCmd() *cobra.Command {
	var wait bool
	cmd := clientCmd(&cobra.Command{
		Use:   "rotate [--wait]",
		Short: "Add a new primary data key; a background rewrap moves old records to it",
		Long: `Add a new primary data key; a background rewrap moves the records under older keys to it.

With --wait, follow the rewrap until every record is under the new key (progress on a
terminal's stderr), then print the final counts; -o json then prints the final key status
(as keys status -o json: rewrapTarget is the new key).`,
		Args: cobra.NoArgs,
	}, func(s *session, _ []string) error {
		resp, err := s.keys().RotateKey(s.ctx, &tvpb.RotateKeyRequest{})
		if err != nil {
			return err
		}
		if wait {
			return s.waitRewrap(resp.GetKeyId())
		}
		return s.print(resp, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "new primary data key %d; rewrap started (tokenvault keys status, or keys rotate --wait)\n", resp.GetKeyId())
			return err
		})
	})
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the rewrap has moved every record to the new key, showing progress on a terminal")
	return cmd
}

// waitRewrap polls the key status until the rewrap to key id is done, then prints its counts.
func (s *session) waitRewrap(id uint32) error {
	prog := newProgress(s.errOut)
	defer prog.clear()
	for {
		st, err := s.keys().GetKeyStatus(s.ctx, &tvpb.GetKeyStatusRequest{})
		if err != nil {
			return err
		}
		if st.GetRewrapTarget() == id && st.GetRewrapDone() {
			prog.clear()
			return s.print(st, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "new primary data key %d; rewrap done: %d rewrapped, %d of %d not yet under it\n",
					id, st.GetRewrapped(), st.GetRemaining(), st.GetTotal())
				return err
			})
		}
		if t := st.GetRewrapTarget(); t != 0 && t != id {
			return fmt.Errorf("another rotation (key %d) replaced key %d while waiting: follow it with tokenvault keys status", t, id)
		}
		prog.update("keys rotate: %s rewrapped, %s of %s records to go", thousands(st.GetRewrapped()), thousands(st.GetRemaining()), thousands(st.GetTotal()))
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(rewrapPoll):
		}
	}
}

// newKeyOpCmd is `keys USE KEY_ID`: call with the key id, then a line saying it was done.
func newKeyOpCmd(use, short string, call func(context.Context, tvpb.KeyServiceClient, uint32) error) *cobra.Command {
	var id uint32
	return clientCmd(&cobra.Command{
		Use: use + " KEY_ID", Short: short, Args: cobra.ExactArgs(1),
		PreRunE: func(_ *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil {
				return fmt.Errorf("KEY_ID must be a number (see tokenvault keys status)")
			}
			id = uint32(n)
			return nil
		},
	}, func(s *session, _ []string) error {
		if err := call(s.ctx, s.keys(), id); err != nil {
			return err
		}
		s.printf("%s: data key %d\n", use, id)
		return nil
	})
}

func newRewrapKEKCmd() *cobra.Command {
	var sf storeFlags
	var oldFile, oldURI, newFile, newURI string
	cmd := &cobra.Command{
		Use:   "rewrap-kek (--data DIR | --store URL) (--old-kek-file F | --old-kek-uri U) (--new-kek-file F | --new-kek-uri U)",
		Short: "Offline: re-encrypt the stored keysets under a new KEK (instant, whatever the store's size)",
		Long: `Offline: re-encrypt the stored keysets under a new KEK (instant, whatever the store's size).
On a data directory the server must be stopped (the command fails while it holds the lock).
On a PostgreSQL store (--store URL, or TOKENVAULT_STORE) stop every replica first: nothing
stops one that keeps running with the old KEK, and the replicas must all start with the new
one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := sf.resolveOffline(true); err != nil {
				return err
			}
			oldKEK, err := openKEK(ctx, oldFile, oldURI, false)
			if err != nil {
				return fmt.Errorf("old KEK: %w", err)
			}
			newKEK, err := openKEK(ctx, newFile, newURI, true)
			if err != nil {
				return fmt.Errorf("new KEK: %w", err)
			}
			st, err := sf.open(ctx, true, "keys rewrap-kek")
			if err != nil {
				return err
			}
			defer st.Close()
			if sf.postgres() {
				if err := refuseLiveReplicas(ctx, st, "keys rewrap-kek"); err != nil {
					return err
				}
			}
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
	f := cmd.Flags()
	sf.register(f, "the stopped server's data directory")
	f.StringVar(&oldFile, "old-kek-file", "", "current local KEK file")
	f.StringVar(&oldURI, "old-kek-uri", "", "current KMS KEK")
	f.StringVar(&newFile, "new-kek-file", "", "new local KEK file (created 0600 if missing)")
	f.StringVar(&newURI, "new-kek-uri", "", "new KMS KEK")
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
