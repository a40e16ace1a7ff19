package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/crypto/kek"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/server/console"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

type serveOpts struct {
	dev                            bool
	data                           string
	storeURL, replicaID            string
	grpcAddr, httpAddr, vendorAddr string
	devRootToken                   string
	kekFile, kekURI                string
	logLevel, erasureLog           string
	rotateAfter, auditRetention    time.Duration
	rotateAfterRecords             uint64
	alertWebhook, alertSecret      string
	alertVendorRate, alertGrant    int
	alertDenials                   int
	tlsCert, tlsKey                string
	vendorCert, vendorKey          string
	vendorClientCA                 string
	clientCA                       string
	jwtIssuer, jwtAudience         string
	jwtJWKSFile, jwtJWKSURL        string
	jwtJWKSCA                      string
	metricsAddr                    string
	auditWitnessFile               string
	auditWitnessURL                string
	storeJournal                   bool
	storeKeyFilter                 bool
	commitDelay                    time.Duration
	httpMaxBody, vendorMaxBody     int64
	grpcMaxRecv, maxConns          int
	readHeaderTimeout, readTimeout time.Duration
	writeTimeout, idleTimeout      time.Duration
	requestTimeout                 time.Duration

	// the web console
	ui                              bool
	uiIdleTimeout, uiSessionTimeout time.Duration
}

