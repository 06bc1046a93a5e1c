package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tcnats "github.com/testcontainers/testcontainers-go/modules/nats"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Labels on every container the harness starts; .ci/run removes what a
// killed test binary left behind by the first.
const (
	labelTestenv = "org.payrail.testenv"
	labelPackage = "org.payrail.testenv.package"
)

const (
	// readyTimeout bounds a container's start, from creation until its
	// server answers; pulling the image comes before and is not counted.
	readyTimeout = 90 * time.Second
	// probeEvery is how often a starting server is asked whether it is up.
	probeEvery = 200 * time.Millisecond
	// stopTimeout is how long a container may shut down before it is
	// killed. Its data is thrown away, so there is nothing to wait for.
	stopTimeout = 2 * time.Second
)

// Ports inside the containers when they are not on the host's network.
const (
	postgresPort = "5432/tcp"
	natsPort     = "4222/tcp"
)

// containerServices is what startContainers started.
type containerServices struct {
	containers  []testcontainers.Container // to terminate, also on error
	databaseURL string                     // when PostgreSQL was started
	natsURL     string                     // when NATS was started
}

// startContainers starts, side by side, a container for each service opts
// gives no URL for. name is the Env's Name. On error the result still
// holds the containers that were created, for the caller to terminate.
func startContainers(ctx context.Context, opts Options, name string) (containerServices, error) {
	if err := prepareNetwork(ctx, opts.HostNetwork); err != nil {
		return containerServices{}, err
	}
	type service struct {
		ctr testcontainers.Container
		url string
		err error
	}
	var pg, mq service
	var wg sync.WaitGroup
	if opts.DatabaseURL == "" {
		wg.Go(func() { pg.ctr, pg.url, pg.err = startPostgres(ctx, opts, name) })
	}
	if opts.NATSURL == "" {
		wg.Go(func() { mq.ctr, mq.url, mq.err = startNATS(ctx, opts, name) })
	}
	wg.Wait()
	out := containerServices{databaseURL: pg.url, natsURL: mq.url}
	for _, s := range []service{pg, mq} {
		if s.ctr != nil {
			out.containers = append(out.containers, s.ctr)
		}
	}
	return out, errors.Join(pg.err, mq.err)
}

// startPostgres runs opts.PostgresImage and returns the container and a
// superuser URL for it. The password is random: a mapped port listens on
// every interface of a laptop. The server's cluster_name is the Env's
// name, and the readiness probe insists on it: the official image trusts
// loopback connections whatever the password, so on the host's network
// only the name tells this container from another server that took the
// port first.
func startPostgres(ctx context.Context, opts Options, name string) (testcontainers.Container, string, error) {
	const user, db = "postgres", "postgres"
	password, err := randomHex(12)
	if err != nil {
		return nil, "", err
	}
	dbURL := func(addr string) string {
		u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: addr, Path: "/" + db, RawQuery: "sslmode=disable"}
		return u.String()
	}

	cluster := "payrail_test_" + name
	custom := []testcontainers.ContainerCustomizer{
		tcpostgres.WithUsername(user),
		tcpostgres.WithPassword(password),
		tcpostgres.WithDatabase(db),
		testcontainers.WithLabels(labels(opts.Package)),
		// The official image passes arguments to the server: `postgres -c ...`.
		testcontainers.WithCmdArgs("-c", "cluster_name="+cluster),
	}
	addr := mappedAddr(postgresPort)
	if opts.HostNetwork {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, "", err
		}
		addr = fixedAddr(net.JoinHostPort("127.0.0.1", port))
		custom = append(custom, onHostNetwork(),
			testcontainers.WithCmdArgs("-c", "port="+port, "-c", "listen_addresses=127.0.0.1"))
	}
	custom = append(custom, testcontainers.WithWaitStrategyAndDeadline(readyTimeout,
		until(addr, func(ctx context.Context, addr string) error {
			conn, err := pgx.Connect(ctx, dbURL(addr))
			if err != nil {
				return err
			}
			defer conn.Close(context.Background())
			var got string
			if err := conn.QueryRow(ctx, "SHOW cluster_name").Scan(&got); err != nil {
				return err
			}
			if got != cluster {
				return fmt.Errorf("PostgreSQL at %s is cluster %q, not %q", addr, got, cluster)
			}
			return nil
		})))

	ctr, err := tcpostgres.Run(ctx, opts.PostgresImage, custom...)
	if ctr == nil {
		return nil, "", fmt.Errorf("postgres container from %s: %w", opts.PostgresImage, err)
	}
	if err != nil {
		return ctr, "", fmt.Errorf("postgres container from %s: %w", opts.PostgresImage, err)
	}
	a, err := addr(ctx, ctr)
	if err != nil {
		return ctr, "", fmt.Errorf("postgres container address: %w", err)
	}
	return ctr, dbURL(a), nil
}

