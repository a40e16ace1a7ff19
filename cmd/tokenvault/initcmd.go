package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// Offline commands on a store: init, and the break-glass rotation of the root (credential
// rotate root --data DIR | --store URL). Both open the store directly; on a data directory
// they fail while a server holds its lock (a PostgreSQL database has no such lock).

// offlineFlags are a store (storeopen.go) and its KEK.
type offlineFlags struct {
	storeFlags
	kekFile, kekURI string
}

func (f *offlineFlags) register(cmd *cobra.Command, dataUsage string) {
	f.storeFlags.register(cmd.Flags(), dataUsage)
	cmd.Flags().StringVar(&f.kekFile, "kek-file", "", "the local Tink keyset file that wraps the vault's keys")
	cmd.Flags().StringVar(&f.kekURI, "kek-uri", "", "a KMS key as the KEK: aws-kms://…, gcp-kms://…, hcvault://…")
}

// kekHint is how the KEK was given, for messages that name a command to run.
func (f *offlineFlags) kekHint() string {
	if f.kekURI != "" {
		return "--kek-uri " + f.kekURI
	}
	if f.kekFile != "" {
		return "--kek-file " + f.kekFile
	}
	return "--kek-file FILE"
}

// initHint is the init command for a store (its storeFlags.hint) and KEK.
func initHint(storeHint, kek string) string {
	return fmt.Sprintf("tokenvault init %s %s", storeHint, kek)
}

// openRootStore checks the KEK flags, opens the store offline (storeFlags.open) and says
// whether it holds a root credential. The caller closes the store.
func (f *offlineFlags) openRootStore(ctx context.Context, what string) (store.Store, bool, error) {
	if f.kekFile != "" && f.kekURI != "" {
		return nil, false, errors.New("give --kek-file or --kek-uri, not both")
	}
	st, err := f.open(ctx, true, what)
	if err != nil {
		return nil, false, err
	}
	ok, err := vault.RootExists(ctx, st)
	if err != nil {
		st.Close()
		return nil, false, err
	}
	return st, ok, nil
}

// openVault opens the vault over st with the KEK; create allows creating a missing KEK file
// (a new vault only). A data directory's erasure log is re-applied; a PostgreSQL store's
// commands name none (serve --erasure-log is each replica's own).
func (f *offlineFlags) openVault(ctx context.Context, st store.Store, log *slog.Logger, create bool) (*vault.Vault, error) {
	if f.kekFile == "" && f.kekURI == "" {
		return nil, errors.New("a KEK is required: --kek-file PATH or --kek-uri URI")
	}
	kek, err := loadKEK(ctx, serveOpts{data: f.data, kekFile: f.kekFile, kekURI: f.kekURI}, log, create)
	if err != nil {
		return nil, err
	}
	cfg := vault.Config{Store: st, KEK: kek, Logger: log}
	if f.data != "" {
		cfg.ErasureLog = filepath.Join(f.data, "erasure.log")
	}
	return vault.Open(ctx, cfg)
}

func newInitCmd() *cobra.Command {
	var f offlineFlags
	var output string
	cmd := &cobra.Command{
		Use:   "init (--data DIR | --store URL) (--kek-file FILE | --kek-uri URI) [-o json]",
		Short: "Initialise an empty store (keys, root credential); prints the root token once",
		Long: `Initialise an empty store: the vault's keys, wrapped by the KEK (a --kek-file is created 0600
when missing), and the root credential. The root token is printed once, on stdout ({"root_token":
"…"} with -o json): keep it safe; the vault keeps only its hash. A store that is already
initialised is refused.

The store is a data directory (--data DIR, bbolt; the server must not be running on it) or a
PostgreSQL database (--store postgres://USER@HOST:PORT/DB?sslmode=…, or TOKENVAULT_STORE when
neither flag is given): init creates the schema in an empty database, once, before the first
replica starts; every replica then serves it with the same KEK.

A production serve refuses an uninitialised store: run init once before its first start.
A lost root token is replaced offline with: tokenvault credential rotate root (--data DIR |
--store URL) --kek-file FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if f.kekFile == "" && f.kekURI == "" {
				return errors.New("a KEK is required: --kek-file PATH (created 0600 if missing) or --kek-uri URI")
			}
			if err := f.resolveOffline(true); err != nil {
				return err
			}
			if !f.postgres() {
				if err := os.MkdirAll(f.data, 0o700); err != nil {
					return fmt.Errorf("--data: %w", err)
				}
			}
			ctx := cmd.Context()
			st, ok, err := f.openRootStore(ctx, "init")
			if err != nil {
				return err
			}
			defer st.Close()
			if ok {
				return fmt.Errorf("%s is already initialised; nothing changed (a lost root token is replaced with: tokenvault credential rotate root %s %s, with the servers stopped)", f.where(), f.hint(), f.kekHint())
			}
			initialized, err := vault.Initialized(ctx, st)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			v, err := f.openVault(ctx, st, log, !initialized)
			if err != nil {
				return err
			}
			secret, err := v.InitRoot(ctx)
			if err != nil {
				return err
			}
			if secret == "" {
				return fmt.Errorf("%s is already initialised; nothing changed", f.where())
			}
			if err := st.Close(); err != nil {
				return fmt.Errorf("closing the store: %w", err)
			}
			p := newPrinter(cmd, output)
			return p.print(map[string]string{"root_token": secret}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Initialised a new vault in %s.\nRoot token (shown once; store it safely): %s\n\nStart the server with: tokenvault serve %s %s\n", strings.TrimPrefix(f.where(), "the store in "), secret, f.hint(), f.kekHint())
				return err
			})
		},
	}
	f.register(cmd, "the data directory (created 0700 if missing)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
