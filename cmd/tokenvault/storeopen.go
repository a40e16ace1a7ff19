package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// The one way commands name and open the vault's store: a PostgreSQL database (--store URL,
// or TOKENVAULT_STORE) shared by any number of replicas, or a bbolt file in a data directory
// (--data DIR) owned by one process. serve, init and the offline commands (credential rotate
// root, keys rewrap-kek, audit verify) all open it here.

// envStore is the environment variable that names the PostgreSQL store. serve reads it like
// every TOKENVAULT_* setting; the offline commands read it only when given neither --store
// nor --data, so a shell holding a server's environment does not redirect an explicit --data.
const envStore = "TOKENVAULT_STORE"

// storeConnectTimeout bounds connecting to PostgreSQL (and creating or checking its schema)
// when a command starts: an unreachable database fails the command rather than hanging it.
const storeConnectTimeout = 30 * time.Second

// storeFlags name a store: url (PostgreSQL) or data (bbolt).
type storeFlags struct {
	data, url   string
	noJournal   bool          // bbolt: store.Options.NoJournal (serve --store-journal=false)
	commitDelay time.Duration // bbolt: store.Options.CommitDelay (serve --commit-delay)
	keyFilter   bool          // bbolt: !store.Options.NoKeyFilter (serve --store-key-filter); off for the short-lived commands
}

// storeUsage is the help text of --store.
const storeUsage = "PostgreSQL store shared by replicas: postgres://USER@HOST:PORT/DB?sslmode=verify-full (TOKENVAULT_STORE); keep the password out of the URL: PGPASSWORD or ~/.pgpass"

func (f *storeFlags) register(fs *pflag.FlagSet, dataUsage string) {
	fs.StringVar(&f.data, "data", "", dataUsage)
	fs.StringVar(&f.url, "store", "", storeUsage)
}

// resolveOffline applies the offline commands' rules: exactly one of --store and --data, or
// (with useEnv) TOKENVAULT_STORE when neither is given; the URL must be a postgres:// one.
func (f *storeFlags) resolveOffline(useEnv bool) error {
	if f.url == "" && f.data == "" && useEnv {
		f.url = os.Getenv(envStore)
	}
	switch {
	case f.url == "" && f.data == "":
		return errors.New("name the store: --data DIR (bbolt) or --store postgres://… (PostgreSQL; or TOKENVAULT_STORE)")
	case f.url != "" && f.data != "":
		return errors.New("give --store or --data, not both: the store is either a PostgreSQL database or a bbolt data directory")
	}
	return checkStoreURL(f.url)
}

// checkStoreURL accepts an empty URL (none) or a postgres:// or postgresql:// URL.
func checkStoreURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("--store must be a postgres:// or postgresql:// URL, e.g. postgres://tokenvault@db.internal:5432/tokenvault?sslmode=verify-full")
	}
	return nil
}

// postgres reports whether the store is a PostgreSQL database.
func (f *storeFlags) postgres() bool { return f.url != "" }

// where names the store in messages, never with a password: "the database postgres://…" or
// "the store in DIR".
func (f *storeFlags) where() string {
	if f.postgres() {
		return "the database " + redactURL(f.url)
	}
	return "the store in " + f.data
}

// hint is the store's flag as a command line would give it, for messages naming a command to
// run (never with a password).
func (f *storeFlags) hint() string {
	if f.postgres() {
		return "--store '" + redactURL(f.url) + "'"
	}
	return "--data " + f.data
}

// open opens the store. A bbolt file is opened without waiting for its lock when offline (a
// held lock means a server runs; what names the command in that error); a PostgreSQL database
// has no such lock: replicas and offline commands share it.
func (f *storeFlags) open(ctx context.Context, offline bool, what string) (store.Store, error) {
	if f.postgres() {
		return openPostgres(ctx, f.url)
	}
	opts := store.Options{NoJournal: f.noJournal, CommitDelay: f.commitDelay, NoKeyFilter: !f.keyFilter}
	if offline {
		opts.Timeout = -1
	}
	st, err := store.Open(filepath.Join(f.data, store.FileName), opts)
	if errors.Is(err, store.ErrLocked) {
		msg := fmt.Sprintf("the data directory %s is in use by another tokenvault process", f.data)
		if offline {
			msg += fmt.Sprintf(": stop the server first (%s works offline only)", what)
		}
		return nil, &textError{msg: msg, err: err}
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// refuseLiveReplicas fails when a replica of the PostgreSQL store st is live: an offline
// command that rewrites what every replica reads (keys rewrap-kek) or must copy a still
// snapshot (migrate --from) would race it, and a database has no lock that would stop it.
// A replica stopped cleanly leaves no trace; one that was killed counts as live until its
// last heartbeat's promise runs out (a few heartbeat intervals), and the message says when.
func refuseLiveReplicas(ctx context.Context, st store.Store, what string) error {
	live, err := vault.LiveReplicas(ctx, st)
	if err != nil {
		return fmt.Errorf("reading the replicas' heartbeats: %w", err)
	}
	if len(live) == 0 {
		return nil
	}
	ids := make([]string, len(live))
	until := live[0].LiveUntil
	for i, r := range live {
		ids[i] = r.ID
		if r.LiveUntil.After(until) {
			until = r.LiveUntil
		}
	}
	return fmt.Errorf("%d replica(s) of this database are running (%s): stop every replica before %s (a replica that was killed counts as running until its last heartbeat expires, at %s)",
		len(live), strings.Join(ids, ", "), what, until.UTC().Format(time.RFC3339))
}

// openPostgres connects to the database at rawURL, creating or checking its schema. Its
// errors never hold the URL's password.
func openPostgres(ctx context.Context, rawURL string) (store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, storeConnectTimeout)
	defer cancel()
	st, err := pgstore.Open(ctx, rawURL, pgstore.Options{})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("no answer within %s: %w", storeConnectTimeout, err)
		}
		return nil, redactErr(fmt.Errorf("opening %s: %w", "the database "+redactURL(rawURL), err), rawURL)
	}
	return st, nil
}

// redactURL returns a store URL with its password, if any, replaced by xxxxx.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unparsable URL)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// storePassword returns the password a store URL holds (in its user information or its
// password parameter), or "".
func storePassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if p, ok := u.User.Password(); ok && p != "" {
		return p
	}
	return u.Query().Get("password")
}

// redactErr returns err with every occurrence of the store URL's password removed from its
// text; errors.Is and errors.As still see what it wraps.
func redactErr(err error, rawURL string) error {
	pw := storePassword(rawURL)
	if err == nil || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return &textError{msg: strings.ReplaceAll(err.Error(), pw, "xxxxx"), err: err}
}

// textError is err with a message of its own (errors.Is and errors.As still see err).
type textError struct {
	msg string
	err error
}

func (e *textError) Error() string { return e.msg }
func (e *textError) Unwrap() error { return e.err }
