package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
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
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "restored %d bytes into %s.\n", n, dst)
			if erasureLog == "" {
				fmt.Fprintf(w, "WARNING: no --erasure-log given. Erasures made after this backup are re-applied only if the\nserver starts with the installation's erasure log (serve --erasure-log FILE).\n")
				return nil
			}
			if err := copyNewFile(erasureLog, filepath.Join(data, "erasure.log")); err != nil {
				return fmt.Errorf("copying the erasure log: %w", err)
			}
			fmt.Fprintf(w, "copied the erasure log to %s: start the server with the same KEK and --data %s, and the erasures made since the backup are re-applied.\n",
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
