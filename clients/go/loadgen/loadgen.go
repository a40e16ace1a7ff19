// Package loadgen is tokenvault's load generator: closed-loop workers that tokenize or
// detokenize against a running server over gRPC or HTTP/JSON, and report throughput and
// exact request-latency percentiles. `tokenvault bench` is its command line.
//
// # Basics
//
//	res, err := loadgen.Run(ctx, loadgen.Config{Protocol: loadgen.ProtocolHTTP, HTTPAddr: "127.0.0.1:8080",
//		Token: secret, Op: loadgen.OpTokenize, Template: "pan", Batch: 100, Concurrency: 16,
//		Duration: 10 * time.Second, Unique: true})
//	res.WriteText(os.Stdout)
//
// Each of Concurrency workers sends one request, waits for the reply and sends the next.
// Requests sent during Warmup are not measured. After it, every request sent before the end
// of Duration (or the first Requests requests) is measured: its latency is recorded and the
// run's elapsed time stretches to its reply, so no in-flight work is cut off or lost.
//
// # Caveats
//
// The generator shares the machine with the server when both run on one host; it keeps its
// own cost low (hand-written JSON, requests prepared ahead where values repeat, replies
// scanned rather than decoded) but does not remove it.
//
// Tokenize runs store every value: point them at a scratch vault. Detokenize runs first
// tokenize Config.Pool fresh values (not measured) and then reveal random picks of them.
package loadgen

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	client "github.com/tokenvault/tokenvault/clients/go"
)

// Protocols and operations.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http"
	OpTokenize   = "tokenize"
	OpDetokenize = "detokenize"
)

// DefaultRequestTimeout bounds one request when Config.RequestTimeout is zero: a stuck server
// shows as errors, not as a hung run.
const DefaultRequestTimeout = time.Minute

// Config describes one run. Zero fields take the defaults noted.
type Config struct {
	Protocol string // ProtocolGRPC (default) or ProtocolHTTP
	Op       string // OpTokenize (default) or OpDetokenize

	GRPCAddr string // default 127.0.0.1:7070
	HTTPAddr string // default 127.0.0.1:8080
	Token    string // bearer secret; required
	// TLS, when set, connects over TLS (HTTPS for --protocol http).
	TLS *tls.Config

	Template string // default "pan"; a custom template is generated for by its base
	Domain   string // empty: the server's default domain
	Purpose  string // detokenize purpose; default "bench"

	Batch       int           // items per request; default 100
	Concurrency int           // workers, each with one request in flight; default 16
	Duration    time.Duration // measured time; default 10s (ignored when Requests > 0)
	Requests    int           // if > 0, measure exactly this many requests instead
	Warmup      time.Duration // unmeasured time before; 0 for none
	// Unique sends fresh random values in every tokenize request. Without it, a fixed set
	// of values is sent over and over (after the first round, deterministic templates only
	// look their tokens up).
	Unique bool
	Pool   int    // detokenize: tokens created before the run; default 100,000
	Conns  int    // gRPC connections shared by the workers; default 1
	Seed   uint64 // random values; 0 picks a random seed
	// RequestTimeout bounds each request (and each call of the pool setup); a request that
	// takes longer fails with a deadline error. 0: DefaultRequestTimeout; negative: no limit.
	RequestTimeout time.Duration

	// Progress, if set, receives one line at each phase (pool setup, warmup, measurement).
	Progress func(msg string)
	// PoolProgress, if set, is called as the detokenize pool fills, with the values tokenized
	// so far and the pool's size. Calls do not overlap; keep it quick.
	PoolProgress func(done, total int)
	// ServerCPU, if set, returns the server process's CPU time so far (user plus system). Run
	// reads it when the load starts (after the detokenize pool is filled) and when it ends,
	// and reports the difference per item the server accepted in between (warmup included):
	// Result.ServerCPU and ServerCPUPerItem. An error at either read leaves them zero.
	ServerCPU func() (time.Duration, error)
}

