package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/payrail/payrail/internal/store"
	"github.com/payrail/payrail/processors"
	"github.com/payrail/payrail/processors/authorizenet"
	"github.com/payrail/payrail/processors/authorizenet/anetsim"
	"github.com/payrail/payrail/processors/nacha"
)

// processors builds the registry of the processors this worker runs: each
// one whose configuration is present. A processor left out is logged; its
// jobs wait in the stream for a worker that runs it. schedules are the
// processors' background work (the NACHA cutoffs), run beside the worker.
func (s *services) processors(ctx context.Context) (reg *processors.Registry, schedules []func(context.Context) error, err error) {
	var ps []processors.Processor
	anet, err := s.authorizeNet(ctx)
	if err != nil {
		return nil, nil, err
	}
	if anet != nil {
		ps = append(ps, anet)
	}
	ach, err := s.nacha()
	if err != nil {
		return nil, nil, err
	}
	ps = append(ps, ach)
	inbound := s.cfg.Nacha.InboundDir
	if inbound == "" && s.cfg.dev {
		inbound = filepath.Join(s.cfg.VarDir, "nacha", "inbound")
	}
	if inbound != "" {
		if err := os.MkdirAll(inbound, 0o700); err != nil {
			return nil, nil, fmt.Errorf("NACHA inbound directory: %w", err)
		}
	}
	schedules = append(schedules, func(ctx context.Context) error {
		return ach.RunSchedule(ctx, nacha.ScheduleOptions{InboundDir: inbound})
	})
	reg, err = processors.NewRegistry(ps...)
	return reg, schedules, err
}

// nacha returns the CANOPY_NACHA processor over this process's store.
func (s *services) nacha() (*nacha.Processor, error) {
	pc, err := s.cfg.Nacha.processorConfig()
	if err != nil {
		return nil, err
	}
	pc.Pool, pc.Ring, pc.Ledger, pc.Logger, pc.Registerer = s.pool, s.ring, nacha.StoreLedger{Store: s.store}, s.log, s.registry
	p, err := nacha.New(pc)
	if err != nil {
		return nil, fmt.Errorf("CANOPY_NACHA: %w", err)
	}
	return p, nil
}

// authorizeNet returns the AUTHORIZE_NET processor: each job is charged
// with its org's merchant login (PUT /organization/authorize_net_config),
// else with the default login of the configuration.
func (s *services) authorizeNet(ctx context.Context) (processors.Processor, error) {
	m, err := s.merchants(ctx)
	if err != nil {
		return nil, err
	}
	if !m.HasDefault() {
		s.log.Warn("no default Authorize.Net credentials (PAYRAIL_AUTHNET_LOGIN_ID, PAYRAIL_AUTHNET_TRANSACTION_KEY): " +
			"card jobs of orgs without their own credentials end INVALID (authorize_net_not_configured)")
	}
	// The duplicate protections lean on the Transaction Details API,
	// which the merchant must enable by hand: check the default login now
	// (in the background, so a slow gateway does not hold the worker up);
	// each org's own login is checked with its first job.
	go func() { _, _ = m.CheckDefaultReporting(ctx) }()
	return authorizenet.NewOrgProcessor(m, s.log), nil
}

// merchants returns this process's Authorize.Net clients per org, built
// once and shared by the API (profile checks) and the worker (charges).
// Without default credentials payrail dev starts the built-in simulator
// and uses its login as the default.
func (s *services) merchants(ctx context.Context) (*authorizenet.Merchants, error) {
	s.anetOnce.Do(func() { s.anet, s.anetErr = s.newMerchants(ctx) })
	return s.anet, s.anetErr
}

func (s *services) newMerchants(ctx context.Context) (*authorizenet.Merchants, error) {
	cfg := authorizenet.Config{Endpoint: s.cfg.AuthNetEndpoint, LoginID: s.cfg.AuthNetLoginID,
		TransactionKey: s.cfg.AuthNetTransactionKey, Timeout: s.cfg.AuthNetTimeout,
		Tracer: s.tracing.Tracer("processors/authorizenet")}
	if cfg.LoginID == "" && cfg.TransactionKey == "" && s.cfg.dev {
		endpoint, err := s.startSimulator(ctx)
		if err != nil {
			return nil, err
		}
		cfg.Endpoint, cfg.LoginID, cfg.TransactionKey = endpoint, anetsim.DefaultLoginID, anetsim.DefaultTransactionKey
		s.log.Info("AUTHORIZE_NET charges the built-in simulator (set PAYRAIL_AUTHNET_LOGIN_ID and _TRANSACTION_KEY for a real gateway)",
			"endpoint", endpoint)
	}
	var err error
	if cfg.Metrics, err = authorizenet.NewMetrics(s.registry); err != nil {
		return nil, err
	}
	m, err := authorizenet.NewMerchants(authorizenet.MerchantsConfig{Base: cfg, Lookup: s.orgCredentials, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("AUTHORIZE_NET client: %w", err)
	}
	return m, nil
}

// orgCredentials reads an org's own Authorize.Net credentials for
// Merchants: none is ErrNoOrgCredentials, a key that does not unseal is
// permanent, anything else (the database) temporary.
func (s *services) orgCredentials(ctx context.Context, orgID string) (string, string, error) {
	login, key, err := s.store.AuthorizeNetCredentials(ctx, orgID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", "", authorizenet.ErrNoOrgCredentials
	case err != nil && !errors.Is(err, store.ErrSealed):
		return "", "", authorizenet.TemporaryLookupError(err)
	}
	return login, key, err
}

// startSimulator serves the Authorize.Net simulator on a free loopback port
// until ctx ends and returns its endpoint.
func (s *services) startSimulator(ctx context.Context) (string, error) {
	sim, err := anetsim.New(anetsim.Options{AcceptAnyProfile: true, Logger: s.log, Faults: s.simFaults})
	if err != nil {
		return "", err
	}
	s.sim = sim
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("Authorize.Net simulator: %w", err)
	}
	go func() {
		if err := sim.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			s.log.Error("Authorize.Net simulator stopped", "err", err)
		}
	}()
	s.log.Info("Authorize.Net simulator started", "endpoint", "http://"+ln.Addr().String()+anetsim.Path,
		"settle", "curl -X POST http://"+ln.Addr().String()+anetsim.SettlePath)
	return "http://" + ln.Addr().String() + anetsim.Path, nil
}
