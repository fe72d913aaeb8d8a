package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHTarget is a host to run kubectl on.
type SSHTarget struct {
	Host       string
	Port       int
	User       string
	KeyFile    string // empty: use the ssh-agent at SSH_AUTH_SOCK
	KnownHosts string // empty: ~/.ssh/known_hosts
	Timeout    time.Duration
}

func (t SSHTarget) addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

// SSH runs commands on one host over one kept-open connection, a session
// per command. The host key is always verified against known_hosts.
type SSH struct {
	target SSHTarget
	mu     sync.Mutex
	client *ssh.Client
}

// NewSSH returns a runner for target; it connects on first use.
func NewSSH(target SSHTarget) *SSH { return &SSH{target: target} }

func (s *SSH) config() (*ssh.ClientConfig, error) {
	t := s.target
	if t.Host == "" || t.User == "" {
		return nil, errors.New("ssh: host and user are required")
	}
	known := t.KnownHosts
	if known == "" {
		home, _ := os.UserHomeDir()
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	hostKeys, err := knownhosts.New(known)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: cannot verify the host key without known_hosts (%v); add the host with ssh-keyscan", t.addr(), err)
	}
	var auth ssh.AuthMethod
	if t.KeyFile != "" {
		key, err := os.ReadFile(t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ssh key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("ssh key %s: %w (a passphrase-protected key needs ssh-agent)", t.KeyFile, err)
		}
		auth = ssh.PublicKeys(signer)
	} else if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("ssh-agent %s: %w", sock, err)
		}
		auth = ssh.PublicKeysCallback(agent.NewClient(conn).Signers)
	} else {
		return nil, errors.New("ssh: no key file given and no ssh-agent (SSH_AUTH_SOCK)")
	}
	timeout := t.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return &ssh.ClientConfig{User: t.User, Auth: []ssh.AuthMethod{auth}, HostKeyCallback: hostKeys, Timeout: timeout}, nil
}

func (s *SSH) connect(ctx context.Context) (*ssh.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client != nil {
		return s.client, nil
	}
	cfg, err := s.config()
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", s.target.addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", s.target.addr(), err)
	}
	// The handshake is bounded too: by the timeout, and by ctx (a host that
	// accepts TCP and never speaks would otherwise hold this connection's
	// lock, and every command waiting for it, for good).
	deadline := time.Now().Add(cfg.Timeout)
	ctxDeadline, bounded := ctx.Deadline()
	if bounded && ctxDeadline.Before(deadline) {
		deadline = ctxDeadline
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	c, chans, reqs, err := ssh.NewClientConn(conn, s.target.addr(), cfg)
	stop()
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if bounded && !time.Now().Before(ctxDeadline) {
			err = context.DeadlineExceeded // the context's deadline, met by the read's
		}
		return nil, fmt.Errorf("ssh %s: handshake: %w", s.target.addr(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	s.client = ssh.NewClient(c, chans, reqs)
	return s.client, nil
}

// Run runs argv (quoted for the remote shell) and returns its stdout. A
// failure carries stderr.
func (s *SSH) Run(ctx context.Context, argv ...string) ([]byte, error) {
	client, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	session, err := client.NewSession()
	if err != nil {
		// The connection went away: drop it and try once more.
		s.Close()
		if client, err = s.connect(ctx); err != nil {
			return nil, err
		}
		if session, err = client.NewSession(); err != nil {
			return nil, fmt.Errorf("ssh %s: session: %w", s.target.addr(), err)
		}
	}
	defer session.Close()
	var stdout, stderr bytes.Buffer
	session.Stdout, session.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	go func() { done <- session.Run(ShellCommand(argv)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = session.Signal(ssh.SIGKILL)
		session.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("%s on %s: %v: %s", argv[0], s.target.Host, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// Close closes the connection.
func (s *SSH) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		return nil
	}
	err := s.client.Close()
	s.client = nil
	return err
}
