package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/orchhq/orch/orchestrator"
)

// Replicas of orch serve share one etcd store and answer the same API: a
// request about a deployment another replica owns (its policies live in
// that replica's memory, its executions run there) is forwarded to the
// owner's advertised API with the caller's token, which every replica
// shares (--api-token-file). A forwarded request carries forwardedBy; a
// replica that gets one for a deployment it does not own (ownership moved
// on the way) answers 503 with movingHeader instead of forwarding again,
// and the first replica looks the owner up again. While nobody owns the
// deployment (its owner died and its lease has not expired yet), the
// request waits up to OwnerWait for the next owner. Lists (deployments,
// policies) are gathered from every replica, each answering for what it
// owns.

// Replicas is what the API needs of this serve's membership of the
// replicas (orchestrator.Replica).
type Replicas interface {
	ID() string
	// Serves: this replica owns the deployment and has taken it up.
	Serves(deployment string) bool
	Owner(ctx context.Context, deployment string) (orchestrator.ReplicaInfo, bool, error)
	Peers(ctx context.Context) ([]orchestrator.ReplicaStatus, error)
}

const (
	forwardedBy  = "X-Orch-Forwarded-By"
	movingHeader = "X-Orch-Moving"
)

// DefaultOwnerWait is how long a request about a deployment nobody owns
// waits for an owner: a dead owner's lease (10 s by default) and the
// next owner's claim.
const DefaultOwnerWait = 20 * time.Second

// routeFunc names the deployment a request is about ("" for none).
type routeFunc func(r *http.Request) (string, error)

func pathDeployment(name string) routeFunc {
	return func(r *http.Request) (string, error) { return r.PathValue(name), nil }
}

// queryDeployment is ?deployment= ("" for all: a list gathered from
// every replica).
func queryDeployment(r *http.Request) (string, error) { return r.URL.Query().Get("deployment"), nil }

// executionDeployment is the deployment of the execution in the path.
func (s *Server) executionDeployment(r *http.Request) (string, error) {
	x, err := s.Manager.Svc.Store.Execution(r.Context(), r.PathValue("id"))
	if err != nil {
		return "", err
	}
	return x.Deployment, nil
}

// routed serves h here when this serve owns the request's deployment (or
// is no replica), and forwards it to the owner otherwise.
func (s *Server) routed(route routeFunc, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Replicas == nil {
			h(w, r)
			return
		}
		dep, err := route(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if dep == "" || s.Replicas.Serves(dep) {
			h(w, r)
			return
		}
		if by := r.Header.Get(forwardedBy); by != "" {
			w.Header().Set(movingHeader, "1")
			w.Header().Set("Retry-After", "1")
			s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: "moving",
				Message: fmt.Sprintf("replica %s does not own deployment %s (any more): it is moving", s.Replicas.ID(), dep)})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			s.writeError(w, r, &Error{Status: http.StatusBadRequest, Code: "invalid", Message: "request body: " + err.Error()})
			return
		}
		ctx := r.Context()
		deadline := time.Now().Add(cmp.Or(s.OwnerWait, DefaultOwnerWait))
		why := "nobody owns it"
		for {
			if s.Replicas.Serves(dep) {
				r.Body = io.NopCloser(bytes.NewReader(body))
				h(w, r)
				return
			}
			owner, ok, err := s.Replicas.Owner(ctx, dep)
			switch {
			case err != nil:
				why = err.Error()
			case !ok:
				why = "nobody owns it"
				if _, err := s.Manager.Svc.Store.Deployment(ctx, dep); errors.Is(err, orchestrator.ErrNotFound) {
					// No such deployment: the handler says so.
					r.Body = io.NopCloser(bytes.NewReader(body))
					h(w, r)
					return
				}
			case owner.ID == s.Replicas.ID():
				why = "this replica is taking it up"
			case owner.API == "":
				why = fmt.Sprintf("its owner %s has not advertised its API yet", owner.ID)
			default:
				done, ferr := s.forward(w, r, body, owner)
				if done {
					return
				}
				why = ferr.Error()
			}
			if !time.Now().Before(deadline) {
				w.Header().Set("Retry-After", "1")
				s.writeError(w, r, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
					Message: fmt.Sprintf("deployment %s: no replica answers for it now (%s); try again", dep, why)})
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// forward sends the request to the owner and copies its answer; done is
// false (and nothing written) when the owner did not answer or answered
// that it no longer owns the deployment.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, body []byte, owner orchestrator.ReplicaInfo) (done bool, err error) {
	resp, err := s.ask(r.Context(), r, r.Method, r.URL.RequestURI(), body, owner)
	if err != nil {
		var op *net.OpError
		if r.Method != http.MethodGet && !(errors.As(err, &op) && op.Op == "dial") {
			// The owner may have acted on it before the answer was lost:
			// a change is not sent twice.
			s.writeError(w, r, &Error{Status: http.StatusBadGateway, Code: "unavailable",
				Message: fmt.Sprintf("replica %s, which owns the deployment, did not answer (%v); the request may have been carried out: check before trying again", owner.ID, err)})
			return true, nil
		}
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(movingHeader) != "" {
		return false, fmt.Errorf("replica %s no longer owns it", owner.ID)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		s.writeError(w, r, &Error{Status: http.StatusBadGateway, Code: "unauthorized",
			Message: fmt.Sprintf("replica %s, which owns the deployment, refused this replica's token: give every replica the same --api-token-file", owner.ID)})
		return true, nil
	}
	for _, h := range []string{"Content-Type", "Retry-After"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		s.Log.Debug("api: forward the answer", "replica", owner.ID, "err", err)
	}
	return true, nil
}

// ask sends a request to another replica as this one, with the caller's
// token.
func (s *Server) ask(ctx context.Context, r *http.Request, method, uri string, body []byte, to orchestrator.ReplicaInfo) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, to.API+uri, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"Content-Type", "Accept"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	// Authenticated here (by the token or a console session): the replicas
	// share the token.
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set(forwardedBy, s.Replicas.ID())
	c := s.Forward
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("replica %s at %s: %w", to.ID, to.API, err)
	}
	return resp, nil
}

