// Package api is orch serve's HTTP API: the CLI's way in while serve holds
// the state file. It listens on a loopback address only, every request
// needs the bearer token, and the running serve writes its address and
// token to an endpoint file beside the state file (mode 0600) for the CLI
// to find.
package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// maxWait bounds a long poll for events.
const maxWait = 30 * time.Second

// Server serves the API over a manager.
type Server struct {
	Manager *orchestrator.Manager
	Token   string
	Log     *slog.Logger
	// Replicas, when this serve is one of several on an etcd store: a
	// request about a deployment another owns is forwarded to it with
	// Forward (default http.DefaultClient), waiting up to OwnerWait
	// (default DefaultOwnerWait) while nobody owns it.
	Replicas  Replicas
	Forward   *http.Client
	OwnerWait time.Duration

	// sessions are the console's logins; patterns the routes Handler
	// registered (for the test that every one is behind the token).
	sessions sessions
	patterns []string
}

// routeMux is a ServeMux that remembers its patterns.
type routeMux struct {
	*http.ServeMux
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, h)
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Error is the API's error body.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	// Diagnostics is set when Message is rendered blueprint diagnostics
	// (file:line:col with source lines), to be printed as they are.
	Diagnostics bool `json:"diagnostics,omitempty"`
	// Code is "not_found", "locked", "invalid", "unauthorized", "forbidden" or "internal".
	Code string `json:"code"`
}

func (e *Error) Error() string { return e.Message }

// DeployResponse is what POST /v1/deployments answers.
type DeployResponse struct {
	Deployment *orchestrator.Deployment `json:"deployment"`
	Execution  *workflows.Execution     `json:"execution"`
}

// UpdateResponse is a deployment update's plan and the execution carrying
// it out (none for a dry run, or when nothing changes).
type UpdateResponse struct {
	Update    *workflows.Update    `json:"update"`
	Execution *workflows.Execution `json:"execution,omitempty"`
}

// EventsResponse is a page of an execution's events.
type EventsResponse struct {
	Execution *workflows.Execution `json:"execution"`
	Events    []workflows.Event    `json:"events"`
}

// PauseRequest pauses or resumes a policy ("" for all of the deployment's).
type PauseRequest struct {
	Policy string          `json:"policy,omitempty"`
	Pause  *policies.Pause `json:"pause,omitempty"`
}

// Health is what GET /v1/health answers.
type Health struct {
	PID   int    `json:"pid"`
	State string `json:"state"`
}

// Handler returns the API's routes, all behind the token.
func (s *Server) Handler() http.Handler {
	if s.Log == nil {
		s.Log = slog.Default()
	}
	m := s.Manager
	mux := &routeMux{ServeMux: http.NewServeMux()}
	answer := func(fn func(r *http.Request) (any, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v, err := fn(r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(v); err != nil {
				s.Log.Debug("api: write response", "err", err)
			}
		}
	}
	handle := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, answer(fn))
	}
	// owned routes are about one deployment: its owner answers them.
	owned := func(pattern string, route routeFunc, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, s.routed(route, answer(fn)))
	}
	handle("GET /v1/health", func(r *http.Request) (any, error) {
		return Health{PID: os.Getpid(), State: m.Svc.Store.Path()}, nil
	})
	handle("GET /v1/deployments", func(r *http.Request) (any, error) {
		deps, err := m.Deployments(r.Context())
		if err == nil {
			deps, err = gather(s, r, deps, func(d *orchestrator.Deployment) string { return d.ID })
		}
		if deps == nil {
			deps = []*orchestrator.Deployment{}
		}
		return deps, err
	})
	owned("GET /v1/deployments/{id}", pathDeployment("id"), func(r *http.Request) (any, error) {
		return m.Deployment(r.Context(), r.PathValue("id"))
	})
	handle("POST /v1/deployments", func(r *http.Request) (any, error) {
		var req orchestrator.DeployRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		// serve reads only the blueprint's own directory tree for a client.
		if len(req.Paths) == 0 || !filepath.IsAbs(req.Paths[0]) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "paths: give the blueprint files as absolute paths"}
		}
		req.Root = filepath.Dir(req.Paths[0])
		d, x, err := m.Deploy(r.Context(), req)
		if err != nil {
			return nil, err
		}
		return DeployResponse{Deployment: d, Execution: x}, nil
	})
	owned("POST /v1/deployments/{id}/update", pathDeployment("id"), func(r *http.Request) (any, error) {
		var req orchestrator.UpdateRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if len(req.Paths) == 0 || !filepath.IsAbs(req.Paths[0]) {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "paths: give the blueprint files as absolute paths"}
		}
		req.ID = r.PathValue("id")
		req.Root = filepath.Dir(req.Paths[0])
		u, x, err := m.Update(r.Context(), req)
		if err != nil {
			return nil, err
		}
		return UpdateResponse{Update: u, Execution: x}, nil
	})
	owned("DELETE /v1/deployments/{id}", pathDeployment("id"), func(r *http.Request) (any, error) {
		return m.StartUndeploy(r.Context(), r.PathValue("id"))
	})
	handle("GET /v1/deployments/{id}/workflows", func(r *http.Request) (any, error) {
		return m.Svc.Workflows(r.Context(), r.PathValue("id"))
	})
	handle("GET /v1/executions", func(r *http.Request) (any, error) {
		xs, err := m.Svc.Store.Executions(r.Context(), r.URL.Query().Get("deployment"))
		if xs == nil {
			xs = []*workflows.Execution{}
		}
		return xs, err
	})
	handle("POST /v1/executions", func(r *http.Request) (any, error) {
		var req workflows.Request
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return m.Svc.Engine.Submit(r.Context(), req)
	})
	handle("GET /v1/executions/{id}", func(r *http.Request) (any, error) {
		return m.Svc.Store.Execution(r.Context(), r.PathValue("id"))
	})
	owned("POST /v1/executions/{id}/cancel", s.executionDeployment, func(r *http.Request) (any, error) {
		return m.Svc.Engine.Cancel(r.Context(), r.PathValue("id"))
	})
	owned("POST /v1/executions/{id}/resume", s.executionDeployment, func(r *http.Request) (any, error) {
		return m.Svc.Engine.ResumeExecution(r.Context(), r.PathValue("id"))
	})
	handle("GET /v1/executions/{id}/events", s.events)
	owned("GET /v1/policies", queryDeployment, func(r *http.Request) (any, error) {
		dep := r.URL.Query().Get("deployment")
		ps := m.Policies(dep)
		var err error
		if dep == "" {
			ps, err = gather(s, r, ps, func(p policies.PolicyStatus) string { return p.Deployment })
		}
		if ps == nil {
			ps = []policies.PolicyStatus{}
		}
		return ps, err
	})
	owned("POST /v1/policies/{deployment}/pause", pathDeployment("deployment"), func(r *http.Request) (any, error) {
		var req PauseRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if req.Pause == nil {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "pause: the request lacks the pause"}
		}
		return m.SetPause(r.Context(), r.PathValue("deployment"), req.Policy, req.Pause)
	})
	owned("POST /v1/policies/{deployment}/resume", pathDeployment("deployment"), func(r *http.Request) (any, error) {
		var req PauseRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return m.SetPause(r.Context(), r.PathValue("deployment"), req.Policy, nil)
	})
	mux.Handle("GET /metrics", m.Stats.Handler())
	s.consoleRoutes(mux)
	s.patterns = mux.patterns
	return s.auth(mux)
}

