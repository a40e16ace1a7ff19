package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"buf.build/go/protovalidate"
	pvinterceptor "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server/console"
	"github.com/tokenvault/tokenvault/vault"
)

// MaxMessageBytes bounds one gRPC message and one HTTP body: 10,000 items of up to 64 KiB do
// not fit, so very large values must come in smaller batches.
const MaxMessageBytes = 64 << 20

// Config assembles a Server.
type Config struct {
	// Vault serves the requests. Nil starts the server sealed: health answers NOT_SERVING and
	// every other call Unavailable until Unseal.
	Vault *vault.Vault
	// Alerts configures the monitored controls' alerts.
	Alerts AlertConfig
	// Background configures the vault's background work (rewrap, purge, automatic rotation),
	// run while the server runs.
	Background vault.BackgroundOptions
	// GRPCAddr, HTTPAddr and VendorAddr are the listen addresses (host:port; port 0 picks a
	// free one). Empty disables that listener, except GRPCAddr, which is required.
	GRPCAddr, HTTPAddr, VendorAddr string
	// MetricsAddr, when set, is a listener serving GET /metrics without credentials, for
	// Prometheus (over TLS when TLS is set). The internal HTTP listener's /metrics always
	// requires an admin or auditor credential.
	MetricsAddr string
	// Limits bound bodies, messages, timeouts and connections of every listener.
	Limits Limits
	// TLS, when set, serves the internal gRPC and HTTP listeners over TLS.
	TLS *tls.Config
	// ClientCAs, when set (with TLS), makes the internal gRPC and HTTP listeners verify the
	// client certificates callers present against these CAs (tls.VerifyClientCertIfGiven:
	// callers with a bearer secret or JWT need none; a certificate that does not verify fails
	// the handshake). A verified certificate's SANs identify a credential bound to one of
	// them (CredentialSpec.CertSAN), of any internal role.
	ClientCAs *x509.CertPool
	// JWT, when its Issuer is set, lets internal callers authenticate with a bearer JWT
	// whose subject is bound to a credential (CredentialSpec.JWTSubject).
	JWT JWTConfig
	// VendorTLS, when set, serves the vendor listener over TLS; set ClientAuth and ClientCAs
	// to require client certificates (mTLS). A verified certificate's SANs can identify a
	// vendor credential bound to one of them.
	VendorTLS *tls.Config
	// Version is the build's version, served as info.version of /openapi.json (empty: the
	// generated document's own, 0.0.0-dev).
	Version string
	// Dev enables gRPC reflection.
	Dev bool
	// Logger receives structured logs; nil discards.
	Logger *slog.Logger
	// ShutdownTimeout bounds the graceful stop; in-flight requests get this long to finish.
	ShutdownTimeout time.Duration
	// CheckpointInterval is how often the audit chain's head is signed (default 10s); it is
	// also signed at shutdown.
	CheckpointInterval time.Duration
	// AuditWitnessFile, when set, is a file every signed checkpoint is appended to (JSON
	// lines, 0600, synced): put it on another volume, append-only storage.
	AuditWitnessFile string
	// AuditWitnessURL, when set, receives every signed checkpoint as a JSON POST.
	AuditWitnessURL string
	// AuditWitnesses are further witnesses, by name (the metric's witness label).
	AuditWitnesses map[string]vault.Witness
	// StoreCheckInterval is how often the store's database is checked once the vault is
	// unsealed (default DefaultStoreCheckInterval): while it does not answer, health is
	// NOT_SERVING (/healthz 503).
	StoreCheckInterval time.Duration
	// UI configures the web console at /ui/ on the internal HTTP listener (on unless
	// UI.Disabled).
	UI UIConfig
}

