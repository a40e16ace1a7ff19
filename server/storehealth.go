package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenvault/tokenvault/vault"
)

// DefaultStoreCheckInterval is how often a running server checks that its store's database
// answers (Config.StoreCheckInterval).
const DefaultStoreCheckInterval = 2 * time.Second

// storePingTimeout bounds one check: a database that does not answer within it (a frozen
// network) counts as unreachable.
const storePingTimeout = 2 * time.Second

// watchStore checks every interval that v's store answers (vault.Ping: a remote database;
// a local bbolt file always does). While it does not, health reports NOT_SERVING (/healthz
// 503: a load balancer or Kubernetes readiness probe sends callers to another replica) and
// tokenvault_store_unreachable is 1; once it answers again, SERVING. Data calls meanwhile
// fail on their own with Unavailable (store.ErrUnavailable) or at their deadline. It returns
// when ctx ends.
func (s *Server) watchStore(ctx context.Context, v *vault.Vault) {
	t := time.NewTicker(s.cfg.StoreCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, storePingTimeout)
		err := v.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err != nil && !s.storeDown.Load():
			s.storeDown.Store(true)
			s.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
			s.log.Error("the store's database does not answer: health is NOT_SERVING until it does", slog.String("error", err.Error()))
		case err == nil && s.storeDown.Load():
			s.storeDown.Store(false)
			s.health.SetServingStatus("", grpc_health_v1.HealthCheckResponse_SERVING)
			s.log.Info("the store's database answers again: health is SERVING")
		}
	}
}
