package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NATSServerEnv names the nats-server binary a NATSCluster runs; the
// default is the system's /usr/sbin/nats-server (or nats-server on PATH).
// A binary of the embedded version is built with
//
//	go build -o /tmp/nats-server-2.15 github.com/nats-io/nats-server/v2
const NATSServerEnv = "PAYRAIL_TEST_NATS_SERVER"

// NATSCluster is a three-node NATS JetStream cluster of real nats-server
// processes on loopback, without TLS or accounts (a test-only config), so
// a test can SIGKILL, SIGSTOP, SIGCONT and restart one node as a crash or
// a hang of a host would. Node i (0..2) is named n1..n3.
type NATSCluster struct {
	t       testing.TB
	bin     string
	dir     string
	client  [3]int
	route   [3]int
	monitor [3]int
	cmd     [3]*exec.Cmd
	exited  [3]chan struct{} // closed when node i's process has been waited for
	stopped [3]bool
	version string
}

// StartNATSCluster starts the three nodes and waits until the JetStream
// meta group is current on all of them. It fails the test when no
// nats-server binary is found.
func StartNATSCluster(t testing.TB) *NATSCluster {
	t.Helper()
	bin := os.Getenv(NATSServerEnv)
	if bin == "" {
		if p, err := exec.LookPath("nats-server"); err == nil {
			bin = p
		} else if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
			bin = "/usr/sbin/nats-server"
		} else {
			t.Fatalf("no nats-server binary: install Debian's nats-server package or set %s", NATSServerEnv)
		}
	}
	c := &NATSCluster{t: t, bin: bin, dir: t.TempDir()}
	for i := range 3 {
		for _, p := range []*int{&c.client[i], &c.route[i], &c.monitor[i]} {
			port, err := freeLoopbackPort()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = fmt.Sscan(port, p)
		}
	}
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", c.route[i]))
	}
	for i := range 3 {
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster { name: payrail-test, listen: 127.0.0.1:%d, routes: [%s] }
`, i+1, c.client[i], c.monitor[i], filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)), c.route[i], strings.Join(routes, ", "))
		if err := os.WriteFile(c.confPath(i), []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.stopAll)
	for i := range 3 {
		c.Start(i)
	}
	c.WaitMetaReady(30 * time.Second)
	var v struct {
		Version string `json:"version"`
	}
	_ = c.monitorJSON(0, "/varz", &v)
	c.version = v.Version
	t.Logf("NATS cluster (%s, %s) on %s", bin, c.Version(), c.URLs())
	return c
}

func (c *NATSCluster) confPath(i int) string {
	return filepath.Join(c.dir, fmt.Sprintf("n%d.conf", i+1))
}

// Name is node i's server name.
func (c *NATSCluster) Name(i int) string { return fmt.Sprintf("n%d", i+1) }

// Index is the node named name, or -1.
func (c *NATSCluster) Index(name string) int {
	for i := range 3 {
		if c.Name(i) == name {
			return i
		}
	}
	return -1
}

// URL is node i's client URL.
func (c *NATSCluster) URL(i int) string { return fmt.Sprintf("nats://127.0.0.1:%d", c.client[i]) }

// URLs lists the three client URLs, comma-separated.
func (c *NATSCluster) URLs() string {
	return strings.Join([]string{c.URL(0), c.URL(1), c.URL(2)}, ",")
}

// Start starts (or restarts, with its data) node i.
func (c *NATSCluster) Start(i int) {
	c.t.Helper()
	log, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("n%d.log", i+1)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, "-c", c.confPath(i))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(exited) }()
	c.cmd[i], c.exited[i], c.stopped[i] = cmd, exited, false
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.client[i]), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("nats-server n%d did not listen within 15s: %v", i+1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL to node i and waits until it is gone.
func (c *NATSCluster) Kill(i int) {
	c.t.Helper()
	cmd := c.cmd[i]
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited[i]
	c.cmd[i] = nil
}

// Stop sends SIGSTOP to node i: it hangs with its sockets open.
func (c *NATSCluster) Stop(i int) {
	if c.cmd[i] != nil {
		_ = c.cmd[i].Process.Signal(syscall.SIGSTOP)
		c.stopped[i] = true
	}
}

// Cont sends SIGCONT to node i.
func (c *NATSCluster) Cont(i int) {
	if c.cmd[i] != nil {
		_ = c.cmd[i].Process.Signal(syscall.SIGCONT)
		c.stopped[i] = false
	}
}

func (c *NATSCluster) stopAll() {
	for i := range 3 {
		if c.stopped[i] {
			c.Cont(i)
		}
		if c.cmd[i] != nil {
			_ = c.cmd[i].Process.Signal(syscall.SIGTERM)
		}
	}
	for i := range 3 {
		if cmd := c.cmd[i]; cmd != nil {
			select {
			case <-c.exited[i]:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-c.exited[i]
			}
		}
	}
}

// Version is the servers' version (node 0's /varz at start).
func (c *NATSCluster) Version() string { return c.version }

// WaitMetaReady waits until the JetStream meta leader counts every
// running node as a current peer and returns the leader's name. A
// leader alone is not enough: until its peers have caught up, creating
// a replicated stream fails with "no suitable peers for placement".
func (c *NATSCluster) WaitMetaReady(within time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	running := 0
	for i := range 3 {
		if c.cmd[i] != nil && !c.stopped[i] {
			running++
		}
	}
	for {
		for i := range 3 {
			if c.cmd[i] == nil || c.stopped[i] {
				continue
			}
			var jsz struct {
				Meta struct {
					Leader   string `json:"leader"`
					Replicas []struct {
						Current bool `json:"current"`
						Offline bool `json:"offline"`
					} `json:"replicas"`
				} `json:"meta_cluster"`
			}
			if c.monitorJSON(i, "/jsz", &jsz) != nil || jsz.Meta.Leader != c.Name(i) {
				continue
			}
			current := 1 // the leader itself
			for _, r := range jsz.Meta.Replicas {
				if r.Current && !r.Offline {
					current++
				}
			}
			if current >= running {
				return jsz.Meta.Leader
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("JetStream meta group not current on %d nodes within %s (logs in %s)", running, within, c.dir)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// StreamMsgs is the number of messages node i's own replica of stream
// holds (from its /jsz), and whether the node reported the stream.
func (c *NATSCluster) StreamMsgs(i int, stream string) (uint64, bool) {
	msgs, _, ok := c.StreamState(i, stream)
	return msgs, ok
}

// StreamState is the number of messages node i's own replica of stream
// holds and its last sequence (from its /jsz), and whether the node
// reported the stream.
func (c *NATSCluster) StreamState(i int, stream string) (msgs, lastSeq uint64, ok bool) {
	var jsz struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					Msgs    uint64 `json:"messages"`
					LastSeq uint64 `json:"last_seq"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := c.monitorJSON(i, "/jsz?accounts=true&streams=true", &jsz); err != nil {
		return 0, 0, false
	}
	for _, a := range jsz.Accounts {
		for _, s := range a.Streams {
			if s.Name == stream {
				return s.State.Msgs, s.State.LastSeq, true
			}
		}
	}
	return 0, 0, false
}

func (c *NATSCluster) monitorJSON(i int, path string, v any) error {
	cl := http.Client{Timeout: 2 * time.Second}
	res, err := cl.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.monitor[i], path))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d", path, res.StatusCode)
	}
	return json.NewDecoder(res.Body).Decode(v)
}