// Server is tokenvault's gRPC and HTTP edge.
type Server struct {
	cfg     Config
	vault   atomic.Pointer[vault.Vault] // nil while sealed
	log     *slog.Logger
	auth    *authenticator
	iauth   *authenticator // the internal listeners' (HTTP checks before reading bodies)
	vauth   *authenticator // the vendor listener's
	limits  Limits         // cfg.Limits with defaults
	metrics *metrics
	grpc    *grpc.Server      // internal
	vgrpc   *grpc.Server      // vendor: reached only through the vendor HTTP listener
	vconn   *bufconn.Listener // vendor gateway → vendor gRPC, in memory
	iconn   *bufconn.Listener // internal gateway → internal gRPC, in memory
	iproc   *inprocConn       // internal gateway → internal gRPC's unary methods, in process
	vproc   *inprocConn       // vendor gateway → vendor gRPC's unary methods, in process
	health  *health.Server
	alerts  *alerter
	wit     *witnesses
	jwt     *jwtVerifier // nil without Config.JWT
	jwtErr  error        // the JWKS load at start failed (a URL: retried while running)
	itls    *tls.Config  // the internal gRPC and HTTP listeners' TLS (Config.TLS with ClientCAs)
	// console is the web console; nil when Config.UI.Disabled.
	console *console.Console

	storeDown atomic.Bool // the store's database did not answer the last check (watchStore)

	mu       sync.Mutex
	addrs    Addrs
	ready    chan struct{}
	unsealed chan struct{}
	sealOnce sync.Once
}

// vlt returns the vault, nil while sealed.
func (s *Server) vlt() *vault.Vault { return s.vault.Load() }

// Unseal hands a sealed server its vault: it starts serving data calls and reports SERVING.
// Unsealing an unsealed server does nothing.
func (s *Server) Unseal(v *vault.Vault) {
	s.sealOnce.Do(func() {
		if s.vault.CompareAndSwap(nil, v) {
			close(s.unsealed)
		}
	})
}

// Sealed reports whether the server is waiting for its vault.
func (s *Server) Sealed() bool { return s.vlt() == nil }

// Addrs are the addresses a running Server listens on.
type Addrs struct {
	GRPC, HTTP, Vendor, Metrics string
}

