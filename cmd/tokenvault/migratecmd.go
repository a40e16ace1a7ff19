package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// Moving a vault between backends: migrate copies a stopped server's store (a bbolt data
// directory or a PostgreSQL database) into an empty store of the other kind, with store.Copy,
// and verifies the copy by per-bucket counts and by verifying its audit trail.

// openDataOffline opens DIR's bbolt store offline (storeFlags.open: a held lock means a
// server runs). With create, DIR is created (0700) and must not hold a store yet; without,
// it must hold one (opening would create an empty store).
func openDataOffline(ctx context.Context, dir, what string, create bool) (store.Store, error) {
	path := filepath.Join(dir, store.FileName)
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("%s already holds a store; %s into an empty directory", dir, what)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s holds no store: %w", dir, err)
	}
	f := storeFlags{data: dir}
	return f.open(ctx, true, what)
}

// migrateReport is migrate's summary (-o json).
type migrateReport struct {
	From    string              `json:"from"`
	To      string              `json:"to"`
	Buckets []store.BucketCount `json:"buckets"`
	Keys    int                 `json:"keys"`
	Audit   migrateAudit        `json:"audit"`
	Seconds float64             `json:"seconds"`
}

type migrateAudit struct {
	OK        bool   `json:"ok"`
	Events    uint64 `json:"events"`
	LastSeq   uint64 `json:"last_seq"`
	KeySource string `json:"key_source"`
	Problem   string `json:"problem,omitempty"`
}

func newMigrateCmd() *cobra.Command {
	var fromData, fromURL, toData, toURL, output string
	cmd := &cobra.Command{
		Use:   "migrate (--from-data DIR --to postgres://… | --from postgres://… --to-data DIR) [-o json]",
		Short: "Offline: copy a vault between a bbolt data directory and a PostgreSQL database, verified",
		Long: `Copies every bucket of a stopped vault's store (keys, values, sequences) into an empty store
of the other backend: --from-data DIR --to postgres://… moves a single server onto PostgreSQL,
--from postgres://… --to-data DIR moves back. Stop the server (every replica) first: the copy is
one consistent snapshot of the source, and writes made after it would be lost.

The destination must be empty (a fresh database, or a directory without a store). Afterwards
the copy is verified: the destination holds the same keys and sequences in every bucket, and
its audit trail verifies (as tokenvault audit verify would). Values are copied encrypted: the
destination opens with the same KEK. Keep the erasure log with the KEK (docs/ha.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			toPG := fromData != "" && toURL != "" && fromURL == "" && toData == ""
			toBolt := fromURL != "" && toData != "" && fromData == "" && toURL == ""
			if !toPG && !toBolt {
				return withExitCode(exitUsage, errors.New("give --from-data DIR with --to postgres://…, or --from postgres://… with --to-data DIR"))
			}
			for _, u := range []string{fromURL, toURL} {
				if err := checkStoreURL(u); err != nil {
					return withExitCode(exitUsage, err)
				}
			}
			ctx := cmd.Context()
			rep := migrateReport{}
			var src, dst store.Store
			if toPG {
				b, err := openDataOffline(ctx, fromData, "migrate", false)
				if err != nil {
					return err
				}
				defer b.Close()
				p, err := openPostgres(ctx, toURL)
				if err != nil {
					return err
				}
				defer p.Close()
				src, dst, rep.From, rep.To = b, p, fromData, redactURL(toURL)
			} else {
				p, err := openPostgres(ctx, fromURL)
				if err != nil {
					return err
				}
				defer p.Close()
				if err := refuseLiveReplicas(ctx, p, "migrate --from"); err != nil {
					return err
				}
				b, err := openDataOffline(ctx, toData, "migrate", true)
				if err != nil {
					return err
				}
				defer b.Close()
				src, dst, rep.From, rep.To = p, b, redactURL(fromURL), toData
			}
			start := time.Now()
			copied, err := store.Copy(ctx, dst, src)
			if errors.Is(err, store.ErrNotEmpty) {
				return fmt.Errorf("%s is not empty: migrate copies into an empty store only", rep.To)
			}
			if err != nil {
				return err
			}
			if _, err := store.VerifyCopy(ctx, copied, dst); err != nil {
				return err
			}
			rep.Buckets = copied
			for _, c := range copied {
				rep.Keys += c.Keys
			}
			srcRep, srcErr := vault.VerifyStoreAudit(ctx, src, audit.Options{})
			dstRep, dstErr := vault.VerifyStoreAudit(ctx, dst, audit.Options{})
			rep.Audit = migrateAudit{OK: dstErr == nil, Events: dstRep.Events, LastSeq: dstRep.LastSeq, KeySource: dstRep.KeySource, Problem: dstRep.Problem}
			rep.Seconds = time.Since(start).Seconds()
			p := newPrinter(cmd, output)
			if perr := p.print(rep, func(w io.Writer) error {
				fmt.Fprintf(w, "copied %d keys in %d buckets from %s to %s in %.1fs:\n", rep.Keys, len(rep.Buckets), rep.From, rep.To, rep.Seconds)
				t := newTable(w, "BUCKET", "KEYS", "SEQUENCE")
				for _, c := range rep.Buckets {
					t.row(string(c.Bucket), fmt.Sprint(c.Keys), fmt.Sprint(c.Sequence))
				}
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintf(w, "counts verified: every bucket of the destination holds what was copied\n")
				if dstErr == nil {
					fmt.Fprintf(w, "audit verified on the destination: events %d..%d (%d), key %s\n", dstRep.FirstSeq, dstRep.LastSeq, dstRep.Events, keyWord(dstRep.KeySource))
				}
				return nil
			}); perr != nil {
				return perr
			}
			switch {
			case dstErr != nil && srcErr != nil:
				return fmt.Errorf("the audit trail does not verify on the destination, nor on the source (it was copied as it is): %w", dstErr)
			case dstErr != nil:
				return fmt.Errorf("the audit trail verifies on the source but not on the destination: %w", dstErr)
			case srcRep.Events != dstRep.Events || srcRep.LastSeq != dstRep.LastSeq:
				return fmt.Errorf("the audit trail differs: the source has events up to %d (%d), the destination up to %d (%d)", srcRep.LastSeq, srcRep.Events, dstRep.LastSeq, dstRep.Events)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&fromData, "from-data", "", "a stopped server's data directory (bbolt) to copy from")
	f.StringVar(&toURL, "to", "", "the empty PostgreSQL database to copy into (postgres://USER@HOST:PORT/DB?sslmode=…)")
	f.StringVar(&fromURL, "from", "", "the PostgreSQL database to copy from (every replica stopped)")
	f.StringVar(&toData, "to-data", "", "the data directory to copy into (created; must hold no store)")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