// events answers the events after ?after=SEQ; with ?wait=DURATION it
// waits (at most maxWait) until there are some or the execution has ended.
func (s *Server) events(r *http.Request) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: fmt.Sprintf("after %q: want a sequence number", v)}
		}
		after = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := blueprints.ParseDurationOrZero(v)
		if err != nil {
			return nil, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "wait: " + err.Error()}
		}
		wait = min(d, maxWait)
	}
	deadline := time.Now().Add(wait)
	for {
		// Events are buffered briefly before they are stored.
		if err := s.Manager.Svc.Engine.FlushEvents(ctx); err != nil {
			return nil, err
		}
		x, err := s.Manager.Svc.Store.Execution(ctx, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		evs, err := s.Manager.Svc.Store.Events(ctx, x.ID, after)
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 || x.Status.Ended() || !time.Now().Before(deadline) {
			if evs == nil {
				evs = []workflows.Event{}
			}
			return EventsResponse{Execution: x, Events: evs}, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "request body: " + err.Error()}
	}
	return nil
}

func (s *Server) auth(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if publicRoute(r) {
			next.ServeHTTP(w, r)
			return
		}
		if got := r.Header.Get("Authorization"); got != "" || s.Token == "" {
			if s.Token == "" || subtle.ConstantTimeCompare([]byte(got), want) != 1 {
				s.unauthorized(w, r)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if sess := s.sessions.get(r); sess != nil {
			// The console: a change needs the session's CSRF token, which
			// a page of another site cannot read.
			if r.Method != http.MethodGet && r.Method != http.MethodHead &&
				(subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(sess.csrf)) != 1 || !sameOrigin(r)) {
				s.writeError(w, r, &Error{Status: http.StatusForbidden, Code: "forbidden",
					Message: "a change made with the console's session needs its CSRF token (" + csrfHeader + ") from the console's own page"})
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if browserPage(r) {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		s.unauthorized(w, r)
	})
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="orch"`)
	s.writeError(w, r, &Error{Status: http.StatusUnauthorized, Code: "unauthorized",
		Message: "missing or wrong API token (the CLI reads it from the endpoint file orch serve writes beside the state file, or ORCH_API_TOKEN; the console logs in at /login)"})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var de *orchestrator.DiagnosticsError
	switch {
	case errors.As(err, &e):
	case errors.As(err, &de):
		e = &Error{Status: http.StatusBadRequest, Code: "invalid", Message: de.Error(), Diagnostics: true}
	case errors.Is(err, orchestrator.ErrNotFound):
		e = &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
	case errors.Is(err, context.Canceled):
		return // the client went away
	default:
		// Most errors are the request's (an unknown workflow, a bad
		// parameter, an ended execution): say what went wrong.
		e = &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: err.Error()}
	}
	if e.Status >= 500 {
		s.Log.Warn("api", "method", r.Method, "path", r.URL.Path, "err", e.Message)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(e)
}

// Listen listens on addr, which must be a loopback address: the API is for
// this machine only.
func Listen(addr string) (net.Listener, error) { return ListenTLS(addr, nil) }

// ListenTLS listens on addr: a loopback address, or with tc (TLS) any
// address; the API is never served in clear text beyond this machine.
func ListenTLS(addr string, tc *tls.Config) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("api address %q: %w", addr, err)
	}
	if host != "localhost" && tc == nil {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("api address %q: without TLS the API listens on a loopback address only (127.0.0.1, ::1 or localhost); give --tls-cert and --tls-key to listen on another", addr)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if tc != nil {
		return tls.NewListener(l, tc), nil
	}
	// "localhost" is trusted for what it turned out to be: the address
	// actually bound must be a loopback one.
	if tcp, ok := l.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		l.Close()
		return nil, fmt.Errorf("api address %q resolved to %s, which is not a loopback address; the API listens on loopback only", addr, l.Addr())
	}
	return l, nil
}