// New assembles a Server; it does not listen until Run.
func New(cfg Config) (*Server, error) {
	if cfg.GRPCAddr == "" {
		return nil, errors.New("server: Config.GRPCAddr is required")
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 10 * time.Second
	}
	if cfg.StoreCheckInterval <= 0 {
		cfg.StoreCheckInterval = DefaultStoreCheckInterval
	}
	s := &Server{cfg: cfg, log: cfg.Logger, limits: cfg.Limits.withDefaults(), metrics: newMetrics(), ready: make(chan struct{}), unsealed: make(chan struct{})}
	if cfg.Vault != nil {
		s.vault.Store(cfg.Vault)
		close(s.unsealed)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	validator, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("server: protovalidate: %w", err)
	}
	if err := cfg.JWT.validate(); err != nil {
		return nil, err
	}
	if cfg.ClientCAs != nil && cfg.TLS == nil {
		return nil, errors.New("server: Config.ClientCAs needs Config.TLS: client certificates are verified in the TLS handshake")
	}
	s.itls = internalTLS(cfg.TLS, cfg.ClientCAs)
	if cfg.JWT.Enabled() {
		s.jwt = newJWTVerifier(cfg.JWT, s.log)
		// A key set that cannot be read at start is a configuration error for a file; an
		// unreachable URL may be a passing outage, retried in the background.
		if s.jwtErr = s.jwt.refresh(context.Background()); s.jwtErr != nil && cfg.JWT.JWKSFile != "" {
			return nil, fmt.Errorf("server: JWKS file: %w", s.jwtErr)
		}
	}
	policy := Policy(cfg.Dev)
	newGRPC := func(l Listener, maxRecv int) (*grpc.Server, *authenticator, *inprocConn) {
		e := &edge{Server: s, auth: &authenticator{s: s, policy: policy, listener: l, log: s.log, console: ConsoleMethods()}}
		if l == Internal {
			e.auth.jwt = s.jwt
		}
		chain := chainUnary(e.unaryInterceptor, pvinterceptor.UnaryServerInterceptor(validator))
		opts := append(grpcLimits(s.limits),
			grpc.Creds(listenerTLSCreds{}), // peer.AuthInfo carries the listener's TLS state
			grpc.MaxRecvMsgSize(maxRecv),
			grpc.MaxSendMsgSize(MaxMessageBytes),
			grpc.InTapHandle(e.auth.tapHandle), // authenticate before the message is read
			// One unary chain, for gRPC calls and the gateway's in-process calls alike.
			grpc.UnaryInterceptor(chain),
			grpc.ChainStreamInterceptor(e.streamInterceptor, pvinterceptor.StreamServerInterceptor(validator)),
		)
		gs := grpc.NewServer(opts...)
		e.auth.unary = newInprocConn(gs, chain)
		return gs, e.auth, e.auth.unary
	}
	s.health = health.NewServer()
	s.alerts = newAlerter(cfg.Alerts, s)
	s.wit = newWitnesses(s, cfg)
	if cfg.AuditWitnessFile != "" {
		if err := (vault.FileWitness{Path: cfg.AuditWitnessFile}).Check(); err != nil {
			return nil, fmt.Errorf("server: audit witness file: %w", err)
		}
	}
	s.metrics.reg.MustRegister(newVaultCollector(s))
	if s.console, err = s.newConsole(); err != nil {
		return nil, err
	}

	// Services register through the in-process connections (inproc.go), which register them
	// on the gRPC servers.
	s.grpc, s.iauth, s.iproc = newGRPC(Internal, s.limits.GRPCMaxRecv)
	tvpb.RegisterTokenServiceServer(s.iproc, &tokenService{s: s})
	tvpb.RegisterTemplateServiceServer(s.iproc, &templateService{s: s})
	tvpb.RegisterCredentialServiceServer(s.iproc, &credentialService{s: s})
	tvpb.RegisterGrantServiceServer(s.iproc, &grantService{s: s})
	tvpb.RegisterAuditServiceServer(s.iproc, &auditService{s: s})
	tvpb.RegisterKeyServiceServer(s.iproc, &keyService{s: s})
	tvpb.RegisterRecordServiceServer(s.iproc, &recordService{s: s})
	tvpb.RegisterTextServiceServer(s.iproc, &textService{s: s})
	grpc_health_v1.RegisterHealthServer(s.grpc, s.health)

	// The vendor gRPC server is reached only through the vendor HTTP listener, whose body
	// limit bounds its messages (protobuf is smaller than the JSON it came from).
	s.vgrpc, s.vauth, s.vproc = newGRPC(Vendor, int(s.limits.VendorMaxBody))
	tvpb.RegisterVendorServiceServer(s.vproc, &vendorService{s: s})
	grpc_health_v1.RegisterHealthServer(s.vgrpc, s.health)
	s.vconn = bufconn.Listen(1 << 20)
	s.iconn = bufconn.Listen(1 << 20)
	if cfg.Dev {
		reflection.Register(s.grpc)
	}
	return s, nil
}

// GRPCServers exposes the internal and vendor gRPC servers so tests can walk their services.
func (s *Server) GRPCServers() map[Listener]*grpc.Server {
	return map[Listener]*grpc.Server{Internal: s.grpc, Vendor: s.vgrpc}
}

