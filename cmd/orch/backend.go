package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// backend is where a command acts: the state file itself, or a running
// orch serve (which holds the state file) through its API.
type backend interface {
	Deployments(ctx context.Context) ([]*orchestrator.Deployment, error)
	Deployment(ctx context.Context, id string) (*orchestrator.Deployment, error)
	Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error)
	// StartUndeploy submits uninstall; the deployment is deleted once it
	// has succeeded (by Wait, or by serve).
	StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error)
	Workflows(ctx context.Context, deployment string) ([]orchestrator.WorkflowInfo, error)
	Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error)
	Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error)
	Execution(ctx context.Context, id string) (*workflows.Execution, error)
	Cancel(ctx context.Context, id string) (*workflows.Execution, error)
	// Events returns the events after seq (waiting up to wait for some,
	// where the backend can) and the execution.
	Events(ctx context.Context, id string, after uint64, wait time.Duration) (*api.EventsResponse, error)
	// Wait waits for an execution to end, printing its events.
	Wait(ctx context.Context, x *workflows.Execution) (*workflows.Execution, error)
	// Policies returns the policies' state; live is true when it comes
	// from a running serve (with window values).
	Policies(ctx context.Context, deployment string) (ps []policies.PolicyStatus, live bool, err error)
	// SetPause pauses (p non-nil) or resumes a deployment's policy ("" for
	// all) and returns the policies changed.
	SetPause(ctx context.Context, deployment, policy string, p *policies.Pause) ([]string, error)
	Close()
}

// backend returns the running serve's API when there is one (ORCH_API_URL
// and ORCH_API_TOKEN, or the endpoint file beside the state file),
// otherwise the state file.
func (g *globals) backend(ctx context.Context) (backend, error) {
	if u := os.Getenv("ORCH_API_URL"); u != "" {
		tok := os.Getenv("ORCH_API_TOKEN")
		if tok == "" {
			return nil, errors.New("ORCH_API_URL is set but ORCH_API_TOKEN is not")
		}
		return &remote{g: g, c: api.NewClient(u, tok)}, nil
	}
	ep, err := api.ReadEndpoint(api.EndpointPath(g.state))
	if err != nil {
		return &local{g: g}, nil
	}
	c := api.NewClient(ep.URL, ep.Token)
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := c.Health(hctx)
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return nil, fmt.Errorf("orch serve at %s refused the CLI: %w", ep.URL, err)
	case err != nil:
		// A serve that died without removing its endpoint file: the state
		// file is free again (or its lock says who holds it).
		g.logger().Debug("stale endpoint file; using the state file", "file", api.EndpointPath(g.state), "err", err)
		return &local{g: g}, nil
	}
	if !sameFile(h.State, g.state) {
		return nil, fmt.Errorf("orch serve at %s serves state file %s, not %s", ep.URL, h.State, g.state)
	}
	return &remote{g: g, c: c}, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// withBackend runs fn on the backend and closes it.
func (g *globals) withBackend(ctx context.Context, fn func(backend) error) error {
	b, err := g.backend(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(b)
}

// local acts on the state file: reads open it read-only for the read,
// changes open the service (and hold the file) until Close.
type local struct {
	g       *globals
	svc     *orchestrator.Service
	closeFn func()
}

func (l *local) service() (*orchestrator.Service, error) {
	if l.svc == nil {
		svc, closeFn, err := l.g.service(true)
		if err != nil {
			return nil, err
		}
		l.svc, l.closeFn = svc, closeFn
	}
	return l.svc, nil
}

func (l *local) Close() {
	if l.closeFn != nil {
		l.closeFn()
	}
}

// read runs fn on the open service's store, or on the file opened
// read-only for it.
func (l *local) read(fn func(*orchestrator.Store) error) error {
	if l.svc != nil {
		return fn(l.svc.Store)
	}
	return l.g.withReadStore(fn)
}

func (l *local) Deployments(ctx context.Context) (out []*orchestrator.Deployment, err error) {
	err = l.readService(func(s *orchestrator.Service) error { out, err = s.Deployments(ctx); return err })
	return out, err
}

func (l *local) Deployment(ctx context.Context, id string) (out *orchestrator.Deployment, err error) {
	err = l.readService(func(s *orchestrator.Service) error { out, err = s.Deployment(ctx, id); return err })
	return out, err
}

// readService runs fn on the open service, or on a service over the file
// opened read-only for it.
func (l *local) readService(fn func(*orchestrator.Service) error) error {
	if l.svc != nil {
		return fn(l.svc)
	}
	return l.read(func(s *orchestrator.Store) error {
		reg, err := registry()
		if err != nil {
			return err
		}
		return fn(orchestrator.NewService(s, reg, l.g.logger()))
	})
}

func (l *local) Executions(ctx context.Context, dep string) (out []*workflows.Execution, err error) {
	err = l.read(func(s *orchestrator.Store) error { out, err = s.Executions(ctx, dep); return err })
	return out, err
}

func (l *local) Execution(ctx context.Context, id string) (out *workflows.Execution, err error) {
	err = l.read(func(s *orchestrator.Store) error { out, err = s.Execution(ctx, id); return err })
	return out, err
}

func (l *local) Events(ctx context.Context, id string, after uint64, _ time.Duration) (*api.EventsResponse, error) {
	out := &api.EventsResponse{}
	err := l.read(func(s *orchestrator.Store) error {
		x, err := s.Execution(ctx, id)
		if err != nil {
			return err
		}
		out.Execution = x
		out.Events, err = s.Events(ctx, x.ID, after)
		return err
	})
	return out, err
}

func (l *local) Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, nil, err
	}
	return svc.Deploy(ctx, req)
}

