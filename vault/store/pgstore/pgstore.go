package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Defaults used by Open for zero Options fields.
const (
	DefaultMaxConns    = 16
	DefaultMaxAttempts = 100
)

// rollbackTimeout bounds a ROLLBACK (and the schema migration's statements
// are bounded by the caller's context): a rollback on a dead connection
// must not hold a call past its deadline for long.
const rollbackTimeout = 5 * time.Second

// pingAfterIdle is how long a pooled connection may have been idle before it is pinged on
// acquiring it (pgxpool's default).
const pingAfterIdle = time.Second

// Options configure Open. The zero value is ready to use.
type Options struct {
	// MaxConns is the size of the connection pool: the number of View and
	// Update calls that run at once; others wait for a connection. Zero
	// means DefaultMaxConns.
	MaxConns int32

	// MaxAttempts bounds how many times an Update function is run when its
	// transaction fails with a serialization failure, a deadlock or a
	// unique violation (which PostgreSQL reports for conflicting concurrent
	// transactions). Zero means DefaultMaxAttempts. Retries back off with
	// jitter, and stop when the call's context ends.
	MaxAttempts int
}

// Postgres is a store.Store on a PostgreSQL database. Any number of
// Postgres values, in any number of processes, may use one database at once.
type Postgres struct {
	pool        *pgxpool.Pool
	maxAttempts int
	trips       roundTrips // counted by a pgx tracer: RoundTrips

	mu       sync.RWMutex
	closed   bool           // under mu
	inflight sync.WaitGroup // View and Update calls running; Add under mu.RLock

	closeOnce sync.Once
}

var (
	_ store.Store  = (*Postgres)(nil)
	_ store.Pinger = (*Postgres)(nil)
)

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string, as libpq and pgx accept), creates or checks
// the schema, and returns the store. It fails if the database cannot be
// reached before ctx ends, or if its schema is newer than this binary's.
func Open(ctx context.Context, url string, opts Options) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	cfg.MaxConns = opts.MaxConns
	p := &Postgres{maxAttempts: opts.MaxAttempts}
	p.trips.install(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: postgres: %w", err)
	}
	p.pool = pool
	if err := p.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

// enter registers a View or Update call; it returns false after Close.
func (p *Postgres) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// Close implements store.Store: later calls return store.ErrClosed; running
// calls finish (and commit) before the connections are closed.
func (p *Postgres) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.inflight.Wait()
		p.pool.Close()
	})
	return nil
}

// Ping checks that the database answers, for health checks (store.Pinger):
// an error wraps store.ErrUnavailable when the database cannot be reached,
// or the context's error when it ended first. After Close it returns
// store.ErrClosed.
func (p *Postgres) Ping(ctx context.Context) error {
	if !p.enter() {
		return store.ErrClosed
	}
	defer p.inflight.Done()
	if err := p.pool.Ping(ctx); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("store: postgres: ping: %w", cerr)
		}
		return fmt.Errorf("store: postgres: ping: %w", sanitize(err))
	}
	return nil
}

// begin returns a transaction that sends BEGIN (beginSQL) with its first statement (see
// lazyTx): no round trip, no connection taken yet.
func (p *Postgres) begin(beginSQL string) *lazyTx {
	return &lazyTx{p: p, begin: beginSQL}
}

func rollback(tx *lazyTx) {
	ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(ctx) // on failure the connection is closed
}

// View implements store.Store.View with a REPEATABLE READ, READ ONLY
// transaction: every read of fn sees the snapshot taken at its first read.
// A database error during a read (Get has no error result) makes View
// return that error, whatever fn returned.
func (p *Postgres) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.enter() {
		return store.ErrClosed
	}
	defer p.inflight.Done()
	ptx := p.begin(beginSnapshot)
	defer rollback(ptx)
	t := &pgTx{ctx: ctx, tx: ptx}
	defer t.finish()
	err := fn(t)
	if t.err != nil {
		return t.err
	}
	return err
}

// Update implements store.Store.Update with a SERIALIZABLE transaction per
// call, re-run (fn included) when PostgreSQL reports a serialization
// failure, a deadlock or a unique violation, up to Options.MaxAttempts
// times. Unlike Bolt, ctx bounds the whole call, commit included: if it ends
// while COMMIT is in flight, or the connection is lost then, the error wraps
// store.ErrCommitUnknown.
func (p *Postgres) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !p.enter() {
		return store.ErrClosed
	}
	defer p.inflight.Done()
	for attempt := 1; ; attempt++ {
		err, retry := p.attempt(ctx, fn)
		if !retry {
			return err
		}
		if attempt >= p.maxAttempts {
			return fmt.Errorf("store: postgres: gave up after %d attempts: %w", attempt, err)
		}
		d := time.Duration(1+rand.N(1<<min(attempt, 6))) * time.Millisecond / 2 // 0.5ms to 32ms
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (after %d attempts, the last: %w)", ctx.Err(), attempt, err)
		case <-timer.C:
		}
	}
}