// ListenError is Run's error when a listener cannot bind its address (in use, not local,
// not permitted).
type ListenError struct {
	Listener string // gRPC, HTTP, vendor or metrics
	Addr     string
	Err      error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("server: %s listener: %v", e.Listener, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Ready is closed once every listener is bound; Addrs then returns the bound addresses.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (valid after Ready).
func (s *Server) Addrs() Addrs {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs
}

// Run listens and serves until ctx is done, then stops gracefully: listeners close, in-flight
// requests finish (up to ShutdownTimeout), and Run returns nil. A listener error ends Run with
// that error.
func (s *Server) Run(ctx context.Context) error {
	glis, err := net.Listen("tcp", s.cfg.GRPCAddr)
	if err != nil {
		return &ListenError{Listener: "gRPC", Addr: s.cfg.GRPCAddr, Err: err}
	}
	var hlis, vlis, mlis net.Listener
	closeAll := func() {
		for _, l := range []net.Listener{glis, hlis, vlis, mlis} {
			if l != nil {
				l.Close()
			}
		}
	}
	if s.cfg.HTTPAddr != "" {
		if hlis, err = net.Listen("tcp", s.cfg.HTTPAddr); err != nil {
			closeAll()
			return &ListenError{Listener: "HTTP", Addr: s.cfg.HTTPAddr, Err: err}
		}
	}
	if s.cfg.VendorAddr != "" {
		if vlis, err = net.Listen("tcp", s.cfg.VendorAddr); err != nil {
			closeAll()
			return &ListenError{Listener: "vendor", Addr: s.cfg.VendorAddr, Err: err}
		}
	}

	if s.cfg.MetricsAddr != "" {
		if mlis, err = net.Listen("tcp", s.cfg.MetricsAddr); err != nil {
			closeAll()
			return &ListenError{Listener: "metrics", Addr: s.cfg.MetricsAddr, Err: err}
		}
	}
	// Connection caps sit under TLS (the HTTP server must see the *tls.Conn); refusals are
	// written over TLS where the listener has it.
	maxc := s.limits.MaxConns
	glis = newCapListener(glis, maxc, nil, nil, s.log.With(slog.String("listener", "grpc")))
	if hlis != nil {
		hlis = newCapListener(hlis, maxc, refuseHTTP(maxc), s.itls, s.log.With(slog.String("listener", "internal")))
	}
	if vlis != nil {
		vlis = newCapListener(vlis, maxc, refuseHTTP(maxc), s.cfg.VendorTLS, s.log.With(slog.String("listener", "vendor")))
	}
	if mlis != nil {
		mlis = newCapListener(mlis, maxc, refuseHTTP(maxc), s.cfg.TLS, s.log.With(slog.String("listener", "metrics")))
	}
	if s.cfg.TLS != nil {
		// TLS is terminated on the listener, so the gRPC server can also serve the gateway's
		// in-memory connection in plain text.
		cfg := s.itls.Clone()
		cfg.NextProtos = []string{"h2"}
		glis = tls.NewListener(glis, cfg)
		if hlis != nil {
			hlis = tls.NewListener(hlis, httpTLS(s.itls))
		}
		if mlis != nil {
			mlis = tls.NewListener(mlis, httpTLS(s.cfg.TLS))
		}
	}
	if vlis != nil && s.cfg.VendorTLS != nil {
		vlis = tls.NewListener(vlis, httpTLS(s.cfg.VendorTLS))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 6)
	go func() { errc <- s.grpc.Serve(glis) }()
	go func() { errc <- s.grpc.Serve(s.iconn) }()
	go s.alerts.run(ctx)
	if s.jwt != nil {
		go s.jwt.run(ctx, s.jwtErr)
	}

	var servers []*http.Server
	addrs := Addrs{GRPC: glis.Addr().String()}
	if hlis != nil {
		h, closeGW, err := s.internalHTTP(ctx)
		if err != nil {
			closeAll()
			s.grpc.Stop()
			return err
		}
		defer closeGW()
		hs := s.httpServer(h, "internal")
		servers = append(servers, hs)
		addrs.HTTP = hlis.Addr().String()
		go func() { errc <- hs.Serve(hlis) }()
	}
	if vlis != nil {
		go func() { errc <- s.vgrpc.Serve(s.vconn) }()
		vh, closeVGW, err := s.vendorHTTP(ctx)
		if err != nil {
			closeAll()
			s.grpc.Stop()
			s.vgrpc.Stop()
			return err
		}
		defer closeVGW()
		vs := s.httpServer(vh, "vendor")
		servers = append(servers, vs)
		addrs.Vendor = vlis.Addr().String()
		go func() { errc <- vs.Serve(vlis) }()
	}
	if mlis != nil {
		ms := s.httpServer(s.metricsHTTP(), "metrics")
		servers = append(servers, ms)
		addrs.Metrics = mlis.Addr().String()
		go func() { errc <- ms.Serve(mlis) }()
	}
	s.mu.Lock()
	s.addrs = addrs
	s.mu.Unlock()
	if s.Sealed() {
		s.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
		s.log.Warn("sealed: the key-encryption key is not available; data calls answer Unavailable until it is")
	}
	close(s.ready)
	background := make(chan struct{}) // closed once RunBackground has returned (lease released)
	go func() {
		defer close(background)
		select {
		case <-s.unsealed:
			// The store's health watch first: a database that does not answer must turn
			// health NOT_SERVING however long the reads below wait (they are bounded too).
			s.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
			go s.watchStore(ctx, s.vlt())
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if seq, err := s.vlt().LastCheckpoint(cctx); err == nil {
				s.metrics.auditSeq.Set(float64(seq))
			}
			cancel()
			// The latest checkpoint may not have reached the witnesses before a crash.
			go s.wit.flush(ctx, s.vlt())
			s.vlt().RunBackground(ctx, s.cfg.Background)
		case <-ctx.Done():
		}
	}()
	s.log.Info("serving", slog.String("grpc", addrs.GRPC), slog.String("http", addrs.HTTP), slog.String("vendor", addrs.Vendor), slog.String("metrics", addrs.Metrics))

	var runErr error
	tick := time.NewTicker(s.cfg.CheckpointInterval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			// Checkpoints and witness deliveries run on the holder of the vault's background
			// lease (one replica of a cluster), fenced by it. A new holder's first flush
			// re-sends the latest checkpoint, which a crash may have kept from the witnesses.
			if v := s.vlt(); v != nil {
				if lctx, ok := v.Leased(ctx); ok {
					s.checkpoint(lctx)
					s.wit.flush(lctx, v)
				}
			}
		case err := <-errc:
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) {
				runErr = err
			}
			break loop
		}
	}
	s.health.Shutdown()
	s.log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer scancel()
	// HTTP first: its in-flight calls go through gRPC, which must still be serving them.
	for _, hs := range servers {
		_ = hs.Shutdown(sctx)
	}
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); s.vgrpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-sctx.Done():
		s.grpc.Stop()
		s.vgrpc.Stop()
	}
	cancel() // background work stops and releases its lease before the store is closed
	<-background
	s.checkpoint(context.Background())
	s.wit.flush(context.Background(), s.vlt())
	return runErr
}

