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

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

func newBackupCmd() *cobra.Command {
	var out string
	cmd := clientCmd(&cobra.Command{
		Use:   "backup --out FILE",
		Short: "Stream a consistent online snapshot of the vault to FILE (keys stay wrapped by the KEK)",
		Args:  cobra.NoArgs,
	}, func(s *session, _ []string) error {
		stream, err := s.keys().Backup(s.ctx, &tvpb.BackupRequest{})
		if err != nil {
			return err
		}
		tmp := out + ".partial"
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		prog := newProgress(s.errOut)
		defer prog.clear()
		var n int64
		err = recvAll(stream, func(msg *tvpb.BackupResponse) error {
			m, err := f.Write(msg.GetChunk())
			n += int64(m)
			prog.update("backup: %s bytes", thousands(n))
			return err
		})
		if err != nil {
			f.Close()
			os.Remove(tmp)
			return err
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
		prog.clear()
		s.printf("wrote %d bytes to %s\n", n, out)
		return nil
	})
	cmd.Flags().StringVar(&out, "out", "", "the backup file (written 0600)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// restoreFlags are restore's flags.
type restoreFlags struct {
	in, data, storeURL string
	erasureLogs        []string
	kekFile, kekURI    string
}

func newRestoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore --in FILE (--data DIR | --store postgres://…) [--erasure-log PATH]... [--kek-file FILE | --kek-uri URI]",
		Short: "Offline: write a backup into an empty data directory or PostgreSQL database; the vault opens with the same KEK",
		Long: `Writes a backup made by tokenvault backup (from a bbolt or a PostgreSQL server: the format is
the same) into an empty store:

  --data DIR        a new data directory (bbolt), as before;
  --store URL       an empty PostgreSQL database (every bucket copied, then counted).

Erasures made after the backup must be re-applied, or what they erased comes back. Give the
installation's erasure logs with --erasure-log (repeatable; a directory means every *.log
file in it: on PostgreSQL each replica writes its own). With --data the logs are copied into
DIR/erasure.log and re-applied when the server starts there. With --store they are re-applied
now, which needs the KEK (--kek-file or --kek-uri).

With --store and no --in, restore only re-applies the erasure logs: run it after restoring the
database with PostgreSQL's own tools (pg_restore, point-in-time recovery), before the replicas
start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case (f.data == "") == (f.storeURL == ""):
				return withExitCode(exitUsage, errors.New("give --data DIR or --store postgres://… (the store to restore into)"))
			case f.in == "" && f.data != "":
				return withExitCode(exitUsage, errors.New("--in FILE is required with --data"))
			case f.in == "" && len(f.erasureLogs) == 0:
				return withExitCode(exitUsage, errors.New("give --in FILE (a backup) and/or --erasure-log PATH (erasures to re-apply)"))
			case f.kekFile != "" && f.kekURI != "":
				return withExitCode(exitUsage, errors.New("give --kek-file or --kek-uri, not both"))
			}
			logs, err := erasureLogFiles(f.erasureLogs)
			if err != nil {
				return err
			}
			if f.data != "" {
				return restoreData(cmd, f, logs)
			}
			return restoreStore(cmd, f, logs)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.in, "in", "", "a file made by tokenvault backup")
	fl.StringVar(&f.data, "data", "", "the (empty) data directory to restore into")
	fl.StringVar(&f.storeURL, "store", "", "the (empty) PostgreSQL database to restore into (postgres://USER@HOST:PORT/DB?sslmode=…; not read from TOKENVAULT_STORE: name the target explicitly)")
	fl.StringArrayVar(&f.erasureLogs, "erasure-log", nil, "an erasure log of the installation (a directory: every *.log in it); repeatable")
	fl.StringVar(&f.kekFile, "kek-file", "", "with --store and --erasure-log: the local Tink keyset file that wraps the vault's keys")
	fl.StringVar(&f.kekURI, "kek-uri", "", "with --store and --erasure-log: a KMS key as the KEK")
	return cmd
}

// erasureLogFiles expands the --erasure-log paths: a directory stands for its *.log files
// (sorted).
func erasureLogFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("--erasure-log: %w", err)
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.log"))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

// concatFiles writes the files one after another into dst, which must not exist (0600,
// synced).
func concatFiles(dst string, files []string) error {
	var rs []io.Reader
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		rs = append(rs, f, strings.NewReader("\n")) // a torn last line stays on its own
	}
	_, err := store.WriteFile(dst, os.O_EXCL, io.MultiReader(rs...))
	return err
}

// restoreData restores into a new bbolt data directory and copies the erasure logs beside it.
func restoreData(cmd *cobra.Command, f restoreFlags, logs []string) error {
	in, err := os.Open(f.in)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(f.data, 0o700); err != nil {
		return err
	}
	dst := filepath.Join(f.data, store.FileName)
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s already holds a store; restore into an empty directory", f.data)
	}
	n, err := store.RestoreFile(in, dst)
	if err != nil {
		return err
	}
	b, err := store.Open(dst, store.Options{Timeout: -1, NoKeyFilter: true})
	if err != nil {
		return err
	}
	err = forgetSessions(cmd.Context(), b)
	if cerr := b.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "restored %d bytes into %s.\n", n, dst)
	if len(logs) == 0 {
		fmt.Fprintf(w, "WARNING: no --erasure-log given. Erasures made after this backup are re-applied only if the\nserver starts with the installation's erasure log (serve --erasure-log FILE).\n")
		return nil
	}
	if err := concatFiles(filepath.Join(f.data, "erasure.log"), logs); err != nil {
		return fmt.Errorf("copying the erasure log: %w", err)
	}
	fmt.Fprintf(w, "copied the erasure log to %s: start the server with the same KEK and --data %s, and the erasures made since the backup are re-applied.\n",
		filepath.Join(f.data, "erasure.log"), f.data)
	return nil
}

// restoreStore restores a backup into an empty PostgreSQL database (the backup's bbolt file is
// written to a temporary directory, checked, and copied bucket by bucket), then re-applies
// the erasure logs with the KEK.
func restoreStore(cmd *cobra.Command, f restoreFlags, logs []string) error {
	ctx := cmd.Context()
	if len(logs) > 0 && f.kekFile == "" && f.kekURI == "" {
		return withExitCode(exitUsage, errors.New("--erasure-log with --store re-applies the erasures now: give the KEK (--kek-file or --kek-uri)"))
	}
	if err := checkStoreURL(f.storeURL); err != nil {
		return withExitCode(exitUsage, err)
	}
	pg, err := openPostgres(ctx, f.storeURL)
	if err != nil {
		return err
	}
	defer pg.Close()
	w := cmd.OutOrStdout()
	where := redactURL(f.storeURL)
	if f.in != "" {
		in, err := os.Open(f.in)
		if err != nil {
			return err
		}
		defer in.Close()
		tmp, err := os.MkdirTemp("", "tokenvault-restore-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if _, err := store.RestoreFile(in, filepath.Join(tmp, store.FileName)); err != nil {
			return err
		}
		b, err := store.Open(filepath.Join(tmp, store.FileName), store.Options{Timeout: -1, NoKeyFilter: true})
		if err != nil {
			return err
		}
		defer b.Close()
		copied, err := store.Copy(ctx, pg, b)
		if errors.Is(err, store.ErrNotEmpty) {
			return fmt.Errorf("%s is not empty: restore into an empty database", where)
		}
		if err != nil {
			return err
		}
		if _, err := store.VerifyCopy(ctx, copied, pg); err != nil {
			return err
		}
		if err := forgetSessions(ctx, pg); err != nil {
			return err
		}
		keys := 0
		for _, c := range copied {
			keys += c.Keys
		}
		fmt.Fprintf(w, "restored %d keys in %d buckets into %s (counts verified).\n", keys, len(copied), where)
	}
	if len(logs) == 0 {
		fmt.Fprintf(w, "WARNING: no --erasure-log given. Erasures made after this backup come back unless you re-apply\nevery replica's erasure log: tokenvault restore --store URL --erasure-log PATH... --kek-file FILE\n")
		return nil
	}
	tmp, err := os.MkdirTemp("", "tokenvault-erasures-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	merged := filepath.Join(tmp, "erasure.log")
	if err := concatFiles(merged, logs); err != nil {
		return fmt.Errorf("reading the erasure logs: %w", err)
	}
	var logBuf strings.Builder
	log := slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	kek, err := loadKEK(ctx, serveOpts{kekFile: f.kekFile, kekURI: f.kekURI}, log, false)
	if err != nil {
		return err
	}
	// Open re-applies the erasure log (vault.Config.ErasureLog), audited as ErasureLogReplay,
	// under a replica id of its own (no serving replica uses it).
	if _, err := vault.Open(ctx, vault.Config{Store: pg, KEK: kek, Logger: log, ErasureLog: merged, ReplicaID: "restore"}); err != nil {
		return fmt.Errorf("re-applying the erasure logs: %w", err)
	}
	fmt.Fprintf(w, "re-applied %d erasure log(s) to %s", len(logs), where)
	if strings.Contains(logBuf.String(), "re-applied erasures") {
		fmt.Fprintf(w, ": %s", strings.TrimSpace(logBuf.String()[strings.Index(logBuf.String(), "re-applied erasures"):]))
	} else {
		fmt.Fprintf(w, ": nothing to erase again")
	}
	fmt.Fprintln(w)
	return nil
}

// copyNewFile copies src to dst, which must not exist yet (0600, synced).
func copyNewFile(src, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = store.WriteFile(dst, os.O_EXCL, f)
	return err
}

// forgetSessions deletes the web console sessions a restored backup holds (vault.
// ForgetConsoleSessions): one signed out after the backup must not come back with it.
func forgetSessions(ctx context.Context, st store.Store) error {
	if _, err := vault.ForgetConsoleSessions(ctx, st); err != nil {
		return fmt.Errorf("clearing the restored console sessions: %w", err)
	}
	return nil
}
