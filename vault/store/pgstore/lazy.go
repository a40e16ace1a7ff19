package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The BEGIN statements of the three kinds of transaction (see View and Update).
const (
	beginSerializable = "begin isolation level serializable read write"
	beginRepeatable   = "begin isolation level repeatable read read write"
	beginSnapshot     = "begin isolation level repeatable read read only"
)

// lazyTx is a transaction whose BEGIN travels with its first statement: the connection is
// taken from the pool when the first statement is sent, and BEGIN is queued in front of that
// statement in one pipelined batch, so that starting a transaction costs no round trip of
// its own. PostgreSQL takes a REPEATABLE READ or SERIALIZABLE snapshot at the first
// statement after BEGIN, not at BEGIN, so the transaction sees exactly what it saw when
// BEGIN went alone. A transaction that sends nothing (a function that only read its own
// pending writes, or none) costs nothing: its COMMIT and ROLLBACK send nothing either.
//
// When that first exchange fails because the connection was broken (a pooled connection
// that a database restart or pg_terminate_backend closed: a network error, or the server's
// 57P01 "terminating connection"), nothing of the transaction ran: the idle connections are
// reset and the exchange is sent once more on a new one.
type lazyTx struct {
	p      *Postgres
	begin  string
	conn   *pgxpool.Conn // nil until the first statement
	begun  bool          // BEGIN was answered
	closed bool
}

// first sends BEGIN followed by the queries of b in one batch, and returns the results of
// b's queries (BEGIN's is read). The caller reads them and closes the results.
func (l *lazyTx) first(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	for try := 0; ; try++ {
		if l.conn == nil {
			c, err := l.p.pool.Acquire(ctx)
			if err != nil {
				return nil, err
			}
			l.conn = c
		}
		// Queued afresh on every try: pgx records in a queued query the statement description
		// of the connection it was sent on, which a new connection may not have prepared.
		nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 1+len(b.QueuedQueries))}
		nb.Queue(l.begin)
		for _, q := range b.QueuedQueries {
			nb.Queue(q.SQL, q.Arguments...)
		}
		br := l.conn.SendBatch(ctx, nb)
		_, err := br.Exec()
		if err == nil {
			l.begun = true
			return br, nil
		}
		_ = br.Close()
		if try > 0 || ctx.Err() != nil || isServerError(err) && !unreachable(err) {
			return nil, err
		}
		// A broken connection: drop it (Release destroys a closed or busy one) and the
		// pool's other idle ones, and send the batch once more.
		_ = l.conn.Conn().Close(ctx)
		l.conn.Release()
		l.conn = nil
		l.p.pool.Reset()
	}
}

// firstOne is first for a batch of one statement.
func (l *lazyTx) firstOne(ctx context.Context, sql string, args []any) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	return l.first(ctx, b)
}

// QueryRow runs a query that returns at most one row, as pgx.Tx.QueryRow.
func (l *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if l.begun {
		return l.conn.QueryRow(ctx, sql, args...)
	}
	br, err := l.firstOne(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return batchRow{row: br.QueryRow(), br: br}
}

// Query runs a query, as pgx.Tx.Query.
func (l *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if l.begun {
		return l.conn.Query(ctx, sql, args...)
	}
	br, err := l.firstOne(ctx, sql, args)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// Exec runs a statement, as pgx.Tx.Exec.
func (l *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if l.begun {
		return l.conn.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	return pgconn.CommandTag{}, l.SendBatch(ctx, b)
}

// SendBatch sends the statements of b in one round trip and waits for all their results;
// the first error is returned.
func (l *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) error {
	if l.begun {
		return l.conn.SendBatch(ctx, b).Close()
	}
	br, err := l.first(ctx, b)
	if err != nil {
		return err
	}
	return br.Close()
}

// Commit sends COMMIT, as pgx.Tx.Commit does (pgx.ErrTxCommitRollback when the server
// answered ROLLBACK), and returns the connection to the pool. A transaction that sent nothing
// has nothing to commit.
func (l *lazyTx) Commit(ctx context.Context) error {
	if l.closed {
		return pgx.ErrTxClosed
	}
	if !l.end() {
		return nil
	}
	defer l.release()
	tag, err := l.conn.Exec(ctx, "commit")
	if err != nil {
		if l.conn.Conn().PgConn().TxStatus() != 'I' {
			_ = l.conn.Conn().Close(ctx)
		}
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// CommitWith sends writes (a batch of statements) and COMMIT, in one round trip when the
// transaction has begun (else the writes go with BEGIN, as any first statement, and COMMIT
// alone: a first exchange is resent on a broken connection, which one holding COMMIT could
// not be). writeErr is the error of a write that the server refused: it then skipped the rest,
// COMMIT included, so the transaction did not commit and is still open (to be rolled back).
// commitErr is COMMIT's error, as Commit's, or the failure of the exchange: the outcome is
// then unknown (unless nothing was sent: pgconn.SafeToRetry), as for a lost COMMIT.
func (l *lazyTx) CommitWith(ctx context.Context, writes *pgx.Batch) (writeErr, commitErr error) {
	if writes == nil || len(writes.QueuedQueries) == 0 {
		return nil, l.Commit(ctx)
	}
	if !l.begun {
		if err := l.SendBatch(ctx, writes); err != nil {
			return err, nil
		}
		return nil, l.Commit(ctx)
	}
	if l.closed {
		return nil, pgx.ErrTxClosed
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(writes.QueuedQueries)+1)}
	b.QueuedQueries = append(b.QueuedQueries, writes.QueuedQueries...)
	b.Queue("commit")
	br := l.conn.SendBatch(ctx, b)
	for range writes.QueuedQueries {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			if isServerError(err) && !unreachable(err) {
				return err, nil // refused: COMMIT was skipped; the caller rolls back
			}
			l.closed = true
			_ = l.conn.Conn().Close(ctx)
			l.release()
			return nil, err
		}
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	l.closed = true
	defer l.release()
	if err != nil {
		if l.conn.Conn().PgConn().TxStatus() != 'I' {
			_ = l.conn.Conn().Close(ctx)
		}
		return nil, err
	}
	if tag.String() == "ROLLBACK" {
		return nil, pgx.ErrTxCommitRollback
	}
	return nil, nil
}

// Rollback sends ROLLBACK if the transaction began, and returns the connection to the pool
// (closing it if the rollback failed). It does nothing after Commit or Rollback.
func (l *lazyTx) Rollback(ctx context.Context) error {
	if l.closed || !l.end() {
		return nil
	}
	defer l.release()
	if _, err := l.conn.Exec(ctx, "rollback"); err != nil {
		_ = l.conn.Conn().Close(ctx)
		return err
	}
	return nil
}

// end closes the transaction for Commit and Rollback. It reports whether the transaction
// began, so that COMMIT or ROLLBACK is to be sent (the caller then releases the connection);
// if not, the connection, if any, is released already.
func (l *lazyTx) end() bool {
	l.closed = true
	if l.conn != nil && !l.begun {
		l.release()
	}
	return l.conn != nil
}

func (l *lazyTx) release() {
	l.conn.Release()
	l.conn = nil
}

// errRow is the pgx.Row of a query that could not be sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the pgx.Row of the first batch's query: Scan also reads the batch to its end.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil || errors.Is(err, pgx.ErrNoRows) && cerr != nil {
		err = cerr
	}
	return err
}

// batchRows are the pgx.Rows of the first batch's query: Close also closes the batch.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		_ = r.br.Close()
	}
}