// startNATS runs opts.NATSImage with JetStream and returns the container
// and its client URL. The server is named after the Env, and the readiness
// probe insists on that name.
func startNATS(ctx context.Context, opts Options, name string) (testcontainers.Container, string, error) {
	serverName := "payrail_test_" + name
	// nats-server flags, which the official image takes as its arguments.
	args := []string{"-js", "-n", serverName}
	custom := []testcontainers.ContainerCustomizer{
		testcontainers.WithLabels(labels(opts.Package)),
	}
	addr := mappedAddr(natsPort)
	if opts.HostNetwork {
		port, err := freeLoopbackPort()
		if err != nil {
			return nil, "", err
		}
		addr = fixedAddr(net.JoinHostPort("127.0.0.1", port))
		args = append(args, "-a", "127.0.0.1", "-p", port)
		custom = append(custom, onHostNetwork())
	}
	custom = append(custom,
		testcontainers.WithCmd(args...),
		testcontainers.WithWaitStrategyAndDeadline(readyTimeout,
			until(addr, func(ctx context.Context, addr string) error {
				return checkNATS(ctx, "nats://"+addr, serverName)
			})))

	ctr, err := tcnats.Run(ctx, opts.NATSImage, custom...)
	if ctr == nil {
		return nil, "", fmt.Errorf("nats container from %s: %w", opts.NATSImage, err)
	}
	if err != nil {
		return ctr, "", fmt.Errorf("nats container from %s: %w", opts.NATSImage, err)
	}
	a, err := addr(ctx, ctr)
	if err != nil {
		return ctr, "", fmt.Errorf("nats container address: %w", err)
	}
	return ctr, "nats://" + a, nil
}

func labels(pkg string) map[string]string {
	return map[string]string{labelTestenv: "true", labelPackage: pkg}
}

// onHostNetwork puts a container on the host's network. It publishes no
// ports (its server listens on a port given as an argument) and joins no
// other network: testcontainers would otherwise attach it to its default
// one.
func onHostNetwork() testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		req.ExposedPorts = nil
		if err := testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = network.NetworkHost
			hc.PublishAllPorts = false
		})(req); err != nil {
			return err
		}
		return testcontainers.WithEndpointSettingsModifier(func(endpoints map[string]*network.EndpointSettings) {
			clear(endpoints)
		})(req)
	}
}