// attempt runs fn in one transaction and commits it. retry reports that the
// transaction did not commit and fn may be run again.
func (p *Postgres) attempt(ctx context.Context, fn func(store.Tx) error) (err error, retry bool) {
	begin := beginSerializable
	if store.SnapshotIsolation(ctx) {
		begin = beginRepeatable
	}
	ptx := p.begin(begin)
	ended := false
	defer func() {
		if !ended {
			rollback(ptx)
		}
	}()
	t := &pgTx{ctx: ctx, tx: ptx, writable: true}
	ferr := call(t, fn)
	if t.err != nil {
		// A database error (Get and Scan callbacks may have hidden it from
		// fn) decides: fn's view of the data may have been wrong.
		return t.err, retryable(t.err)
	}
	if ferr != nil {
		return ferr, false
	}
	// The writes and COMMIT go in one round trip (CommitWith).
	var writes *pgx.Batch
	if len(t.pending) > 0 {
		writes = t.writeBatch()
	}
	werr, cerr := ptx.CommitWith(ctx, writes)
	if werr != nil { // refused by the server, COMMIT skipped: not committed
		err := t.fail(werr)
		return err, retryable(err)
	}
	ended = true // COMMIT ends the transaction whatever its outcome
	if cerr != nil {
		return commitError(cerr)
	}
	return nil, false
}

// call runs fn, turning a panic into an error wrapping store.ErrPanic.
func call(t *pgTx, fn func(store.Tx) error) (err error) {
	defer func() {
		t.finish()
		if v := recover(); v != nil {
			err = store.NewPanicError(v, debug.Stack())
		}
	}()
	return fn(t)
}

// commitError classifies a failed COMMIT. The outcome is known only when the
// server answered that it rolled the transaction back (a transaction
// rollback class error, or a deferred constraint) or when COMMIT was never
// sent; otherwise (connection lost, context ended, server shut down while
// COMMIT was in flight) the transaction may have committed.
func commitError(err error) (error, bool) {
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrTxCommitRollback):
		return fmt.Errorf("store: postgres: commit: %w", err), false
	case errors.As(err, &pe) && (pe.Code[:2] == "40" || pe.Code[:2] == "23"):
		err = fmt.Errorf("store: postgres: commit: %w", sanitize(err))
		return err, retryable(err)
	case pgconn.SafeToRetry(err):
		return fmt.Errorf("store: postgres: commit not sent: %w", sanitize(err)), true
	}
	return fmt.Errorf("%w: postgres: %w", store.ErrCommitUnknown, sanitize(err)), false
}

// retryable reports whether err means the transaction was rolled back by a
// conflict with a concurrent one, so that running it again may succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505": // serialization_failure, deadlock_detected, unique_violation
		return true
	case "42P07": // duplicate_table: two transactions created a bucket's sequence at once
		// (ensureSequence checks, then creates); the re-run finds the sequence.
		return true
	}
	return false
}

// isServerError reports whether err is an error answered by the server
// (rather than a failure to reach it).
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe)
}

// sanitize drops the parts of a server error that may quote data (Detail,
// Where, ...: a unique violation's detail holds the key), keeping severity,
// SQLSTATE and message, and marks a failure to reach the database with
// store.ErrUnavailable (see unreachable). Other errors are returned as they
// are.
func sanitize(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		clean := &pgconn.PgError{Severity: pe.Severity, Code: pe.Code, Message: pe.Message}
		if unreachable(err) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, clean)
		}
		return clean
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// unreachable reports whether err means the database could not be reached
// or the connection to it was lost (rather than a statement failing, or the
// caller's context ending): a failed connection attempt (refused, or
// refused by the server: authentication, no slot), a connection exception
// (SQLSTATE class 08), a server shutting down or starting up (57P01-57P03),
// too many connections (53300), or a broken network connection.
func unreachable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", pe.Code == "53300":
			return true
		}
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || pgconn.SafeToRetry(err)
}

var _ store.KeyReader = (*Postgres)(nil)

// ReadKey implements store.KeyReader: one SELECT, without BEGIN or ROLLBACK.
func (p *Postgres) ReadKey(ctx context.Context, b store.Bucket, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !p.enter() {
		return nil, store.ErrClosed
	}
	defer p.inflight.Done()
	if store.ValidateKey(key) != nil || b.Validate() != nil {
		return nil, nil
	}
	const q = `SELECT value FROM tokenvault_kv WHERE bucket = $1 AND key = $2`
	var v []byte
	err := p.pool.QueryRow(ctx, q, string(b), key).Scan(&v)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) && ctx.Err() == nil && (!isServerError(err) || unreachable(err)) {
		// A pooled connection that a database restart broke: as lazyTx.first, once more on a
		// new one (a read has no effect to repeat).
		p.pool.Reset()
		err = p.pool.QueryRow(ctx, q, string(b), key).Scan(&v)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil
	case err != nil:
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("store: postgres: %w", cerr)
		}
		return nil, fmt.Errorf("store: postgres: %w", sanitize(err))
	case v == nil:
		return []byte{}, nil
	}
	return v, nil
}