func newServeCmd() *cobra.Command {
	var o serveOpts
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the vault server",
		Long: `Run the vault server.

With --dev it is a try-it vault: plain text on loopback, a local KEK generated inside the data
directory, and a root token printed at start. Without --data it keeps its state in a fresh
temporary directory that is removed on exit.

Without --dev it serves an initialised store only and never prints a secret: initialise the
store once with "tokenvault init --data DIR --kek-file FILE", which prints the root token.

With --store postgres://… (TOKENVAULT_STORE) the store is a PostgreSQL database that any
number of replicas serve at once, each with the same KEK and its own --replica-id (default:
the host name); initialise it once with "tokenvault init --store URL --kek-file FILE". --data
is then optional and holds only local files (the default erasure log, DATA/erasure.log).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if o.dev {
				if err := stopWithLauncher(); err != nil {
					return fmt.Errorf("dev mode: %w", err)
				}
			}
			return runServe(ctx, o, cmd)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dev, "dev", false, "try-it mode: plain text on loopback, generated local KEK, root token printed")
	f.StringVar(&o.data, "data", "", "directory for the bbolt file and local key material (with --store: local files only, such as the default erasure log)")
	f.StringVar(&o.storeURL, "store", "", storeUsage)
	f.StringVar(&o.replicaID, "replica-id", "", "with --store: this replica's name among those serving the database, unique per replica (default: the host name, which is the pod name in Kubernetes)")
	f.StringVar(&o.grpcAddr, "grpc-addr", "127.0.0.1:7070", "internal gRPC listener")
	f.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:8080", "internal HTTP/JSON gateway")
	f.StringVar(&o.vendorAddr, "vendor-addr", "127.0.0.1:8443", "vendor listener (vendor detokenize and health only)")
	f.StringVar(&o.devRootToken, "dev-root-token", "", "with --dev: use this root token instead of a random one")
	f.StringVar(&o.kekFile, "kek-file", "", "local Tink keyset file that wraps the vault's keys (made by tokenvault init; with --dev created 0600 if missing, default DATA/kek.json)")
	f.StringVar(&o.kekURI, "kek-uri", "", "KMS key as the KEK: aws-kms://…, gcp-kms://…, hcvault://…")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&o.erasureLog, "erasure-log", "", "file where subject erasures and deleted tokens are logged and re-applied after a restore; keep it with the KEK, outside backups (default DATA/erasure.log)")
	f.StringVar(&o.alertWebhook, "alert-webhook-url", "", "POST each alert as signed JSON to this URL")
	f.StringVar(&o.alertSecret, "alert-webhook-secret", "", "HMAC secret for alert webhooks (prefer TOKENVAULT_ALERT_WEBHOOK_SECRET)")
	f.IntVar(&o.alertVendorRate, "alert-vendor-rate", 0, "alert when one vendor reveals more than N items a minute (0: off)")
	f.IntVar(&o.alertGrant, "alert-grant-rate", 0, "alert when one grant reveals more than N items a minute (0: off)")
	f.IntVar(&o.alertDenials, "alert-denials", 20, "alert when one caller is denied more than N times a minute (0: off)")
	f.StringVar(&o.auditWitnessFile, "audit-witness-file", "", "append every signed audit checkpoint to this file (JSON lines, 0600): put it on another volume, append-only storage; audit verify --witness reads it")
	f.BoolVar(&o.storeJournal, "store-journal", true, "acknowledge writes once durable in an append-only journal next to the bbolt file, merged into it in the background; false writes every commit into the B-tree (slower; for comparison)")
	f.BoolVar(&o.storeKeyFilter, "store-key-filter", true, "bbolt with the journal: keep a Bloom filter of the B-tree's keys in memory (about 2 bytes per key, built in the background at start), so that reads of absent keys, such as every new value tokenized, skip the B-tree; false saves the memory")
	f.DurationVar(&o.commitDelay, "commit-delay", 0, "bbolt with the journal: when many callers write at once, wait up to this long for their next writes to gather into one fsync (less CPU per write, up to this much more latency; e.g. 1ms); 0 commits each group at once; at most 100ms")
	f.StringVar(&o.auditWitnessURL, "audit-witness-url", "", "POST every signed audit checkpoint as JSON to this URL (a log service or WORM store that keeps them); 2xx = kept")
	f.DurationVar(&o.auditRetention, "audit-retention", 0, "prune audit events older than this once an export has delivered them, e.g. 8760h (0: keep all)")
	f.Uint64Var(&o.rotateAfterRecords, "rotate-after-records", 0, "rotate the data key automatically once it encrypts this many records, e.g. 100000000 (0: never)")
	f.DurationVar(&o.rotateAfter, "rotate-after", 0, "rotate the data key automatically once it is this old, e.g. 2160h (0: never)")
	f.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate for the internal gRPC and HTTP listeners")
	f.StringVar(&o.tlsKey, "tls-key", "", "PEM private key for --tls-cert")
	f.StringVar(&o.vendorCert, "vendor-tls-cert", "", "PEM certificate for the vendor listener (TLS 1.3)")
	f.StringVar(&o.vendorKey, "vendor-tls-key", "", "PEM private key for --vendor-tls-cert")
	f.StringVar(&o.vendorClientCA, "vendor-client-ca", "", "PEM CA bundle: the vendor listener then requires client certificates it signed (mTLS)")
	f.StringVar(&o.clientCA, "client-ca", "", "PEM CA bundle: the internal gRPC and HTTP listeners (TLS required) then verify client certificates it signed, if given; a credential bound to a certificate SAN (credential create --cert-san) authenticates by certificate alone")
	f.StringVar(&o.jwtIssuer, "jwt-issuer", "", "accept bearer JWTs (OIDC workload identity) from this issuer on the internal listeners: the exact \"iss\" (with --jwt-audience and --jwt-jwks-file or --jwt-jwks-url)")
	f.StringVar(&o.jwtAudience, "jwt-audience", "", "the audience bearer JWTs must carry in \"aud\", e.g. tokenvault")
	f.StringVar(&o.jwtJWKSFile, "jwt-jwks-file", "", "the issuer's public keys: a JWKS file, re-read every 5m and on an unknown key id")
	f.StringVar(&o.jwtJWKSURL, "jwt-jwks-url", "", "the issuer's public keys: a JWKS URL, fetched every 5m and on an unknown key id (at most every 10s)")
	f.StringVar(&o.jwtJWKSCA, "jwt-jwks-ca", "", "PEM CA bundle that verifies the --jwt-jwks-url server (default: the system's trusted CAs), e.g. the Kubernetes cluster CA")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "a listener serving only GET /metrics, without credentials, for Prometheus (TLS from --tls-cert when set; empty: off). /metrics on --http-addr needs an admin or auditor credential")
	f.Int64Var(&o.httpMaxBody, "http-max-body", server.DefaultHTTPMaxBody, "largest request body on the internal HTTP listener, in bytes (413 beyond)")
	f.Int64Var(&o.vendorMaxBody, "vendor-max-body", server.DefaultVendorMaxBody, "largest request body on the vendor listener, in bytes (413 beyond)")
	f.IntVar(&o.grpcMaxRecv, "grpc-max-recv", server.DefaultGRPCMaxRecv, "largest message received on the internal gRPC listener, in bytes")
	f.DurationVar(&o.readHeaderTimeout, "read-header-timeout", server.DefaultReadHeaderTimeout, "time to read a request's headers (HTTP) or finish a connection's handshake (gRPC); 0: no limit")
	f.DurationVar(&o.readTimeout, "read-timeout", server.DefaultReadTimeout, "time to read a whole HTTP request, body included; 0: no limit")
	f.DurationVar(&o.writeTimeout, "write-timeout", server.DefaultWriteTimeout, "time from an HTTP request's headers to the end of its response (backup and audit export streams exempt); 0: no limit")
	f.DurationVar(&o.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "close HTTP keep-alive and gRPC connections idle this long; 0: no limit")
	f.DurationVar(&o.requestTimeout, "request-timeout", server.DefaultRequestTimeout, "deadline of a call that brings none (every HTTP request; gRPC without grpc-timeout): past it the call fails 503/Unavailable, e.g. while the database is unreachable; 0: no limit")
	f.BoolVar(&o.ui, "ui", true, "serve the web console at /ui/ on --http-addr (--ui=false: off, 404)")
	f.DurationVar(&o.uiIdleTimeout, "ui-idle-timeout", console.DefaultIdleTimeout, "end a console session unused this long")
	f.DurationVar(&o.uiSessionTimeout, "ui-session-timeout", console.DefaultSessionTimeout, "end a console session this long after sign-in, however used")
	f.IntVar(&o.maxConns, "max-conns", server.DefaultMaxConns, "most open connections per listener; over it HTTP answers 503 with Retry-After and gRPC closes the connection; 0: no limit")
	return cmd
}

// limits turns the limit flags into server.Limits (where 0 means "the default" and a
// negative value "off"; on the command line 0 means off).
func (o serveOpts) limits() (server.Limits, error) {
	if o.httpMaxBody <= 0 || o.vendorMaxBody <= 0 || o.grpcMaxRecv <= 0 {
		return server.Limits{}, errors.New("--http-max-body, --vendor-max-body and --grpc-max-recv must be positive (bytes)")
	}
	off := func(d time.Duration) time.Duration {
		if d <= 0 {
			return -1
		}
		return d
	}
	l := server.Limits{
		HTTPMaxBody: o.httpMaxBody, VendorMaxBody: o.vendorMaxBody, GRPCMaxRecv: o.grpcMaxRecv,
		ReadHeaderTimeout: off(o.readHeaderTimeout), ReadTimeout: off(o.readTimeout),
		WriteTimeout: off(o.writeTimeout), IdleTimeout: off(o.idleTimeout), MaxConns: o.maxConns,
		RequestTimeout: off(o.requestTimeout),
	}
	if l.MaxConns <= 0 {
		l.MaxConns = -1
	}
	return l, nil
}

func runServe(ctx context.Context, o serveOpts, cmd *cobra.Command) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	out := cmd.OutOrStdout()

	if o.alertWebhook != "" && o.alertSecret == "" {
		return errors.New("--alert-webhook-url needs --alert-webhook-secret (or TOKENVAULT_ALERT_WEBHOOK_SECRET) so receivers can verify alerts")
	}
	if o.devRootToken != "" && !o.dev {
		return errors.New("--dev-root-token needs --dev")
	}
	if o.commitDelay < 0 || o.commitDelay > store.MaxCommitDelay {
		return fmt.Errorf("--commit-delay must be between 0 and %v", store.MaxCommitDelay)
	}
	internalTLS, vendorTLS, err := tlsConfigs(o)
	if err != nil {
		return err
	}
	clientCAs, err := o.internalClientCAs()
	if err != nil {
		return err
	}
	jwtCfg, err := o.jwtConfig()
	if err != nil {
		return err
	}
	limits, err := o.limits()
	if err != nil {
		return err
	}
	if o.auditWitnessURL != "" {
		if u, err := url.Parse(o.auditWitnessURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("--audit-witness-url must be an http:// or https:// URL")
		}
	}
	{
		listeners := server.Config{GRPCAddr: o.grpcAddr, HTTPAddr: o.httpAddr, MetricsAddr: o.metricsAddr, VendorAddr: o.vendorAddr, TLS: internalTLS, VendorTLS: vendorTLS,
			ClientCAs: clientCAs, JWT: jwtCfg}
		if err := listeners.Validate(); err != nil {
			return fmt.Errorf("%w (--tls-cert/--tls-key give the gRPC, HTTP and metrics listeners TLS, --vendor-tls-cert/--vendor-tls-key the vendor listener)", err)
		}
		if err := checkStoreURL(o.storeURL); err != nil {
			return err
		}
		if o.storeURL != "" && o.dev {
			return errors.New("--dev keeps its vault in a temporary bbolt store: drop --store, or --dev (and initialise the database with tokenvault init --store URL)")
		}
		if o.data == "" && o.storeURL == "" && !o.dev {
			return errors.New("--data is required, or --store for PostgreSQL (or use --dev to try tokenvault with a temporary directory)")
		}
	}

	sf := storeFlags{data: o.data, url: o.storeURL}
	if o.data == "" && o.dev {
		dir, err := os.MkdirTemp("", "tokenvault-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.data, sf.data = dir, dir
	}
	kekHint := "--kek-file FILE"
	if o.kekURI != "" {
		kekHint = "--kek-uri " + o.kekURI
	} else if o.kekFile != "" {
		kekHint = "--kek-file " + o.kekFile
	}
	// A production server never creates a vault, so it never has a secret to print: an
	// uninitialised store is refused, naming the command that initialises it.
	notInitialised := fmt.Errorf("%s is not initialised: run %s once (it prints the root token), then start serve again; outside --dev serve neither creates a vault nor prints a secret", sf.where(), initHint(sf.hint(), kekHint))
	if _, err := os.Stat(filepath.Join(o.data, store.FileName)); !sf.postgres() && !o.dev && errors.Is(err, os.ErrNotExist) {
		return notInitialised
	}
	if o.data != "" {
		if err := os.MkdirAll(o.data, 0o700); err != nil {
			return fmt.Errorf("--data: %w", err)
		}
	}
	if o.auditWitnessFile != "" && o.data != "" {
		if rel, err := filepath.Rel(o.data, o.auditWitnessFile); err == nil && !strings.HasPrefix(rel, "..") {
			log.Warn("--audit-witness-file is inside the data directory: whoever can rewrite the store can rewrite it too; put it on another volume", slog.String("path", o.auditWitnessFile))
		}
	}

	sf.noJournal = !o.storeJournal
	sf.keyFilter = o.storeKeyFilter
	sf.commitDelay = o.commitDelay
	st, err := sf.open(ctx, false, "serve")
	if err != nil {
		return err
	}
	defer st.Close()
	replica := o.replicaID
	switch {
	case sf.postgres() && replica == "":
		if replica, err = os.Hostname(); err != nil || replica == "" {
			return fmt.Errorf("--replica-id: no host name to default to (%v): name this replica", err)
		}
	case !sf.postgres() && replica != "":
		log.Warn("--replica-id is ignored without --store: a bbolt store has one server")
		replica = ""
	}
	if sf.postgres() {
		log.Info("store", slog.String("backend", "postgres"), slog.String("database", redactURL(sf.url)), slog.String("replica_id", replica))
	} else {
		log.Info("store", slog.String("backend", "bbolt"), slog.String("data", o.data))
	}
	if !o.dev {
		if ok, err := vault.RootExists(ctx, st); err != nil {
			return err
		} else if !ok {
			return notInitialised
		}
	}
	initialized, err := vault.Initialized(ctx, st)
	if err != nil {
		return err
	}
	vcfg := vault.Config{Store: st, Logger: log, ReplicaID: replica}
	switch {
	case o.erasureLog != "":
		vcfg.ErasureLog = o.erasureLog
	case o.data != "":
		vcfg.ErasureLog = filepath.Join(o.data, "erasure.log")
	default:
		log.Warn("no erasure log (--erasure-log FILE, or --data DIR for DATA/erasure.log): erasures and deletions are not re-applied if the database is restored from a backup taken before them")
	}
	// open loads the KEK and the vault; it fails (and the server stays sealed) while the KEK is
	// missing, wrong or its KMS unreachable.
	open := func(ctx context.Context) (*vault.Vault, error) {
		kek, err := loadKEK(ctx, o, log, !initialized)
		if err != nil {
			return nil, err
		}
		c := vcfg
		c.KEK = kek
		return vault.Open(ctx, c)
	}
	v, err := open(ctx)
	if err != nil {
		// A KEK file others can read is refused outright, on every start: waiting sealed
		// would not fix it, and serving would hide it.
		if !initialized || o.dev || errors.Is(err, insecurekek.ErrPermissions) {
			return err
		}
		log.Error("cannot open the vault; starting sealed and retrying", slog.String("error", err.Error()))
		v = nil
	}
	// The dev banner (with the root token) is printed once every listener is bound: a second
	// dev server on busy ports fails without printing a secret it will never serve.
	banner := ""
	if o.dev && v != nil {
		root := o.devRootToken
		if root == "" {
			var b [24]byte
			if _, err := rand.Read(b[:]); err != nil {
				return err
			}
			root = "tvs_" + base64.RawURLEncoding.EncodeToString(b[:])
		}
		if err := v.SetRootSecret(ctx, root); err != nil {
			return err
		}
		banner = fmt.Sprintf("tokenvault dev server\n  data:       %s\n  root token: %s\n\n  export TOKENVAULT_TOKEN=%s\n\nDev mode: plain text, a local KEK in the data directory. Do not use with real data.\n", o.data, root, root)
	}

	srv, err := server.New(server.Config{
		Vault: v, GRPCAddr: o.grpcAddr, HTTPAddr: o.httpAddr, VendorAddr: o.vendorAddr,
		Version: readBuildInfo().Version,
		Dev:     o.dev, Logger: log, TLS: internalTLS, VendorTLS: vendorTLS, ClientCAs: clientCAs, JWT: jwtCfg,
		MetricsAddr: o.metricsAddr, Limits: limits,
		AuditWitnessFile: o.auditWitnessFile, AuditWitnessURL: o.auditWitnessURL,
		Background: vault.BackgroundOptions{RotateAfter: o.rotateAfter, AuditRetention: o.auditRetention, RotateAfterRecords: o.rotateAfterRecords},
		Alerts: server.AlertConfig{WebhookURL: o.alertWebhook, WebhookSecret: []byte(o.alertSecret),
			VendorRevealsPerMinute: o.alertVendorRate, GrantRevealsPerMinute: o.alertGrant, DenialsPerMinute: o.alertDenials},
		UI: server.UIConfig{Disabled: !o.ui, IdleTimeout: o.uiIdleTimeout, SessionTimeout: o.uiSessionTimeout},
	})
	if err != nil {
		return err
	}
	if v == nil {
		go unsealLoop(ctx, srv, open, log)
	}
	go func() {
		select {
		case <-srv.Ready():
			fmt.Fprint(out, banner)
			a := srv.Addrs()
			if a.Metrics != "" {
				fmt.Fprintf(out, "metrics: %s\n", a.Metrics)
			}
			fmt.Fprintf(out, "listening: grpc=%s http=%s vendor=%s\n", a.GRPC, a.HTTP, a.Vendor)
		case <-ctx.Done():
		}
	}()
	if err := srv.Run(ctx); err != nil {
		return listenHint(err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// listenHint adds to a listener's bind error the flag that moves it.
func listenHint(err error) error {
	var le *server.ListenError
	if !errors.As(err, &le) {
		return err
	}
	flag := map[string]string{"gRPC": "--grpc-addr", "HTTP": "--http-addr", "vendor": "--vendor-addr", "metrics": "--metrics-addr"}[le.Listener]
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: another process (another tokenvault?) listens there: stop it, or choose another address with %s", err, flag)
	}
	return fmt.Errorf("%w: check %s %s", err, flag, le.Addr)
}

// loadKEK returns the KEK: a KMS key (--kek-uri) or a local keyset file (--kek-file; in dev
// mode DATA/kek.json by default). A missing file is created only when create is set (a new
// vault): for an existing vault a new KEK could not open its keys.
func loadKEK(ctx context.Context, o serveOpts, log *slog.Logger, create bool) (tink.AEAD, error) {
	if o.kekURI != "" && o.kekFile != "" {
		return nil, errors.New("give --kek-file or --kek-uri, not both")
	}
	if o.kekURI != "" {
		return kek.Open(ctx, o.kekURI)
	}
	path := o.kekFile
	if path == "" {
		if !o.dev {
			return nil, errors.New("a KEK is required: --kek-file PATH or --kek-uri URI")
		}
		path = filepath.Join(o.data, "kek.json")
	}
	if !create {
		return insecurekek.Load(path)
	}
	k, created, err := insecurekek.LoadOrCreate(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created a new local KEK; back it up: without it the vault cannot be opened", slog.String("path", path))
	}
	return k, nil
}

// unsealLoop retries opening the vault with backoff until it works or ctx ends.
func unsealLoop(ctx context.Context, srv *server.Server, open func(context.Context) (*vault.Vault, error), log *slog.Logger) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		v, err := open(ctx)
		if err == nil {
			srv.Unseal(v)
			log.Info("unsealed: the key-encryption key is available")
			return
		}
		log.Warn("still sealed", slog.String("error", err.Error()), slog.Duration("retry_in", wait))
		wait = min(wait*2, 30*time.Second)
	}
}

// tlsConfigs builds the listeners' TLS configurations from the flags (nil: plain text).
func tlsConfigs(o serveOpts) (internal, vendor *tls.Config, err error) {
	if err := (server.TLSFiles{Cert: o.tlsCert, Key: o.tlsKey}).Check(); err != nil {
		return nil, nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
	}
	if err := (server.TLSFiles{Cert: o.vendorCert, Key: o.vendorKey, ClientCA: o.vendorClientCA}).Check(); err != nil {
		return nil, nil, fmt.Errorf("--vendor-tls-cert, --vendor-tls-key, --vendor-client-ca: %w", err)
	}
	for _, k := range []struct{ flag, path string }{{"--tls-key", o.tlsKey}, {"--vendor-tls-key", o.vendorKey}} {
		if k.path == "" {
			continue
		}
		if err := checkKeyFile(k.flag, k.path); err != nil {
			return nil, nil, err
		}
	}
	if o.tlsCert != "" {
		if internal, err = serverTLS(o.tlsCert, o.tlsKey, "--tls-cert/--tls-key", tls.VersionTLS12); err != nil {
			return nil, nil, err
		}
	}
	if o.vendorCert != "" {
		if vendor, err = serverTLS(o.vendorCert, o.vendorKey, "--vendor-tls-cert/--vendor-tls-key", tls.VersionTLS13); err != nil {
			return nil, nil, err
		}
		if o.vendorClientCA != "" {
			pool, err := loadCertPool(o.vendorClientCA, "--vendor-client-ca")
			if err != nil {
				return nil, nil, err
			}
			vendor.ClientCAs, vendor.ClientAuth = pool, tls.RequireAndVerifyClientCert
		}
	}
	return internal, vendor, nil
}

// internalClientCAs reads --client-ca (nil without it); it needs --tls-cert and --tls-key.
func (o serveOpts) internalClientCAs() (*x509.CertPool, error) {
	if err := (server.TLSFiles{Cert: o.tlsCert, Key: o.tlsKey, ClientCA: o.clientCA}).Check(); err != nil {
		return nil, fmt.Errorf("--tls-cert, --tls-key, --client-ca: %w", err)
	}
	if o.clientCA == "" {
		return nil, nil
	}
	return loadCertPool(o.clientCA, "--client-ca")
}

// jwtConfig turns the --jwt-* flags into server.JWTConfig; --jwt-jwks-ca gives the JWKS
// fetches a client that trusts that CA bundle only.
func (o serveOpts) jwtConfig() (server.JWTConfig, error) {
	c := server.JWTConfig{Issuer: o.jwtIssuer, Audience: o.jwtAudience, JWKSFile: o.jwtJWKSFile, JWKSURL: o.jwtJWKSURL}
	if o.jwtJWKSCA == "" {
		return c, nil
	}
	if o.jwtJWKSURL == "" {
		return c, errors.New("--jwt-jwks-ca goes with --jwt-jwks-url")
	}
	pool, err := loadCertPool(o.jwtJWKSCA, "--jwt-jwks-ca")
	if err != nil {
		return c, err
	}
	c.HTTPClient = server.JWKSClient(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	return c, nil
}

// checkKeyFile refuses a TLS private key file that others can read or write, or its group
// can write. Group read is allowed: docs/install.md installs keys 0640 with the service's
// group, and Kubernetes mounts Secrets 0440 with an fsGroup. Checked on every start.
func checkKeyFile(flag, path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	if perm := info.Mode().Perm(); perm&0o027 != 0 {
		return fmt.Errorf("%s %s has mode %04o: others can access it, or its group can write it; fix it with: chmod 600 %s (or chmod 640 with the service's group)", flag, path, perm, path)
	}
	return nil
}

// serverTLS is a listener's TLS configuration with a PEM certificate and its key; flags names
// them in the error.
func serverTLS(certFile, keyFile, flags string, minVersion uint16) (*tls.Config, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flags, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: minVersion}, nil
}

// loadCertPool reads a PEM CA bundle; flag names it in the error.
func loadCertPool(file, flag string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates found", flag)
	}
	return pool, nil
}
