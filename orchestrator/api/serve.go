package api

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	srv := newHTTPServer((&Server{Manager: m, Token: token, Log: cfg.Log}).Handler(), serveTimeouts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(listener) }()
	// The endpoint file is for this machine: an API bound to every
	// address is reached on loopback.
	addr := listener.Addr().String()
	if tcp, ok := listener.Addr().(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
	}
	url := "http://" + addr
	if tc != nil {
		url = "https://" + addr
	}
	endpoint := EndpointPath(cfg.State)
	ca := ""
	if tc != nil {
		ca = cfg.TLSCert
	}
	if err := WriteEndpoint(endpoint, Endpoint{URL: url, Token: token, PID: os.Getpid(), CA: ca}); err != nil {
		_ = srv.Close()
		return err
	}
	defer os.Remove(endpoint)
	broken := ""
	if n := m.BrokenCount(); n > 0 {
		broken = fmt.Sprintf(" (%d broken: orch deployments list says why)", n)
	}
	fmt.Fprintf(out, "orch serve: %d deployment(s)%s, %d policies, consuming %s on %s; API on %s (token in %s)\n",
		deps, broken, pols, cmp.Or(m.Intake.Exchange, policies.DefaultExchange), m.Intake.Queue, url, endpoint)

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
	return runErr
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
