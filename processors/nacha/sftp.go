package nacha

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SFTPConfig is the ODFI's SFTP drop box.
type SFTPConfig struct {
	// Addr is host:port.
	Addr string
	User string
	// Password and/or PrivateKey (PEM) authenticate the user.
	Password   string
	PrivateKey []byte
	// HostKey pins the server's public key, in authorized_keys format
	// ("ssh-ed25519 AAAA..."). There is no trust-on-first-use: an unknown
	// or changed key fails the upload.
	HostKey string
	// RemoteDir receives the files ("." for the login directory).
	RemoteDir string
	// Timeout bounds the dial and handshake; default 30s.
	Timeout time.Duration
}

// upload copies a written file to the SFTP server under a temporary name,
// renames it into place and then verifies it by reading it back: the size
// and SHA-256 must match what PostgreSQL recorded. Only then is the file
// reported uploaded (achgateway once marked files uploaded that a server
// had silently refused). A copy already in place with the right content —
// an earlier run crashed after its rename — is accepted as is.
func (p *Processor) upload(ctx context.Context, rec fileRecord) (string, error) {
	cfg := p.sftp
	local := filepath.Join(p.dropDir, rec.FileName)
	if sum, err := fileSHA256(local); err != nil {
		return "", fmt.Errorf("nacha: read %s for upload: %w", local, err)
	} else if !bytes.Equal(sum, rec.SHA256) {
		return "", fmt.Errorf("nacha: %s on disk does not match its recorded sha256; not uploading", local)
	}
	client, closeFn, err := dialSFTP(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer closeFn()

	dir := cfg.RemoteDir
	if dir == "" {
		dir = "."
	}
	remote := path.Join(dir, rec.FileName)
	part := remote + ".part"
	if err := verifyRemote(client, remote, rec); err == nil {
		// An earlier run renamed it into place; a partial copy of an
		// attempt before that may still be lying beside it.
		p.removeRemotePart(client, part)
		return remote, nil
	}
	// A NAME.part left by an interrupted upload is truncated and
	// rewritten here; on failure it is removed, so the ODFI's directory
	// keeps no partial file longer than the connection that wrote it.
	if err := copyToRemote(client, local, part); err != nil {
		p.removeRemotePart(client, part)
		return "", err
	}
	if err := renameRemote(client, part, remote); err != nil {
		p.removeRemotePart(client, part)
		return "", err
	}
	if err := verifyRemote(client, remote, rec); err != nil {
		return "", fmt.Errorf("nacha: uploaded %s but it does not verify: %w", remote, err)
	}
	return remote, nil
}

// removeRemotePart deletes a partial upload, if there is one (best effort:
// the connection may be what failed; the next upload of the file replaces
// it anyway).
func (p *Processor) removeRemotePart(client *sftp.Client, part string) {
	if err := client.Remove(part); err == nil {
		p.log.Warn("removed a partial upload from the SFTP server", "remote_path", part)
	} else if !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("could not remove a partial upload from the SFTP server", "remote_path", part, "err", err)
	}
}

func dialSFTP(ctx context.Context, cfg *SFTPConfig) (*sftp.Client, func(), error) {
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(cfg.HostKey))
	if err != nil {
		return nil, nil, fmt.Errorf("nacha: SFTP host key is not an authorized_keys line: %w", err)
	}
	var auth []ssh.AuthMethod
	if len(cfg.PrivateKey) > 0 {
		signer, err := ssh.ParsePrivateKey(cfg.PrivateKey)
		if err != nil {
			return nil, nil, fmt.Errorf("nacha: SFTP private key: %w", err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		auth = append(auth, ssh.Password(cfg.Password))
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("nacha: dial SFTP %s: %w", cfg.Addr, err)
	}
	// The handshake honours the timeout too; a stalled server must not
	// hold the drop lock forever.
	_ = conn.SetDeadline(time.Now().Add(timeout))
	sc, chans, reqs, err := ssh.NewClientConn(conn, cfg.Addr, &ssh.ClientConfig{
		User: cfg.User, Auth: auth, HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: timeout,
	})
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("nacha: SSH handshake with %s: %w", cfg.Addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	sshClient := ssh.NewClient(sc, chans, reqs)
	client, err := sftp.NewClient(sshClient)
	if err != nil {
		_ = sshClient.Close()
		return nil, nil, fmt.Errorf("nacha: start SFTP on %s: %w", cfg.Addr, err)
	}
	// Cancelling ctx closes the connection, which unblocks any transfer.
	stop := context.AfterFunc(ctx, func() { _ = sshClient.Close() })
	return client, func() { stop(); _ = client.Close(); _ = sshClient.Close() }, nil
}

func copyToRemote(client *sftp.Client, local, remote string) error {
	src, err := os.Open(local)
	if err != nil {
		return fmt.Errorf("nacha: open %s: %w", local, err)
	}
	defer src.Close()
	dst, err := client.OpenFile(remote, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("nacha: create remote %s: %w", remote, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		return fmt.Errorf("nacha: upload to %s: %w", remote, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("nacha: close remote %s: %w", remote, err)
	}
	return nil
}

// renameRemote moves part onto remote, replacing a stale copy. SFTP v3's
// rename refuses an existing target, so the POSIX extension is preferred.
func renameRemote(client *sftp.Client, part, remote string) error {
	if _, ok := client.HasExtension("posix-rename@openssh.com"); ok {
		if err := client.PosixRename(part, remote); err != nil {
			return fmt.Errorf("nacha: rename remote %s: %w", part, err)
		}
		return nil
	}
	if err := client.Remove(remote); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("nacha: replace remote %s: %w", remote, err)
	}
	if err := client.Rename(part, remote); err != nil {
		return fmt.Errorf("nacha: rename remote %s: %w", part, err)
	}
	return nil
}

// verifyRemote checks the remote file's size, then reads it back and
// compares its SHA-256 with the recorded one.
func verifyRemote(client *sftp.Client, remote string, rec fileRecord) error {
	fi, err := client.Stat(remote)
	if err != nil {
		return fmt.Errorf("stat %s: %w", remote, err)
	}
	if fi.Size() != rec.Size {
		return fmt.Errorf("%s is %d bytes, expected %d", remote, fi.Size(), rec.Size)
	}
	f, err := client.Open(remote)
	if err != nil {
		return fmt.Errorf("open %s: %w", remote, err)
	}
	defer f.Close()
	sum, err := hashReader(sha256.New(), f)
	if err != nil {
		return fmt.Errorf("read back %s: %w", remote, err)
	}
	if !bytes.Equal(sum, rec.SHA256) {
		return fmt.Errorf("%s has sha256 %x, expected %x", remote, sum, rec.SHA256)
	}
	return nil
}
