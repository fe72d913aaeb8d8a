package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// Backend is where a CLI command acts: the state file itself (Local), or a
// running orch serve, which holds the state file, through its API
// (Remote). Both answer alike.
type Backend interface {
	Deployments(ctx context.Context) ([]*orchestrator.Deployment, error)
	Deployment(ctx context.Context, id string) (*orchestrator.Deployment, error)
	Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error)
	// Update plans a deployment update and submits its execution (none for
	// a dry run, or when nothing changes).
	Update(ctx context.Context, req orchestrator.UpdateRequest) (*workflows.Update, *workflows.Execution, error)
	// StartUndeploy submits uninstall; the deployment is deleted once it
	// has succeeded (by Wait, or by serve).
	StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error)
	Workflows(ctx context.Context, deployment string) ([]orchestrator.WorkflowInfo, error)
	Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error)
	Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error)
	Execution(ctx context.Context, id string) (*workflows.Execution, error)
	Cancel(ctx context.Context, id string) (*workflows.Execution, error)
	// Resume queues a failed or cancelled execution again (or runs one
	// a crash left queued), skipping the operations it did.
	Resume(ctx context.Context, id string) (*workflows.Execution, error)
	// Events returns the events after seq (waiting up to wait for some,
	// where the backend can) and the execution.
	Events(ctx context.Context, id string, after uint64, wait time.Duration) (*EventsResponse, error)
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

// Connect returns the backend for a state file: the running serve's API
// when there is one (ORCH_API_URL and ORCH_API_TOKEN, or the endpoint file
// beside the state file), otherwise local. onEvent prints an event as a
// remote Wait follows it.
func Connect(ctx context.Context, state string, local *Local, onEvent func(workflows.Event)) (Backend, error) {
	if u := os.Getenv("ORCH_API_URL"); u != "" {
		tok := os.Getenv("ORCH_API_TOKEN")
		if tok == "" {
			return nil, errors.New("ORCH_API_URL is set but ORCH_API_TOKEN is not")
		}
		c := NewClient(u, tok)
		if err := c.WithCA(os.Getenv("ORCH_API_CA")); err != nil {
			return nil, err
		}
		return &Remote{C: c, OnEvent: onEvent}, nil
	}
	ep, err := ReadEndpoint(EndpointPath(state))
	if err != nil {
		return local, nil
	}
	c := NewClient(ep.URL, ep.Token)
	if err := c.WithCA(ep.CA); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h, err := c.Health(hctx)
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return nil, fmt.Errorf("orch serve at %s refused the CLI: %w", ep.URL, err)
	case err != nil:
		// A serve that died without removing its endpoint file: the state
		// file is free again (or its lock says who holds it).
		local.log().Debug("stale endpoint file; using the state file", "file", EndpointPath(state), "err", err)
		return local, nil
	}
	if !sameFile(h.State, state) {
		return nil, fmt.Errorf("orch serve at %s serves state file %s, not %s", ep.URL, h.State, state)
	}
	return &Remote{C: c, OnEvent: onEvent}, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 == nil && err2 == nil {
		return os.SameFile(sa, sb)
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// Local acts on the state file: reads open it read-only for the read,
// changes open the service (and hold the file) until Close.
type Local struct {
	// Open opens the service over the state file, holding it.
	Open func() (*orchestrator.Service, func(), error)
	// OpenRead opens the state file read-only.
	OpenRead func() (orchestrator.StateStore, error)
	// Registry is the plugins a read-only service resolves with.
	Registry *plugins.Registry
	Log      *slog.Logger

	svc     *orchestrator.Service
	closeFn func()
}

func (l *Local) log() *slog.Logger {
	if l.Log == nil {
		return slog.Default()
	}
	return l.Log
}

func (l *Local) service() (*orchestrator.Service, error) {
	if l.svc == nil {
		svc, closeFn, err := l.Open()
		if err != nil {
			return nil, err
		}
		l.svc, l.closeFn = svc, closeFn
	}
	return l.svc, nil
}

func (l *Local) Close() {
	if l.closeFn != nil {
		l.closeFn()
	}
}

// read runs fn on the open service's store, or on the file opened
// read-only for it.
func (l *Local) read(fn func(orchestrator.StateStore) error) error {
	if l.svc != nil {
		return fn(l.svc.Store)
	}
	store, err := l.OpenRead()
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

func (l *Local) Deployments(ctx context.Context) (out []*orchestrator.Deployment, err error) {
	err = l.readService(func(s *orchestrator.Service) error { out, err = s.Deployments(ctx); return err })
	return out, err
}

func (l *Local) Deployment(ctx context.Context, id string) (out *orchestrator.Deployment, err error) {
	err = l.readService(func(s *orchestrator.Service) error { out, err = s.Deployment(ctx, id); return err })
	return out, err
}

// readService runs fn on the open service, or on a service over the file
// opened read-only for it.
func (l *Local) readService(fn func(*orchestrator.Service) error) error {
	if l.svc != nil {
		return fn(l.svc)
	}
	return l.read(func(s orchestrator.StateStore) error {
		return fn(orchestrator.NewService(s, l.Registry, l.log()))
	})
}

func (l *Local) Executions(ctx context.Context, dep string) (out []*workflows.Execution, err error) {
	err = l.read(func(s orchestrator.StateStore) error { out, err = s.Executions(ctx, dep); return err })
	return out, err
}

func (l *Local) Execution(ctx context.Context, id string) (out *workflows.Execution, err error) {
	err = l.read(func(s orchestrator.StateStore) error { out, err = s.Execution(ctx, id); return err })
	return out, err
}

func (l *Local) Events(ctx context.Context, id string, after uint64, _ time.Duration) (*EventsResponse, error) {
	out := &EventsResponse{}
	err := l.read(func(s orchestrator.StateStore) error {
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

func (l *Local) Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, nil, err
	}
	return svc.Deploy(ctx, req)
}

func (l *Local) Update(ctx context.Context, req orchestrator.UpdateRequest) (*workflows.Update, *workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, nil, err
	}
	return svc.Update(ctx, req)
}

func (l *Local) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.StartUndeploy(ctx, id)
}

func (l *Local) Workflows(ctx context.Context, dep string) ([]orchestrator.WorkflowInfo, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Workflows(ctx, dep)
}

func (l *Local) Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Engine.Submit(ctx, req)
}