func (c *Config) fill() error {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Protocol, ProtocolGRPC)
	def(&c.Op, OpTokenize)
	def(&c.GRPCAddr, "127.0.0.1:7070")
	def(&c.HTTPAddr, "127.0.0.1:8080")
	def(&c.Template, "pan")
	def(&c.Purpose, "bench")
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Concurrency == 0 {
		c.Concurrency = 16
	}
	if c.Duration == 0 && c.Requests == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Pool == 0 {
		c.Pool = 100000
	}
	if c.Conns == 0 {
		c.Conns = 1
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Seed == 0 {
		c.Seed = rand.Uint64()
	}
	switch {
	case c.Protocol != ProtocolGRPC && c.Protocol != ProtocolHTTP:
		return fmt.Errorf("loadgen: protocol must be %s or %s", ProtocolGRPC, ProtocolHTTP)
	case c.Op != OpTokenize && c.Op != OpDetokenize:
		return fmt.Errorf("loadgen: op must be %s or %s", OpTokenize, OpDetokenize)
	case c.Token == "":
		return errors.New("loadgen: no credentials (Token)")
	case c.Batch < 1 || c.Batch > client.MaxBatch:
		return fmt.Errorf("loadgen: batch must be 1..%d", client.MaxBatch)
	case c.Concurrency < 1:
		return errors.New("loadgen: concurrency must be at least 1")
	case c.Duration < 0 || c.Warmup < 0 || c.Requests < 0:
		return errors.New("loadgen: duration, warmup and requests must not be negative")
	case c.Pool < 1:
		return errors.New("loadgen: pool must be at least 1")
	case c.Conns < 1:
		return errors.New("loadgen: conns must be at least 1")
	}
	return nil
}

// conn is one protocol's way of sending requests. It is safe for concurrent use.
type conn interface {
	// newRequest prepares a request carrying items: values for OpTokenize, tokens for
	// OpDetokenize. A prepared request may be sent any number of times, concurrently.
	newRequest(op string, items []string) any
	// do sends a prepared request. buf is the worker's scratch space. If tokens is not nil
	// (tokenize only), it receives the token of each successful item at its index.
	do(ctx context.Context, req any, buf *bytes.Buffer, tokens []string) (outcome, error)
	// templateBases maps every template name to its base.
	templateBases(ctx context.Context) (map[string]string, error)
	close()
}

// outcome is what one request did: ok and failed items, and the first item error.
type outcome struct {
	ok, failed int
	firstErr   string
}

// Run performs one run against a running server. On cancellation of ctx it stops early and
// returns what was measured so far together with ctx's error. Run returns an error, and no
// result, only when it cannot start: bad config, unknown template, failed pool setup.
// Failed requests and items during the run are counted in the result, not returned.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	var c conn
	if cfg.Protocol == ProtocolHTTP {
		c = newHTTPConn(&cfg)
	} else {
		g, err := newGRPCConn(&cfg)
		if err != nil {
			return nil, err
		}
		c = g
	}
	defer c.close()
	r := &runner{cfg: &cfg, conn: c}
	if err := r.prepare(ctx); err != nil {
		return nil, err
	}
	var cpu0 time.Duration
	cpuErr := errors.New("not measured")
	if cfg.ServerCPU != nil {
		cpu0, cpuErr = cfg.ServerCPU()
	}
	res := r.run(ctx)
	if cpuErr == nil {
		if cpu1, err := cfg.ServerCPU(); err == nil {
			res.setServerCPU(cpu1-cpu0, res.TotalItems-r.poolItems)
		}
	}
	return res, ctx.Err()
}

// requestContext bounds one request by c.RequestTimeout (none when negative).
func (c *Config) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.RequestTimeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.RequestTimeout)
}

type runner struct {
	cfg  *Config
	conn conn
	gen  valueGen
	// fixed holds the prepared requests that workers cycle through, unless every request
	// carries fresh values.
	fixed []any
	// poolItems counts the items tokenized to fill the detokenize pool.
	poolItems int64
}

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		r.cfg.Progress(fmt.Sprintf(format, args...))
	}
}