// prepareNetwork makes sure testcontainers finds the network it wants
// without creating one.
//
// Testcontainers attaches every container to a default network: the
// engine's "bridge" ("podman" under Podman) or, where the engine has none,
// "reaper_default", which it creates as a bridge network on a private
// subnet. Such a network must never appear on a machine whose containers
// may talk only over loopback. So:
//
//   - With host networking, where the engine has neither network, the
//     harness creates "reaper_default" first, as a config-only network: it
//     has no interface and cannot hold containers (onHostNetwork detaches
//     them), and its nominal gateway, which testcontainers takes for the
//     Docker host's address inside a container, is on loopback.
//   - With port mapping, the engine must have a bridge network of its own;
//     one without is a machine for host networking, and the error says so.
func prepareNetwork(ctx context.Context, hostNetwork bool) error {
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	defer cli.Close()

	// usable reports whether the engine has a network testcontainers will
	// pick, and whether containers can join it.
	usable := func() (found, joinable bool, err error) {
		list, err := cli.NetworkList(ctx, client.NetworkListOptions{})
		if err != nil {
			return false, false, fmt.Errorf("docker network list: %w", err)
		}
		for _, n := range list.Items {
			switch n.Name {
			case testcontainers.Bridge, testcontainers.Podman:
				return true, true, nil
			case testcontainers.ReaperDefault:
				found, joinable = true, !n.ConfigOnly
			}
		}
		return found, joinable, nil
	}
	found, joinable, err := usable()
	switch {
	case err != nil:
		return err
	case !hostNetwork && !joinable:
		return fmt.Errorf("the Docker engine has no bridge network to map container ports from; "+
			"set %s=1 to run the containers on the host's network", EnvHostNetwork)
	case !hostNetwork || found:
		return nil
	}
	_, err = cli.NetworkCreate(ctx, testcontainers.ReaperDefault, client.NetworkCreateOptions{
		ConfigOnly: true,
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{
			Subnet:  netip.MustParsePrefix("127.254.0.0/24"),
			Gateway: netip.MustParseAddr("127.254.0.1"),
		}}},
		Labels: map[string]string{labelTestenv: "true"},
	})
	if err != nil {
		// Another test binary may have made it in the meantime.
		if found, _, _ := usable(); found {
			return nil
		}
		return fmt.Errorf("docker network create %s: %w", testcontainers.ReaperDefault, err)
	}
	return nil
}

// An addrFunc tells where a container's server listens, as host:port.
type addrFunc func(context.Context, endpoint) (string, error)

// endpoint is what addrFuncs need of a container or wait target.
type endpoint interface {
	Host(context.Context) (string, error)
	MappedPort(context.Context, string) (network.Port, error)
}

// fixedAddr is for host-network containers, whose address the harness chose.
func fixedAddr(addr string) addrFunc {
	return func(context.Context, endpoint) (string, error) { return addr, nil }
}

// mappedAddr is for port-mapped containers: the engine's host and the host
// port it mapped port to.
func mappedAddr(port string) addrFunc {
	return func(ctx context.Context, c endpoint) (string, error) {
		host, err := c.Host(ctx)
		if err != nil {
			return "", err
		}
		p, err := c.MappedPort(ctx, port)
		if err != nil {
			return "", err
		}
		return net.JoinHostPort(host, p.Port()), nil
	}
}

// until is a wait strategy that asks probe, at the server's address, until
// it succeeds, the container stops, or ctx ends. A real client's answer is
// the only reliable sign of readiness across images: log lines differ, and
// the official postgres image runs a private server before the real one.
func until(addr addrFunc, probe func(ctx context.Context, addr string) error) wait.Strategy {
	return wait.ForNop(func(ctx context.Context, target wait.StrategyTarget) error {
		var last error
		for {
			state, err := target.State(ctx)
			if err != nil {
				return fmt.Errorf("container state: %w", err)
			}
			if !state.Running {
				return fmt.Errorf("container stopped (exit code %d) before its server was ready; last probe: %v; log tail:\n%s",
					state.ExitCode, last, logTail(ctx, target, 20))
			}
			a, err := addr(ctx, target)
			if err == nil {
				pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err = probe(pctx, a)
				cancel()
				if err == nil {
					return nil
				}
			}
			last = err
			select {
			case <-ctx.Done():
				return fmt.Errorf("server not ready: %w; last probe: %v; log tail:\n%s",
					ctx.Err(), last, logTail(context.Background(), target, 20))
			case <-time.After(probeEvery):
			}
		}
	})
}

// logTail returns the last n lines of a container's output, for errors.
func logTail(ctx context.Context, target wait.StrategyTarget, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rc, err := target.Logs(ctx)
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// freeLoopbackPort returns a TCP port on 127.0.0.1 that nothing listens on
// just now. Another process may take it before the container does; the
// probes then fail (wrong password or server name) rather than test
// against a stranger.
func freeLoopbackPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return "", err
	}
	return strconv.Itoa(port), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// terminate stops and removes containers, all of them even if some fail.
func terminate(ctrs []testcontainers.Container) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, c := range ctrs {
		if err := testcontainers.TerminateContainer(c, testcontainers.StopContext(ctx), testcontainers.StopTimeout(stopTimeout)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