func (l *Local) Cancel(ctx context.Context, id string) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Engine.Cancel(ctx, id)
}

func (l *Local) Resume(ctx context.Context, id string) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.Engine.ResumeExecution(ctx, id)
}

// Wait waits in this process: the engine prints the events as they
// happen. An undeploy's deployment is deleted here once it has succeeded.
func (l *Local) Wait(ctx context.Context, x *workflows.Execution) (*workflows.Execution, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if es, ok := svc.Store.(*orchestrator.EtcdStore); ok && !svc.Engine.Runs(x.Deployment) {
		// Replicas of serve run it: waiting ends if none is left.
		go watchReplicas(wctx, es, x, stop)
	}
	end, err := svc.Engine.Wait(wctx, x.ID)
	if cause := context.Cause(wctx); err != nil && errors.Is(cause, errNoReplica) {
		return nil, cause
	}
	if err != nil {
		return nil, err
	}
	if err := svc.Engine.FlushEvents(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	return end, svc.Ended(context.WithoutCancel(ctx), end)
}

var errNoReplica = errors.New("no replica of orch serve is left to run it")

// replicaCheck is how often a wait on a shared store checks that a
// replica is registered; two checks in a row finding none end it.
var replicaCheck = 2 * time.Second

// watchReplicas stops a wait (stop, with errNoReplica) when no replica of
// serve has been registered in the store for two checks in a row.
func watchReplicas(ctx context.Context, es *orchestrator.EtcdStore, x *workflows.Execution, stop context.CancelCauseFunc) {
	tick := time.NewTicker(replicaCheck)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		reps, err := es.Replicas(ctx)
		if err != nil || len(reps) > 0 {
			missed = 0
			continue
		}
		if missed++; missed >= 2 {
			stop(fmt.Errorf("execution %s of %s: %w (it waits, pending, for the deployment's next owner to run it: start orch serve, and follow it with orch events -e %s --follow)", x.ID, x.Deployment, errNoReplica, x.ID))
			return
		}
	}
}