// checkpoint signs the audit chain's head; a failure is logged (the chain itself is intact,
// only the latest events stay unsigned until the next checkpoint).
func (s *Server) checkpoint(ctx context.Context) {
	v := s.vlt()
	if v == nil {
		return
	}
	c, made, err := v.Checkpoint(ctx)
	switch {
	case err != nil:
		s.log.Error("audit checkpoint failed", slog.String("error", err.Error()))
	case made:
		s.metrics.auditSeq.Set(float64(c.Seq))
		s.log.Debug("audit checkpoint", slog.Uint64("seq", c.Seq))
	}
}

// httpErrorLog routes net/http's own messages (TLS handshake failures, …) into the structured
// log at warn level.
func (s *Server) httpErrorLog(listener string) *stdlog.Logger {
	return slog.NewLogLogger(s.log.With(slog.String("listener", listener)).Handler(), slog.LevelWarn)
}

// internalTLS is the internal listeners' TLS configuration: base, verifying client
// certificates against clientCAs when set (if given: bearer callers need none).
func internalTLS(base *tls.Config, clientCAs *x509.CertPool) *tls.Config {
	if base == nil || clientCAs == nil {
		return base
	}
	c := base.Clone()
	c.ClientCAs = clientCAs
	if c.ClientAuth < tls.VerifyClientCertIfGiven {
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}