// gather completes a list this replica made (local) with what every other
// replica says of the deployments it owns: an entry of a deployment owned
// by another replica is taken from that replica's answer; one of a
// deployment nobody owns now, or that its owner did not list, stays as
// this replica has it. The list is sorted by deployment.
func gather[T any](s *Server, r *http.Request, local []T, deployment func(T) string) ([]T, error) {
	if s.Replicas == nil || r.Header.Get(forwardedBy) != "" {
		return local, nil
	}
	ctx := r.Context()
	peers, err := s.Replicas.Peers(ctx)
	if err != nil {
		return nil, err
	}
	owner := map[string]string{}
	for _, p := range peers {
		for _, d := range p.Deployments {
			owner[d] = p.ID
		}
	}
	self := s.Replicas.ID()
	var out []T
	answered := map[string]bool{} // deployments an owner answered for
	for _, p := range peers {
		if p.ID == self || len(p.Deployments) == 0 {
			continue
		}
		theirs, err := askList[T](s, r, p.ReplicaInfo)
		if err != nil {
			return nil, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
				Message: fmt.Sprintf("replica %s, owner of %d deployment(s), did not answer (they move to the others when its lease expires; try again): %v", p.ID, len(p.Deployments), err)}
		}
		for _, v := range theirs {
			if d := deployment(v); owner[d] == p.ID {
				out = append(out, v)
				answered[d] = true
			}
		}
	}
	// This replica's own, those nobody owns now, and those whose owner
	// did not list them (it is handing them over): as this one has them.
	for _, v := range local {
		if o := owner[deployment(v)]; o == "" || o == self || !answered[deployment(v)] {
			out = append(out, v)
		}
	}
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(deployment(a), deployment(b)) })
	return out, nil
}

func askList[T any](s *Server, r *http.Request, to orchestrator.ReplicaInfo) ([]T, error) {
	if to.API == "" {
		return nil, errors.New("it has not advertised its API yet")
	}
	resp, err := s.ask(r.Context(), r, http.MethodGet, r.URL.RequestURI(), nil, to)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e Error
		_ = json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(&e)
		return nil, fmt.Errorf("%s: %s", resp.Status, e.Message)
	}
	var list []T
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("its answer: %w", err)
	}
	return list, nil
}