func (l *Local) Policies(ctx context.Context, dep string) ([]policies.PolicyStatus, bool, error) {
	var out []policies.PolicyStatus
	err := l.readService(func(svc *orchestrator.Service) (err error) {
		out, err = svc.Policies(ctx, dep)
		return err
	})
	return out, false, err
}

func (l *Local) SetPause(ctx context.Context, dep, policy string, p *policies.Pause) ([]string, error) {
	svc, err := l.service()
	if err != nil {
		return nil, err
	}
	return svc.SetPause(ctx, dep, policy, p)
}

// Remote acts through a running orch serve.
type Remote struct {
	C *Client
	// OnEvent hears every event Wait follows (the CLI prints them).
	OnEvent func(workflows.Event)
}

func (r *Remote) Close() {}

func (r *Remote) Deployments(ctx context.Context) ([]*orchestrator.Deployment, error) {
	return r.C.Deployments(ctx)
}

func (r *Remote) Deployment(ctx context.Context, id string) (*orchestrator.Deployment, error) {
	return r.C.Deployment(ctx, id)
}

func (r *Remote) Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error) {
	if err := absolute(&req); err != nil {
		return nil, nil, err
	}
	return r.C.Deploy(ctx, req)
}

func (r *Remote) Update(ctx context.Context, req orchestrator.UpdateRequest) (*workflows.Update, *workflows.Execution, error) {
	if err := absolute(&req.DeployRequest); err != nil {
		return nil, nil, err
	}
	return r.C.Update(ctx, req)
}

// absolute makes a request's paths absolute: serve reads the files, on
// this machine but maybe elsewhere in it.
func absolute(req *orchestrator.DeployRequest) error {
	for i, p := range req.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return err
		}
		req.Paths[i] = abs
	}
	if req.InputsFile != "" {
		abs, err := filepath.Abs(req.InputsFile)
		if err != nil {
			return err
		}
		req.InputsFile = abs
	}
	return nil
}

func (r *Remote) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.C.StartUndeploy(ctx, id)
}

func (r *Remote) Workflows(ctx context.Context, dep string) ([]orchestrator.WorkflowInfo, error) {
	return r.C.Workflows(ctx, dep)
}

func (r *Remote) Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	return r.C.Submit(ctx, req)
}

func (r *Remote) Executions(ctx context.Context, dep string) ([]*workflows.Execution, error) {
	return r.C.Executions(ctx, dep)
}

func (r *Remote) Execution(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.C.Execution(ctx, id)
}

func (r *Remote) Cancel(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.C.Cancel(ctx, id)
}

func (r *Remote) Resume(ctx context.Context, id string) (*workflows.Execution, error) {
	return r.C.Resume(ctx, id)
}

func (r *Remote) Events(ctx context.Context, id string, after uint64, wait time.Duration) (*EventsResponse, error) {
	return r.C.Events(ctx, id, after, wait)
}

// Wait follows the execution's events with long polls until it ends. An
// undeploy's deployment is deleted by serve; Wait returns once it is gone.
func (r *Remote) Wait(ctx context.Context, x *workflows.Execution) (*workflows.Execution, error) {
	var after uint64
	for {
		page, err := r.C.Events(ctx, x.ID, after, 10*time.Second)
		if err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			if r.OnEvent != nil {
				r.OnEvent(ev)
			}
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

func (r *Remote) waitDeleted(ctx context.Context, id string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := r.C.Deployment(ctx, id); errors.Is(err, orchestrator.ErrNotFound) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *Remote) Policies(ctx context.Context, dep string) ([]policies.PolicyStatus, bool, error) {
	ps, err := r.C.Policies(ctx, dep)
	return ps, true, err
}

func (r *Remote) SetPause(ctx context.Context, dep, policy string, p *policies.Pause) ([]string, error) {
	return r.C.SetPause(ctx, dep, policy, p)
}
