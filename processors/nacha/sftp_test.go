package nacha

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// sftpServer is an SFTP server on 127.0.0.1 for one test: pkg/sftp's
// server behind an x/crypto/ssh listener with password auth.
type sftpServer struct {
	addr    string
	hostKey string // authorized_keys line
	root    string
}

// startSFTP starts a server rooted at a temp dir. lying makes it accept
// uploads and throw the bytes away while answering success, like the
// MOVEit server achgateway met.
func startSFTP(t *testing.T, lying bool) *sftpServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PasswordCallback: func(c ssh.ConnMetadata, pass []byte) (*ssh.Permissions, error) {
		if c.User() == "payrail" && string(pass) == "s3cret" {
			return nil, nil
		}
		return nil, errors.New("denied")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sftpServer{addr: ln.Addr().String(), hostKey: string(ssh.MarshalAuthorizedKey(sshPub)), root: t.TempDir()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(conn, cfg, lying)
			}()
		}
	}()
	return s
}

func (s *sftpServer) serve(conn net.Conn, cfg *ssh.ServerConfig, lying bool) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // bounded: a test server stops by itself
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			for req := range requests {
				ok := req.Type == "subsystem" && len(req.Payload) >= 4 && string(req.Payload[4:]) == "sftp"
				_ = req.Reply(ok, nil)
			}
		}()
		if lying {
			h := sftp.InMemHandler()
			h.FilePut = discardWriter{inner: h.FilePut}
			_ = sftp.NewRequestServer(ch, h).Serve()
		} else {
			srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(s.root))
			if err != nil {
				return
			}
			_ = srv.Serve()
		}
		_ = ch.Close()
	}
}

// discardWriter creates the file but keeps none of the bytes written to it.
type discardWriter struct{ inner sftp.FileWriter }

func (d discardWriter) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	if _, err := d.inner.Filewrite(r); err != nil {
		return nil, err
	}
	return discardAt{}, nil
}

type discardAt struct{}

func (discardAt) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

func sftpFixture(t *testing.T, srv *sftpServer, hostKey string) *fixture {
	t.Helper()
	return newFixture(t, ny(t, 2025, 12, 2, 10, 0), fixtureOpts{mutate: func(c *Config) {
		c.SFTP = &SFTPConfig{Addr: srv.addr, User: "payrail", Password: "s3cret", HostKey: hostKey, RemoteDir: ".",
			Timeout: 10 * time.Second}
	}})
}

func TestSFTPDropUploadsAndVerifies(t *testing.T) {
	srv := startSFTP(t, false)
	f := sftpFixture(t, srv, srv.hostKey)
	f.stage(payment{lineItem: "li_1", amount: 1000})
	f.stage(payment{lineItem: "li_2", amount: 2000, sec: "PPD"})
	f.setNow(ny(t, 2025, 12, 2, 21, 0))
	res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res.Files) != 1 || res.Files[0].Status != fileUploaded || res.Files[0].RemotePath == "" {
		t.Fatalf("drop = %+v", res.Files)
	}
	local, _ := os.ReadFile(res.Files[0].Path)
	remote, err := os.ReadFile(filepath.Join(srv.root, res.Files[0].FileName))
	if err != nil || !bytes.Equal(local, remote) {
		t.Fatalf("remote copy differs from the local file (%v)", err)
	}
	if parts, _ := filepath.Glob(filepath.Join(srv.root, "*.part")); len(parts) != 0 {
		t.Errorf("partial uploads left: %v", parts)
	}
	if got := counterValue(t, f.p.metrics.files.WithLabelValues(fileUploaded)); got != 1 {
		t.Errorf("uploaded metric = %v", got)
	}
	checkDropInvariants(t, f)
}

func TestSFTPCrashAfterRemoteRenameIsRecovered(t *testing.T) {
	srv := startSFTP(t, false)
	f := sftpFixture(t, srv, srv.hostKey)
	f.stage(payment{lineItem: "li_1", amount: 1000})
	f.p.hook = crashOnce(StepUploaded)
	if _, err := f.drop(ny(t, 2025, 12, 2, 21, 0)); !errors.Is(err, errCrash) {
		t.Fatalf("drop = %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(srv.root, "*.ach"))
	if len(names) != 1 {
		t.Fatalf("remote files: %v", names)
	}
	before, _ := os.Stat(names[0])
	time.Sleep(20 * time.Millisecond)
	res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res.Files) != 1 || !res.Files[0].Recovered || res.Files[0].Status != fileUploaded {
		t.Fatalf("re-run = %+v", res.Files)
	}
	after, _ := os.Stat(names[0])
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("a verified remote copy was uploaded again")
	}
}

func TestSFTPHostKeyIsPinned(t *testing.T) {
	srv := startSFTP(t, false)
	other := startSFTP(t, false)
	f := sftpFixture(t, srv, other.hostKey)
	f.stage(payment{lineItem: "li_1", amount: 1000})
	_, err := f.drop(ny(t, 2025, 12, 2, 21, 0))
	if err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Fatalf("drop to a server with another host key: %v", err)
	}
	if names, _ := filepath.Glob(filepath.Join(srv.root, "*")); len(names) != 0 {
		t.Fatalf("files reached an unverified server: %v", names)
	}
	// The file is durable locally and the entries dropped; only the
	// upload waits. With the right key the next drop finishes it.
	if e := f.entry("li_1"); e.Status != entryDropped {
		t.Fatalf("entry %s", e.Status)
	}
	f.p.sftp.HostKey = srv.hostKey
	res := f.mustDrop(ny(t, 2025, 12, 2, 21, 0))
	if len(res.Files) != 1 || !res.Files[0].Recovered || res.Files[0].Status != fileUploaded {
		t.Fatalf("re-run = %+v", res.Files)
	}
}

func TestSFTPServerThatDropsBytesIsNotMarkedUploaded(t *testing.T) {
	srv := startSFTP(t, true)
	f := sftpFixture(t, srv, srv.hostKey)
	f.stage(payment{lineItem: "li_1", amount: 1000})
	_, err := f.drop(ny(t, 2025, 12, 2, 21, 0))
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("drop to a lying server: %v", err)
	}
	var status string
	if err := env.Pool.QueryRow(f.ctx, `SELECT status FROM nacha_files WHERE org_id = $1`, f.org).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != fileWritten {
		t.Fatalf("file is %s; an unverified upload must not count", status)
	}
	if got := counterValue(t, f.p.metrics.dropFailures.WithLabelValues("upload")); got != 1 {
		t.Errorf("upload failure metric = %v", got)
	}
}
