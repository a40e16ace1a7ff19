package pgstore

import (
	"context"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// roundTrips counts the exchanges with the server that a call waits for: each statement
// (BEGIN and COMMIT included), each pipelined batch of statements (one however many it
// holds), each explicit prepare that reached the server, and each liveness ping of a pooled
// connection. It is a pgx tracer, so it counts what pgx sends, not what this package meant to.
// Not counted: connection setup, and the implicit prepare of a batch's statements on a
// connection's first use of them (statements are cached per connection).
type roundTrips struct{ n atomic.Uint64 }

var (
	_ pgx.QueryTracer   = (*roundTrips)(nil)
	_ pgx.BatchTracer   = (*roundTrips)(nil)
	_ pgx.PrepareTracer = (*roundTrips)(nil)
)

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	return ctx
}

func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *roundTrips) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	return ctx
}

func (r *roundTrips) TracePrepareEnd(_ context.Context, _ *pgx.Conn, d pgx.TracePrepareEndData) {
	if !d.AlreadyPrepared {
		r.n.Add(1)
	}
}

// install makes cfg's connections report to r, and counts pgxpool's liveness pings (sent,
// as pgxpool does by default, when a connection was idle for more than a second).
func (r *roundTrips) install(cfg *pgxpool.Config) {
	cfg.ConnConfig.Tracer = r
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool {
		if p.IdleDuration > pingAfterIdle {
			r.n.Add(1)
			return true
		}
		return false
	}
}

// RoundTrips returns how many round trips to the database this store has made since Open
// (statements, batches, prepares and pings; see the package documentation). Tests and
// benchmarks read it before and after a call to count what the call cost.
func (p *Postgres) RoundTrips() uint64 { return p.trips.n.Load() }