// prepare resolves the value generator and prepares the requests that can be made ahead.
func (r *runner) prepare(ctx context.Context) error {
	cfg := r.cfg
	base := cfg.Template
	if _, ok := generators[base]; !ok {
		bases, err := r.conn.templateBases(ctx)
		if err != nil {
			return fmt.Errorf("loadgen: listing templates: %w", err)
		}
		if base, ok = bases[cfg.Template]; !ok {
			return fmt.Errorf("loadgen: unknown template %q", cfg.Template)
		}
	}
	gen, ok := generators[base]
	if !ok {
		return fmt.Errorf("loadgen: no value generator for base %q", base)
	}
	r.gen = gen
	rnd := rand.New(rand.NewPCG(cfg.Seed, 0))
	switch {
	case cfg.Op == OpDetokenize:
		tokens, err := r.fillPool(ctx, rnd)
		if err != nil {
			return err
		}
		// Enough requests that together they pick about every token once; at least a few
		// per worker, at most a bounded amount of memory.
		n := min(4096, max(4*cfg.Concurrency, cfg.Pool/cfg.Batch))
		items := make([]string, cfg.Batch)
		for range n {
			for i := range items {
				items[i] = tokens[rnd.IntN(len(tokens))]
			}
			r.fixed = append(r.fixed, r.conn.newRequest(OpDetokenize, items))
		}
	case !cfg.Unique:
		// Fixed values: one distinct request per worker.
		vs := newValues(gen, cfg.Batch)
		for range cfg.Concurrency {
			r.fixed = append(r.fixed, r.conn.newRequest(OpTokenize, vs.next(rnd)))
		}
	}
	return nil
}

