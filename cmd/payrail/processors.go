package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

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

// authorizeNet returns the AUTHORIZE_NET processor. Without credentials,
// payrail dev charges the built-in simulator; other roles leave it out.
func (s *services) authorizeNet(ctx context.Context) (processors.Processor, error) {
	var err error
	cfg := authorizenet.Config{Endpoint: s.cfg.AuthNetEndpoint, LoginID: s.cfg.AuthNetLoginID,
		TransactionKey: s.cfg.AuthNetTransactionKey, Timeout: s.cfg.AuthNetTimeout}
	if cfg.LoginID == "" && cfg.TransactionKey == "" {
		if !s.cfg.dev {
			s.log.Warn("AUTHORIZE_NET not configured (PAYRAIL_AUTHNET_LOGIN_ID, PAYRAIL_AUTHNET_TRANSACTION_KEY): this worker leaves card jobs to others")
			return nil, nil
		}
		endpoint, err := s.startSimulator(ctx)
		if err != nil {
			return nil, err
		}
		cfg.Endpoint, cfg.LoginID, cfg.TransactionKey = endpoint, anetsim.DefaultLoginID, anetsim.DefaultTransactionKey
		s.log.Info("AUTHORIZE_NET charges the built-in simulator (set PAYRAIL_AUTHNET_LOGIN_ID and _TRANSACTION_KEY for a real gateway)",
			"endpoint", endpoint)
	}
	if cfg.Metrics, err = authorizenet.NewMetrics(s.registry); err != nil {
		return nil, err
	}
	client, err := authorizenet.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("AUTHORIZE_NET client: %w", err)
	}
	return authorizenet.NewProcessor(client, s.log), nil
}

// startSimulator serves the Authorize.Net simulator on a free loopback port
// until ctx ends and returns its endpoint.
func (s *services) startSimulator(ctx context.Context) (string, error) {
	sim, err := anetsim.New(anetsim.Options{AcceptAnyProfile: true, Logger: s.log})
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("Authorize.Net simulator: %w", err)
	}
	go func() {
		if err := sim.Serve(ctx, ln); err != nil && ctx.Err() == nil {
			s.log.Error("Authorize.Net simulator stopped", "err", err)
		}
	}()
	return "http://" + ln.Addr().String() + anetsim.Path, nil
}