func (l *local) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.StartUndeploy(ctx, id)
}

func (l *local) Workflows(ctx context.Context, dep string) ([]orchestrator.WorkflowInfo, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Workflows(ctx, dep)
}

func (l *local) Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Engine.Submit(ctx, req)
}

func (l *local) Cancel(ctx context.Context, id string) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Engine.Cancel(ctx, id)
}

// Wait waits in this process: the engine prints the events as they
// happen. An undeploy's deployment is deleted here once it has succeeded.
func (l *local) Wait(ctx context.Context, x *workflows.Execution) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	end, err := svc.Engine.Wait(ctx, x.ID)
	if err != nil {
		return nil, err
	}
	if err := svc.Engine.FlushEvents(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	if end.Workflow == workflows.Uninstall && end.Status == workflows.Succeeded {
		if err := svc.Store.DeleteDeployment(context.WithoutCancel(ctx), end.Deployment); err != nil && !errors.Is(err, orchestrator.ErrNotFound) {
			return end, err
		}
	}
	return end, nil
}

func (l *local) Policies(ctx context.Context, dep string) ([]policies.PolicyStatus, bool, error) {
	var out []policies.PolicyStatus
	err := l.readService(func(svc *orchestrator.Service) (err error) {
		out, err = svc.Policies(ctx, dep)
		return err
	})
	return out, false, err
}

func (l *local) SetPause(ctx context.Context, dep, policy string, p *policies.Pause) ([]string, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.SetPause(ctx, dep, policy, p)
}

// remote acts through a running orch serve.
type remote struct {
	g *globals
	c *api.Client
}

func (r *remote) Close() {}

func (r *remote) Deployments(ctx context.Context) ([]*orchestrator.Deployment, error) {
	return r.c.Deployments(ctx)
}

func (r *remote) Deployment(ctx context.Context, id string) (*orchestrator.Deployment, error) {
	return r.c.Deployment(ctx, id)
}

func (r *remote) Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error) {
	// serve reads the files: it runs on this machine, maybe elsewhere in it.
	for i, p := range req.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, err
		}
		req.Paths[i] = abs
	}
	if req.InputsFile != "" {
		abs, err := filepath.Abs(req.InputsFile)
		if err != nil {
			return nil, nil, err
		}
		req.InputsFile = abs
	}
	return r.c.Deploy(ctx, req)
}

func (r *remote) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.c.StartUndeploy(ctx, id)
}

func (r *remote) Workflows(ctx context.Context, dep string) ([]orchestrator.WorkflowInfo, error) {
	return r.c.Workflows(ctx, dep)
}

func (r *remote) Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	return r.c.Submit(ctx, req)
}

func (r *remote) Executions(ctx context.Context, dep string) ([]*workflows.Execution, error) {
	return r.c.Executions(ctx, dep)
}

func (r *remote) Execution(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.c.Execution(ctx, id)
}

func (r *remote) Cancel(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.c.Cancel(ctx, id)
}

func (r *remote) Events(ctx context.Context, id string, after uint64, wait time.Duration) (*api.EventsResponse, error) {
	return r.c.Events(ctx, id, after, wait)
}

// Wait follows the execution's events with long polls until it ends. An
// undeploy's deployment is deleted by serve; Wait returns once it is gone.
func (r *remote) Wait(ctx context.Context, x *workflows.Execution) (*workflows.Execution, error) {
	var after uint64
	for {
		page, err := r.c.Events(ctx, x.ID, after, 10*time.Second)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			r.g.printEvent(ev)
			after = ev.Seq
		}
		if page.Execution.Status.Ended() && len(page.Events) == 0 {
			end := page.Execution
			if end.Workflow == workflows.Uninstall && end.Status == workflows.Succeeded {
				r.waitDeleted(ctx, end.Deployment)
			}
			return end, nil
		}
	}
}

func (r *remote) waitDeleted(ctx context.Context, id string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := r.c.Deployment(ctx, id); errors.Is(err, orchestrator.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *remote) Policies(ctx context.Context, dep string) ([]policies.PolicyStatus, bool, error) {
	ps, err := r.c.Policies(ctx, dep)
	return ps, true, err
}

func (r *remote) SetPause(ctx context.Context, dep, policy string, p *policies.Pause) ([]string, error) {
	return r.c.SetPause(ctx, dep, policy, p)
}
