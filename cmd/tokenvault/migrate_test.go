package main

// migrate between bbolt and PostgreSQL, and restore --store, with a real PostgreSQL cluster
// started by the test (internal/testpg).

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// copyToData copies the PostgreSQL database at url into a new data directory (store.Copy),
// so a bbolt server can show what it holds. (migrate would refuse a database restored from a
// backup taken between two checkpoints: its audit tail is unsigned until a server signs it.)
func copyToData(t *testing.T, url, dir string) {
	t.Helper()
	src, err := pgstore.Open(t.Context(), url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dst, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := store.Copy(t.Context(), dst, src); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateAndRestoreStore: a bbolt vault is migrated to PostgreSQL and back to a new data
// directory, where a server reveals every value; migrate refuses a non-empty destination; a
// backup taken before a subject erasure is restored into an empty database with the erasure
// log and the KEK, and the subject stays erased (checked by copying that database back to
// bbolt and serving it).
func TestMigrateAndRestoreStore(t *testing.T) {
	pg := testpg.Start(t)
	a := t.TempDir()
	srv := startServer(t, a)
	c := newHTTPClient()
	env := childEnv("TOKENVAULT_TOKEN=" + rootToken)
	items := []tokenizeItem{
		{Value: "4556737586899855", Template: "pan", Subject: "s1"},
		{Value: "one.s1@example.com", Template: "email", Domain: "acme", Subject: "s1"},
		{Value: "5555555555554444", Template: "pan", Subject: "s2"},
		{Value: "no.subject@example.com", Template: "email"},
		{Value: "an opaque value", Template: "opaque", Domain: "acme"},
	}
	res, err := tokenize(c, srv.httpAddr, rootToken, items)
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]detokenizeItem, len(res))
	for i, r := range res {
		if r.Error != nil {
			t.Fatalf("tokenize %d: %+v", i, r.Error)
		}
		refs[i] = detokenizeItem{Token: r.Token, Domain: items[i].Domain}
	}
	backup := filepath.Join(t.TempDir(), "vault.backup")
	if _, errOut, code := runCLI(t, env, "backup", "--out", backup, "--addr", srv.grpcAddr); code != 0 {
		t.Fatalf("backup: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, env, "erase-subject", "s1", "--addr", srv.grpcAddr); code != 0 {
		t.Fatalf("erase-subject: exit %d %s", code, errOut)
	}
	srv.stopClean()
	c.CloseIdleConnections()

	// expect serves dir and checks each value: readable, or (erased) NOT_FOUND.
	expect := func(what, dir string, erased map[int]bool) {
		t.Helper()
		copyFile(t, filepath.Join(a, "kek.json"), filepath.Join(dir, "kek.json"), 0o600)
		s := startServer(t, dir)
		cl := newHTTPClient()
		defer cl.CloseIdleConnections()
		got, err := detokenize(cl, s.httpAddr, rootToken, refs)
		if err != nil {
			t.Fatalf("%s: detokenize: %v", what, err)
		}
		for i, r := range got {
			switch {
			case erased[i] && (r.Error == nil || r.Error.Code != "NOT_FOUND"):
				t.Errorf("%s: erased item %d answered %+v, want NOT_FOUND", what, i, r)
			case !erased[i] && (r.Error != nil || r.Value != items[i].Value):
				t.Errorf("%s: item %d: %+v, want %q", what, i, r, items[i].Value)
			}
		}
		s.stopClean()
		s.assertNoErrorLogs(what)
		checkStore(t, dir)
	}
	erasedS1 := map[int]bool{0: true, 1: true}

	// bbolt → PostgreSQL, verified; a second run refuses the non-empty database.
	url1 := pg.CreateDB(t, "migrated")
	out, errOut, code := runCLI(t, childEnv(), "migrate", "--from-data", a, "--to", url1, "-o", "json")
	if code != 0 {
		t.Fatalf("migrate --from-data --to: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep migrateReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("migrate -o json: %v\n%s", err, out)
	}
	if rep.Keys == 0 || len(rep.Buckets) < 5 || !rep.Audit.OK || rep.Audit.Events == 0 || strings.Contains(out, "password") {
		t.Errorf("migrate report: %+v", rep)
	}
	if _, errOut, code := runCLI(t, childEnv(), "migrate", "--from-data", a, "--to", url1); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("migrate into a non-empty database: exit %d, stderr %q; want a refusal", code, errOut)
	}
	// PostgreSQL → bbolt: the same vault, served from the new directory.
	b := filepath.Join(t.TempDir(), "b")
	out, errOut, code = runCLI(t, childEnv(), "migrate", "--from", url1, "--to-data", b)
	if code != 0 || !strings.Contains(out, "counts verified") || !strings.Contains(out, "audit verified") {
		t.Fatalf("migrate --from --to-data: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, childEnv(), "migrate", "--from", url1, "--to-data", b); code == 0 || !strings.Contains(errOut, "already holds a store") {
		t.Errorf("migrate into a directory holding a store: exit %d, stderr %q", code, errOut)
	}
	expect("bbolt → PostgreSQL → bbolt", b, erasedS1)

	// restore --store: the backup predates the erasure. Without the erasure log, s1 comes back
	// (the premise); with it and the KEK, s1 is erased again.
	url2 := pg.CreateDB(t, "restored_without")
	if out, errOut, code := runCLI(t, childEnv(), "restore", "--in", backup, "--store", url2); code != 0 || !strings.Contains(out, "WARNING: no --erasure-log") {
		t.Fatalf("restore --store without a log: exit %d\n%s\n%s", code, out, errOut)
	}
	without := filepath.Join(t.TempDir(), "without")
	copyToData(t, url2, without)
	expect("restored without the erasure log", without, nil)

	url3 := pg.CreateDB(t, "restored_with")
	logDir := t.TempDir() // a directory of erasure logs, one per replica
	copyFile(t, filepath.Join(a, "erasure.log"), filepath.Join(logDir, "replica-a.log"), 0o600)
	if err := os.WriteFile(filepath.Join(logDir, "replica-b.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, childEnv(), "restore", "--in", backup, "--store", url3, "--erasure-log", logDir); code == 0 || !strings.Contains(errOut, "KEK") {
		t.Errorf("restore --store --erasure-log without a KEK: exit %d, stderr %q; want a request for the KEK", code, errOut)
	}
	out, errOut, code = runCLI(t, childEnv(), "restore", "--in", backup, "--store", url3, "--erasure-log", logDir, "--kek-file", filepath.Join(a, "kek.json"))
	if code != 0 || !strings.Contains(out, "re-applied erasures") {
		t.Fatalf("restore --store --erasure-log: exit %d\n%s\n%s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, childEnv(), "restore", "--in", backup, "--store", url3); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore into a non-empty database: exit %d, stderr %q", code, errOut)
	}
	with := filepath.Join(t.TempDir(), "with")
	copyToData(t, url3, with)
	expect("restored with the erasure log", with, erasedS1)

	// Re-applying only (as after a pg_restore or PITR): nothing left to erase.
	out, errOut, code = runCLI(t, childEnv(), "restore", "--store", url3, "--erasure-log", logDir, "--kek-file", filepath.Join(a, "kek.json"))
	if code != 0 || !strings.Contains(out, "nothing to erase again") {
		t.Errorf("restore --store --erasure-log (no --in): exit %d\n%s\n%s", code, out, errOut)
	}
}
