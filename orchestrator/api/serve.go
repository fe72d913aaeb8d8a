package api

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
)

// ServeConfig is what orch serve runs with, beside the manager's own
// configuration.
type ServeConfig struct {
	// Addr is the API's address (port 0: any free port): loopback, or any
	// with TLSCert and TLSKey (PEM files), then served over TLS only.
	Addr            string
	TLSCert, TLSKey string
	// TokenFile holds the API token; "" makes a new random one each start.
	TokenFile string
	// State is the state file: the endpoint file goes beside it.
	State string
	// Advertise is the URL the other replicas reach this one's API at
	// (default the address listened on; the host name for an unspecified
	// address).
	Advertise string
	// Drain is how long to wait for running executions on shutdown.
	Drain time.Duration
	// Out hears the start and stop lines (nil: none).
	Out io.Writer
	Log *slog.Logger
}

// Serve is orch serve's life: it listens on the loopback address, loads
// the stored deployments into the manager, serves the API, writes the
// endpoint file (address and token, mode 0600), and runs the manager until
// ctx is done. Then, in this order: the intake stops (applied messages are
// acknowledged, the rest go back to the broker), the endpoint file is
// removed, the API shuts down, and running executions get cfg.Drain to
// end. It returns the manager's error, or one that kept it from starting.
func Serve(ctx context.Context, m *orchestrator.Manager, cfg ServeConfig) error {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	token, err := readToken(cfg.TokenFile)
	if err != nil {
		return err
	}
	var tc *tls.Config
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("api TLS: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	listener, err := ListenTLS(cfg.Addr, tc)
	if err != nil {
		return err
	}
	defer listener.Close()
	deps, pols, err := m.Load(ctx)
	if err != nil {
		return err
	}
	server := &Server{Manager: m, Token: token, Log: cfg.Log}
	if r := m.Replica(); r != nil {
		advertise, err := advertiseURL(cfg.Advertise, listener.Addr(), tc != nil)
		if err != nil {
			return err
		}
		if err := r.Advertise(ctx, advertise); err != nil {
			return err
		}
		if u, err := url.Parse(advertise); err == nil {
			if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && ip.IsLoopback() {
				cfg.Log.Warn("this replica's API is advertised on loopback: only replicas on this machine can forward to it (give --advertise-url and a routable --api-addr with TLS)", "advertise", advertise)
			}
		}
		server.Replicas = serving{r, m}
		server.Forward, err = forwardClient(tc, cfg.TLSCert)
		if err != nil {
			return err
		}
	}
	srv := newHTTPServer(server.Handler(), serveTimeouts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	// The endpoint file is for this machine: an API bound to every
	// address is reached on loopback.
	addr := listener.Addr().String()
	if tcp, ok := listener.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	apiURL := "http://" + addr
	if tc != nil {
		apiURL = "https://" + addr
	}
	endpoint := EndpointPath(cfg.State)
	ca := ""
	if tc != nil {
		ca = cfg.TLSCert
	}
	if err := WriteEndpoint(endpoint, Endpoint{URL: apiURL, Token: token, PID: os.Getpid(), CA: ca}); err != nil {
		_ = srv.Close()
		return err
	}
	defer os.Remove(endpoint)
	broken := ""
	if n := m.BrokenCount(); n > 0 {
		broken = fmt.Sprintf(" (%d broken: orch deployments list says why)", n)
	}
	fmt.Fprintf(out, "orch serve: %d deployment(s)%s, %d policies, consuming %s on %s; API on %s (token in %s)\n",
		deps, broken, pols, cmp.Or(m.Intake.Exchange, policies.DefaultExchange), m.Intake.Queue, apiURL, endpoint)

	runErr := m.Run(ctx)
	fmt.Fprintln(out, "orch serve: stopping; waiting for running executions")
	os.Remove(endpoint)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		cfg.Log.Warn("api", "err", err)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Drain)
	defer cancel()
	if err := m.Close(dctx); err != nil {
		cfg.Log.Warn("shutdown", "err", err)
	}
	if r := m.Replica(); r != nil {
		fmt.Fprintf(out, "orch serve: replica %s stopped; %d writes refused (fenced)\n", r.ID(), m.FencedWrites())
	}
	return runErr
}

// serving is a replica that serves a deployment once its manager has
// taken it up.
type serving struct {
	*orchestrator.Replica
	m *orchestrator.Manager
}

func (s serving) Serves(deployment string) bool { return s.m.Serves(deployment) }

// advertiseURL is the URL given, or the listener's.
func advertiseURL(given string, addr net.Addr, tls bool) (string, error) {
	if given != "" {
		u, err := url.Parse(given)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return "", fmt.Errorf("advertise URL %q: want http(s)://HOST:PORT", given)
		}
		if tls && u.Scheme != "https" {
			return "", fmt.Errorf("advertise URL %q: the API is served over TLS: want https://", given)
		}
		return strings.TrimSuffix(given, "/"), nil
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host := addr.String()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		name, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("advertise URL: %w (give --advertise-url)", err)
		}
		host = net.JoinHostPort(name, strconv.Itoa(tcp.Port))
	}
	return scheme + "://" + host, nil
}

// forwardClient is what a replica forwards requests to another with: over
// TLS it trusts the system's roots and the replica's own certificate
// (replicas sharing one certificate, or one self-signed CA's).
func forwardClient(tc *tls.Config, certFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if tc != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("api TLS: %w", err)
		}
		pool.AppendCertsFromPEM(pem)
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: maxWait + 30*time.Second}, nil
}

// timeouts bound the API's connections.
type timeouts struct{ header, read, write, idle time.Duration }

// serveTimeouts: headers, body, the answer (a long poll answers within
// maxWait), and idle keep-alives.
var serveTimeouts = timeouts{header: 10 * time.Second, read: 30 * time.Second, write: maxWait + 30*time.Second, idle: 2 * time.Minute}

// newHTTPServer is the API's server: every connection bounded in time,
// headers in size, so a client that opens connections and says nothing
// (or dribbles) holds none for long.
func newHTTPServer(h http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.read,
		WriteTimeout:      t.write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
	}
}

// readToken reads the token file, or makes a new token.
func readToken(file string) (string, error) {
	if file == "" {
		return NewToken()
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("api token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 16 {
		return "", fmt.Errorf("api token in %s: want at least 16 characters", file)
	}
	return tok, nil
}