// fillPool tokenizes cfg.Pool fresh values and returns their tokens.
func (r *runner) fillPool(ctx context.Context, rnd *rand.Rand) ([]string, error) {
	cfg := r.cfg
	r.progress("tokenizing a pool of %d values for detokenize", cfg.Pool)
	tokens := make([]string, cfg.Pool)
	const chunk = 1000
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     int
	)
	workers := min(cfg.Concurrency, 8)
	for w := range workers {
		wrnd := rand.New(rand.NewPCG(rnd.Uint64(), uint64(w)))
		wg.Go(func() {
			vs := newValues(r.gen, chunk)
			var buf bytes.Buffer
			for {
				mu.Lock()
				start := next
				next += chunk
				stop := firstErr != nil
				mu.Unlock()
				if stop || start >= cfg.Pool {
					return
				}
				end := min(start+chunk, cfg.Pool)
				items := vs.next(wrnd)[:end-start]
				o, err := r.conn.do(ctx, r.conn.newRequest(OpTokenize, items), &buf, tokens[start:end])
				if err == nil && o.failed > 0 {
					err = fmt.Errorf("%d items failed; first: %s", o.failed, o.firstErr)
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				r.poolItems += int64(o.ok)
				if cfg.PoolProgress != nil {
					cfg.PoolProgress(int(r.poolItems), cfg.Pool)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("loadgen: filling the detokenize pool: %w", firstErr)
	}
	return tokens, nil
}

// values makes batches of fresh values, reusing its buffers.
type values struct {
	gen   valueGen
	buf   []byte
	ends  []int
	items []string
}

func newValues(gen valueGen, n int) *values {
	return &values{gen: gen, ends: make([]int, n), items: make([]string, n)}
}

// next fills the batch with fresh values. The slice is reused by the next call; the
// strings in it stay valid.
func (v *values) next(rnd *rand.Rand) []string {
	v.buf = v.buf[:0]
	for i := range v.items {
		v.buf = v.gen(v.buf, rnd)
		v.ends[i] = len(v.buf)
	}
	all := string(v.buf) // one allocation for the whole batch
	start := 0
	for i, end := range v.ends {
		v.items[i] = all[start:end]
		start = end
	}
	return v.items
}

// workerStats is what one worker measured.
type workerStats struct {
	lat            []time.Duration // one per measured successful request
	items          int64           // ok items in measured requests
	failedRequests int64           // all phases
	failedItems    int64           // all phases
	totalItems     int64           // ok items, warmup included
	lastDone       time.Time       // reply to the last measured request
	firstErr       string
	firstErrAt     time.Time
}

func (r *runner) run(ctx context.Context) *Result {
	cfg := r.cfg
	if cfg.Warmup > 0 {
		r.progress("warming up for %v", cfg.Warmup)
	}
	launch := time.Now()
	start := launch.Add(cfg.Warmup)
	end := start.Add(cfg.Duration)
	limit := newLimiter(cfg.Requests)
	stats := make([]workerStats, cfg.Concurrency)
	perWorker := 1 << 12
	if cfg.Requests > 0 {
		perWorker = cfg.Requests/cfg.Concurrency + 1
	}
	var (
		wg       sync.WaitGroup
		announce sync.Once
	)
	for w := range cfg.Concurrency {
		st := &stats[w]
		st.lat = make([]time.Duration, 0, perWorker)
		wrnd := rand.New(rand.NewPCG(cfg.Seed, uint64(w)+1))
		wg.Go(func() {
			var (
				buf bytes.Buffer
				vs  *values
			)
			if r.fixed == nil {
				vs = newValues(r.gen, cfg.Batch)
			}
			for i := w; ctx.Err() == nil; i += cfg.Concurrency {
				var req any
				if vs != nil {
					req = r.conn.newRequest(OpTokenize, vs.next(wrnd))
				} else {
					req = r.fixed[i%len(r.fixed)]
				}
				t0 := time.Now()
				measured := !t0.Before(start)
				if measured {
					if cfg.Requests == 0 && !t0.Before(end) || cfg.Requests > 0 && !limit.take() {
						return
					}
					announce.Do(func() { r.progress("measuring") })
				}
				o, err := r.conn.do(ctx, req, &buf, nil)
				t1 := time.Now()
				switch {
				case err != nil:
					if ctx.Err() != nil {
						return // canceled: not the server's failure
					}
					st.failedRequests++
					st.fail(err.Error(), t1)
					continue
				case o.failed > 0:
					st.failedItems += int64(o.failed)
					st.fail(o.firstErr, t1)
				}
				st.totalItems += int64(o.ok)
				if measured {
					st.lat = append(st.lat, t1.Sub(t0))
					st.items += int64(o.ok)
					st.lastDone = t1
				}
			}
		})
	}
	wg.Wait()
	return r.result(start, stats)
}

func (st *workerStats) fail(msg string, at time.Time) {
	if st.firstErr == "" {
		st.firstErr, st.firstErrAt = msg, at
	}
}

// limiter hands out a fixed number of request slots.
type limiter struct {
	mu   sync.Mutex
	left int
}

func newLimiter(n int) *limiter { return &limiter{left: n} }

func (l *limiter) take() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.left <= 0 {
		return false
	}
	l.left--
	return true
}

func (r *runner) result(start time.Time, stats []workerStats) *Result {
	cfg := r.cfg
	res := &Result{
		Protocol: cfg.Protocol, Op: cfg.Op, Template: cfg.Template, Domain: cfg.Domain,
		Batch: cfg.Batch, Concurrency: cfg.Concurrency, Warmup: cfg.Warmup, TotalItems: r.poolItems,
	}
	if cfg.Op == OpTokenize {
		res.Unique = &cfg.Unique
	} else {
		res.Pool = cfg.Pool
	}
	var all []time.Duration
	var last time.Time
	var firstAt time.Time
	for i := range stats {
		st := &stats[i]
		all = append(all, st.lat...)
		res.Items += st.items
		res.FailedRequests += st.failedRequests
		res.FailedItems += st.failedItems
		res.TotalItems += st.totalItems
		if st.lastDone.After(last) {
			last = st.lastDone
		}
		if st.firstErr != "" && (res.FirstError == "" || st.firstErrAt.Before(firstAt)) {
			res.FirstError, firstAt = st.firstErr, st.firstErrAt
		}
	}
	res.Requests = int64(len(all))
	if res.Requests > 0 {
		res.Elapsed = last.Sub(start)
	}
	if s := res.Elapsed.Seconds(); s > 0 {
		res.RequestsPerSec = float64(res.Requests) / s
		res.ItemsPerSec = float64(res.Items) / s
	}
	res.Latency = Summarize(all)
	return res
}
