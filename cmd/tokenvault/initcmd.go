package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// Offline commands on a data directory: init, and the break-glass rotation of the root
// (credential rotate root --data DIR). Both open the store directly, so they fail while a
// server holds its lock.

// offlineFlags are a data directory and its KEK.
type offlineFlags struct {
	data, kekFile, kekURI string
}

func (f *offlineFlags) register(cmd *cobra.Command, dataUsage string) {
	cmd.Flags().StringVar(&f.data, "data", "", dataUsage)
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

// initHint is the init command for this data directory.
func initHint(data, kek string) string {
	return fmt.Sprintf("tokenvault init --data %s %s", data, kek)
}

// openStore opens DIR's store without waiting for a lock; a held lock means a server runs.
func (f *offlineFlags) openStore(what string) (*store.Bolt, error) {
	if f.data == "" {
		return nil, errors.New("--data is required")
	}
	st, err := store.Open(filepath.Join(f.data, store.FileName), store.Options{Timeout: -1})
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("the data directory %s is in use by another tokenvault process: stop the server first (%s works offline only)", f.data, what)
	}
	return st, err
}

// openRootStore checks the KEK flags, opens DIR's store offline (see openStore) and says
// whether it holds a root credential. The caller closes the store.
func (f *offlineFlags) openRootStore(ctx context.Context, what string) (*store.Bolt, bool, error) {
	if f.kekFile != "" && f.kekURI != "" {
		return nil, false, errors.New("give --kek-file or --kek-uri, not both")
	}
	st, err := f.openStore(what)
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
// (a new vault only).
func (f *offlineFlags) openVault(ctx context.Context, st store.Store, log *slog.Logger, create bool) (*vault.Vault, error) {
	if f.kekFile == "" && f.kekURI == "" {
		return nil, errors.New("a KEK is required: --kek-file PATH or --kek-uri URI")
	}
	kek, err := loadKEK(ctx, serveOpts{data: f.data, kekFile: f.kekFile, kekURI: f.kekURI}, log, create)
	if err != nil {
		return nil, err
	}
	return vault.Open(ctx, vault.Config{Store: st, KEK: kek, Logger: log, ErasureLog: filepath.Join(f.data, "erasure.log")})
}

func newInitCmd() *cobra.Command {
	var f offlineFlags
	var output string
	cmd := &cobra.Command{
		Use:   "init --data DIR (--kek-file FILE | --kek-uri URI) [-o json]",
		Short: "Initialise an empty store (keys, root credential); prints the root token once",
		Long: `Initialise an empty store: the vault's keys, wrapped by the KEK (a --kek-file is created 0600
when missing), and the root credential. The root token is printed once, on stdout ({"root_token":
"…"} with -o json): keep it safe; the vault keeps only its hash. A store that is already
initialised is refused. The server must not be running on DIR.

A production serve refuses an uninitialised store: run init once before its first start.
A lost root token is replaced offline with: tokenvault credential rotate root --data DIR --kek-file FILE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if f.kekFile == "" && f.kekURI == "" {
				return errors.New("a KEK is required: --kek-file PATH (created 0600 if missing) or --kek-uri URI")
			}
			if f.data == "" {
				return errors.New("--data is required")
			}
			if err := os.MkdirAll(f.data, 0o700); err != nil {
				return fmt.Errorf("--data: %w", err)
			}
			ctx := cmd.Context()
			st, ok, err := f.openRootStore(ctx, "init")
			if err != nil {
				return err
			}
			defer st.Close()
			if ok {
				return fmt.Errorf("the store in %s is already initialised; nothing changed (a lost root token is replaced with: tokenvault credential rotate root --data %s %s, with the server stopped)", f.data, f.data, f.kekHint())
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
				return fmt.Errorf("the store in %s is already initialised; nothing changed", f.data)
			}
			if err := st.Close(); err != nil {
				return fmt.Errorf("closing the store: %w", err)
			}
			p := newPrinter(cmd, output)
			return p.print(map[string]string{"root_token": secret}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Initialised a new vault in %s.\nRoot token (shown once; store it safely): %s\n\nStart the server with: tokenvault serve --data %s %s\n", f.data, secret, f.data, f.kekHint())
				return err
			})
		},
	}
	f.register(cmd, "the data directory (created 0700 if missing)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("data")
	return cmd
}
