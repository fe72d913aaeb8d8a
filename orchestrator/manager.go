package orchestrator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// ManagerConfig configures the long-running manager (orch serve).
type ManagerConfig struct {
	AMQPURL  string
	Exchange string // default policies.DefaultExchange
	Queue    string // durable queue of this instance
	Prefetch int
	// DeadLetter is the exchange malformed messages are rejected to.
	DeadLetter string
	// DryRun evaluates and records decisions, queues no workflow.
	DryRun bool
	// MaxClockSkew refuses (as malformed, counted and logged) a metric
	// whose time is further ahead of this host's clock; 0: no limit.
	MaxClockSkew time.Duration
	// Retention is how long ended executions (and their events) are kept;
	// they are pruned when serve starts and every hour. 0: forever.
	Retention time.Duration
	// Mesh, when set, is polled every MeshInterval for the metrics (rps,
	// latency_p50) of every kubernetes.app node a policy targets.
	Mesh         policies.ServiceMetricsSource
	MeshInterval time.Duration
	// Nodes watches what orch.node_changes policies target (a plugin that
	// knows those nodes); nil: such policies only fire when something else
	// applies the metric.
	Nodes plugins.NodeWatcher
	// Services names the mesh service of a node a policy targets, for Mesh
	// (a plugin that knows those nodes).
	Services plugins.ServiceLocator
	// OnTrigger observes every trigger.
	OnTrigger func(deployment, policy string, t policies.Trigger)
	Log       *slog.Logger
	// Replica, when set, is this serve's membership of the replicas of an
	// etcd store: it evaluates and runs only the deployments it owns,
	// taking them up (their interrupted executions recovered) and
	// dropping them as ownership moves.
	Replica *Replica
	// ReconcileInterval is how often a replica checks ownership besides
	// on every change (default a third of its lease's TTL).
	ReconcileInterval time.Duration
	// Heartbeat is the AMQP heartbeat (default 10s). A replica's is
	// shorter than its lease, so that the broker gives a paused replica's
	// queues to their new owner soon after its lease expires.
	Heartbeat time.Duration
}

// nodeWatch is one node an orch.node_changes policy of a deployment
// watches.
type nodeWatch struct {
	node plugins.NodeInfo
	w    plugins.NodeWatch
}

// Manager is orch serve: the metric intake and pollers feed the policy
// runner, whose triggers queue workflows on the service's engine.
// Deployments created or removed through it start or stop being evaluated
// at once.
type Manager struct {
	Svc    *Service
	Runner *policies.Runner
	Intake *policies.Intake
	Poller *policies.Poller // nil without a mesh source
	Stats  *ServeStats
	cfg    ManagerConfig
	log    *slog.Logger

	mu      sync.Mutex
	broken  map[string]error                    // deployments whose policies do not run, and why
	served  map[string]bool                     // a replica's deployments taken up (follow)
	polled  map[string][]policies.PolledService // by deployment
	watches map[string]context.CancelFunc       // by deployment
	pending map[string][]nodeWatch              // watches waiting for Run
	// pendingSources are the pollers of a deployment's `source` blocks
	// waiting for Run (once started, watches cancels them too).
	pendingSources map[string][]poller
	polledCopy     *polledCopy // nil without a broker
	// sourceCounts count the polls of every deployment's source blocks.
	sourceCounts policies.PollCounters
	runCtx       context.Context // set while Run runs
	undeploy     sync.WaitGroup
}

// engineQueue queues workflows on the engine for the policy runner.
type engineQueue struct{ engine *workflows.Engine }

func (q engineQueue) Queue(ctx context.Context, deployment, workflow string, params map[string]cty.Value) (string, error) {
	x, err := q.engine.Submit(ctx, workflows.Request{Deployment: deployment, Workflow: workflow, Values: params})
	if err != nil {
		return "", err
	}
	return x.ID, nil
}

// NewExecutionID is the id a firing's execution takes.
func (q engineQueue) NewExecutionID() string { return workflows.NewID() }

// QueueStoring queues a firing's workflow with its policy state, in one
// transaction.
func (q engineQueue) QueueStoring(ctx context.Context, deployment, workflow string, params map[string]cty.Value, id, key string, state any) error {
	_, err := q.engine.Submit(ctx, workflows.Request{Deployment: deployment, Workflow: workflow, Values: params, ID: id,
		With: &workflows.Record{Key: key, Value: state}})
	return err
}

// Waiting returns an execution of workflow that waits to start (pending or
// queued) in deployment, or "".
func (q engineQueue) Waiting(ctx context.Context, deployment, workflow string) (string, error) {
	return q.engine.Waiting(ctx, deployment, workflow)
}

// NewManager builds the manager over a service. stats may be nil; pass the
// one whose ObserveEvent the service's engine calls to count executions.
func NewManager(svc *Service, cfg ManagerConfig, stats *ServeStats) *Manager {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if stats == nil {
		stats = NewServeStats()
	}
	pipeline := policies.NewPipeline(3600)
	pipeline.MaxSkew = cfg.MaxClockSkew.Seconds()
	runner := policies.NewRunner(pipeline, engineQueue{svc.Engine}, svc.Store)
	runner.DryRun, runner.Log = cfg.DryRun, cfg.Log
	runner.OnTrigger = cfg.OnTrigger
	m := &Manager{Svc: svc, Runner: runner, Stats: stats, cfg: cfg, log: cfg.Log, polled: map[string][]policies.PolledService{}, broken: map[string]error{}, served: map[string]bool{},
		watches: map[string]context.CancelFunc{}, pending: map[string][]nodeWatch{},
		pendingSources: map[string][]poller{}, polledCopy: newPolledCopy(cfg.AMQPURL, cfg.Exchange, cfg.Log)}
	m.Intake = &policies.Intake{URL: cfg.AMQPURL, Exchange: cfg.Exchange, Queue: cfg.Queue, Prefetch: cfg.Prefetch,
		DeadLetter: cfg.DeadLetter, Log: cfg.Log, Sink: runner, Heartbeat: cfg.Heartbeat}
	if cfg.Replica != nil {
		// Each deployment's metrics come from a queue of its own, consumed
		// by its owner (policies/intake_owned.go).
		m.Intake.Owner = cfg.Replica
		// A deployment moving to another replica waits for its running
		// execution, so the next owner never recovers one still running.
		cfg.Replica.HoldHandOvers(func(dep string) bool { return svc.Engine.Running(dep) != "" })
	}
	if cfg.Mesh != nil {
		m.Poller = &policies.Poller{Source: cfg.Mesh, Services: m.polledServices, Sink: runner, Interval: cfg.MeshInterval, Log: cfg.Log,
			Copy: m.copier()}
	}
	stats.register(m)
	return m
}

// Load resumes what a crash left and starts evaluating every stored
// deployment's policies. It returns the numbers of deployments and policies.
// A deployment whose stored blueprint no longer resolves or whose policies
// no longer compile is marked broken (Broken, the log, /metrics) and the
// others run: one bad deployment never keeps serve from starting.
func (m *Manager) Load(ctx context.Context) (deployments, policyCount int, err error) {
	if m.cfg.Replica != nil {
		// A replica takes up the deployments it comes to own (Run).
		return 0, 0, nil
	}
	if err := m.Svc.Engine.Resume(ctx); err != nil {
		return 0, 0, err
	}
	deps, err := m.Svc.Store.Deployments(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, d := range deps {
		n, err := m.load(ctx, d.ID)
		if err != nil {
			m.setBroken(d.ID, err)
			continue
		}
		policyCount += n
	}
	return len(deps), policyCount, nil
}

// load starts evaluating a stored deployment's policies and returns how
// many there are.
func (m *Manager) load(ctx context.Context, id string) (int, error) {
	t, err := m.Svc.Target(ctx, id)
	if err != nil {
		return 0, err
	}
	if err := m.Svc.PolicyProblem(ctx, id); err != nil {
		return 0, err
	}
	if err := m.add(ctx, id, t.Plan); err != nil {
		return 0, err
	}
	return len(t.Plan.Policies), nil
}

// setBroken records a deployment whose policies do not run, and logs why.
func (m *Manager) setBroken(id string, err error) {
	m.mu.Lock()
	m.broken[id] = err
	m.mu.Unlock()
	m.log.Error("deployment broken: its policies do not run; fix its blueprint and deploy it again", "deployment", id, "err", err)
}

// Broken returns why a deployment's policies do not run, or nil.
func (m *Manager) Broken(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.broken[id]
}

// Deployments lists the stored deployments, each marked broken when its
// policies do not run.
func (m *Manager) Deployments(ctx context.Context) ([]*Deployment, error) {
	deps, err := m.Svc.Store.Deployments(ctx)
	for _, d := range deps {
		m.annotate(ctx, d)
	}
	return deps, err
}

// Deployment returns a stored deployment, marked broken when its policies
// do not run.
func (m *Manager) Deployment(ctx context.Context, id string) (*Deployment, error) {
	d, err := m.Svc.Store.Deployment(ctx, id)
	if err == nil {
		m.annotate(ctx, d)
	}
	return d, err
}

func (m *Manager) annotate(ctx context.Context, d *Deployment) {
	m.Svc.annotate(ctx, d, m.Broken(d.ID))
}

// Replica is this serve's membership of the replicas (nil for one process
// on its own store).
func (m *Manager) Replica() *Replica { return m.cfg.Replica }

// FencedWrites counts a replica's writes refused because it did not own
// the deployment (any more).
func (m *Manager) FencedWrites() int64 {
	if f, ok := m.Svc.Store.(*FencedStore); ok {
		return f.Refused.Load()
	}
	return 0
}

// Serves reports whether this serve answers for a deployment: always for
// one process; for a replica, once it owns the deployment and has taken it
// up (its executions recovered, its policies loaded).
func (m *Manager) Serves(deployment string) bool {
	r := m.cfg.Replica
	if r == nil {
		return true
	}
	m.mu.Lock()
	taken := m.served[deployment]
	m.mu.Unlock()
	return taken && r.Owns(deployment)
}

func (m *Manager) setServed(deployment string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.served[deployment] = true
	} else {
		delete(m.served, deployment)
	}
}

// BrokenCount is the number of deployments whose policies do not run.
func (m *Manager) BrokenCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.broken)
}

func (m *Manager) add(ctx context.Context, id string, plan *blueprints.Plan) error {
	if err := m.Runner.AddDeployment(ctx, id, plan); err != nil {
		return err
	}
	watches, err := m.nodeWatches(plan)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", id, err)
	}
	pollers, err := m.sourcePollers(id, plan)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polled[id] = m.meshServices(id, plan)
	m.stopWatchLocked(id)
	if len(watches) > 0 && m.cfg.Nodes != nil {
		m.pending[id] = watches
	}
	if len(pollers) > 0 {
		m.pendingSources[id] = pollers
	}
	if m.runCtx != nil {
		m.startWatchesLocked(m.runCtx)
	}
	return nil
}

func (m *Manager) remove(id string) {
	m.Runner.RemoveDeployment(id)
	m.mu.Lock()
	delete(m.broken, id)
	delete(m.polled, id)
	m.stopWatchLocked(id)
	m.mu.Unlock()
}

func (m *Manager) stopWatchLocked(id string) {
	if cancel := m.watches[id]; cancel != nil {
		cancel()
	}
	delete(m.watches, id)
	delete(m.pending, id)
	delete(m.pendingSources, id)
}

// startWatchesLocked starts the pending node watches and source pollers
// under ctx, each deployment's under a context of its own (stopWatchLocked
// cancels it).
func (m *Manager) startWatchesLocked(ctx context.Context) {
	started := map[string]bool{}
	start := func(id string) {
		if started[id] {
			return
		}
		started[id] = true
		wctx, cancel := context.WithCancel(ctx)
		m.watches[id] = cancel
		for _, p := range m.pendingSources[id] {
			go p.Run(wctx)
		}
		m.startNodeWatches(wctx, id, m.pending[id])
	}
	for id := range m.pendingSources {
		start(id)
	}
	for id := range m.pending {
		start(id)
	}
	clear(m.pendingSources)
	clear(m.pending)
}

// startNodeWatches starts a deployment's node watches under wctx.
func (m *Manager) startNodeWatches(wctx context.Context, id string, ws []nodeWatch) {
	for _, w := range ws {
		go func() {
			changed := func() {
				now := policies.Seconds(time.Now())
				node := w.node.Name
				nodeID := cmp.Or(m.instanceOf(wctx, id, node), node)
				metric := &policies.Metric{DeploymentID: id, NodeName: node, NodeID: nodeID, Host: "orch", Name: policies.NodeChangesMetric,
					Value: 1, Time: now, Type: "COUNTER", Service: id + "." + node + "." + nodeID + "." + policies.NodeChangesMetric + "."}
				if err := m.Runner.Apply(wctx, metric); err != nil {
					m.log.Warn("node change not applied", "deployment", id, "node", node, "err", err)
				}
			}
			if err := m.cfg.Nodes.Watch(wctx, w.node, w.w, changed); err != nil {
				m.log.Warn("watch nodes", "deployment", id, "node", w.node.Name, "err", err)
			}
		}()
	}
}

// nodeWatches are the nodes the orch.node_changes policies of a plan
// target, with what to watch; the node watcher says which nodes it can
// watch.
func (m *Manager) nodeWatches(plan *blueprints.Plan) ([]nodeWatch, error) {
	nodes := map[string]*blueprints.PlanNode{}
	for _, n := range plan.Nodes {
		nodes[n.Name] = n
	}
	var out []nodeWatch
	for _, p := range plan.Policies {
		nc, ok, err := policies.NodeChangesOf(p)
		if err != nil {
			return nil, err
		}
		if !ok || m.cfg.Nodes == nil {
			continue
		}
		for _, t := range p.Targets {
			n := nodes[t]
			if n == nil {
				return nil, fmt.Errorf("policy %s: target %s is not a node of the deployment", p.Name, t)
			}
			info := nodeInfo(n)
			if err := m.cfg.Nodes.CanWatch(info); err != nil {
				return nil, fmt.Errorf("policy %s: %w", p.Name, err)
			}
			out = append(out, nodeWatch{node: info, w: plugins.NodeWatch{Selector: nc.Selector, Settle: nc.Settle, Resync: nc.Resync}})
		}
	}
	return out, nil
}

// nodeInfo is a node as plugins see it.
func nodeInfo(n *blueprints.PlanNode) plugins.NodeInfo {
	return plugins.NodeInfo{Name: n.Name, Types: n.Types, Properties: blueprints.GoMap(n.Properties, false)}
}

// meshServices are the mesh services of the nodes of a plan that a policy
// targets, as the service locator names them.
func (m *Manager) meshServices(id string, plan *blueprints.Plan) []policies.PolledService {
	if m.cfg.Services == nil {
		return nil
	}
	targeted := map[string]bool{}
	for _, p := range plan.Policies {
		for _, t := range p.Targets {
			targeted[t] = true
		}
	}
	var out []policies.PolledService
	for _, n := range plan.Nodes {
		if !targeted[n.Name] {
			continue
		}
		if ns, name, ok := m.cfg.Services.MeshService(nodeInfo(n)); ok {
			out = append(out, policies.PolledService{Deployment: id, Node: n.Name, Namespace: ns, Name: name})
		}
	}
	return out
}

func (m *Manager) polledServices() []policies.PolledService {
	m.mu.Lock()
	var out []policies.PolledService
	for _, id := range slices.Sorted(maps.Keys(m.polled)) {
		out = append(out, m.polled[id]...)
	}
	m.mu.Unlock()
	// The poller asks with no context of its own; the target is cached.
	ctx := context.Background()
	for i := range out {
		out[i].Instance = m.instanceOf(ctx, out[i].Deployment, out[i].Node)
	}
	return out
}

// instanceOf is the id of a node's only instance now (a scale may have
// added some), or "".
func (m *Manager) instanceOf(ctx context.Context, deployment, node string) string {
	t, err := m.Svc.Target(ctx, deployment)
	if err != nil {
		return ""
	}
	return t.InstanceID(node)
}

// Run consumes metrics (and polls the mesh) until ctx is done. It returns
// nil then, or early for a configuration error. A replica that loses its
// lease (paused or cut off from etcd past its TTL) stops at once: its
// running executions are cancelled (what they would still write is
// refused), and Run returns ErrLeaseLost, for its supervisor to start it
// again as a new member with nothing stale in memory.
func (m *Manager) Run(ctx context.Context) error {
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	m.mu.Lock()
	m.runCtx = ctx
	m.startWatchesLocked(ctx)
	m.mu.Unlock()
	defer m.polledCopy.close()
	defer func() {
		m.mu.Lock()
		m.runCtx = nil
		m.mu.Unlock()
	}()
	var wg sync.WaitGroup
	if r := m.cfg.Replica; r != nil {
		interval := m.cfg.ReconcileInterval
		if interval <= 0 {
			interval = time.Second
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := r.Run(ctx, interval); err != nil {
				m.log.Error("replica lost its lease: its deployments went to the others; stopping", "replica", r.Info.ID, "err", err)
				stop(ErrLeaseLost)
			}
		}()
		go func() { defer wg.Done(); m.follow(ctx, r, interval) }()
	}
	if m.Poller != nil {
		wg.Add(1)
		go func() { defer wg.Done(); m.Poller.Run(ctx) }()
	}
	// Every second: policies are checked for missing data (a stopped
	// source sends nothing that would evaluate them), and decision logs go
	// to the state file (once more at the end).
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		m.prune(ctx)
		for n := 1; ; n++ {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				if n%3600 == 0 {
					m.prune(ctx)
				}
				if err := m.Runner.Tick(ctx, now); err != nil {
					m.log.Warn("missing-data check", "err", err)
				}
				if err := m.Runner.FlushDecisions(ctx); err != nil && ctx.Err() == nil {
					m.log.Warn("decision log", "err", err)
				}
			}
		}
	}()
	err := m.Intake.Run(ctx)
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		m.Svc.Engine.CancelAll(context.WithoutCancel(ctx))
	}
	wg.Wait()
	if ferr := m.Runner.FlushDecisions(context.WithoutCancel(ctx)); ferr != nil {
		m.log.Warn("decision log", "err", ferr)
	}
	if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
		return fmt.Errorf("replica %s: %w", m.cfg.Replica.Info.ID, cause)
	}
	return err
}

// follow takes up the deployments the replica comes to own (their
// executions a former owner left recovered, their policies evaluated) and
// drops those it no longer owns; every interval it runs what others queued
// for them.
func (m *Manager) follow(ctx context.Context, r *Replica, interval time.Duration) {
	loaded := map[string]bool{}
	// Executions queued by another process are run when the watch says
	// so, and at the latest at the next tick.
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		var owned []string
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			for dep := range loaded {
				m.Svc.Engine.ResumeDeployment(ctx, dep)
			}
			continue
		case <-r.Lost():
			owned = nil
		case owned = <-r.Changes():
		case dep := <-r.Queued():
			if loaded[dep] {
				m.Svc.Engine.ResumeDeployment(ctx, dep)
			}
			continue
		}
		now := map[string]bool{}
		for _, id := range owned {
			now[id] = true
		}
		// Hand-overs first: their consumers stop (the intake applies
		// nothing of a deployment not owned meanwhile), then their policies.
		var dropped []string
		for id := range loaded {
			if !now[id] {
				dropped = append(dropped, id)
				delete(loaded, id)
				m.setServed(id, false)
				r.TakeUp(id, false)
			}
		}
		if len(dropped) > 0 {
			m.Intake.Consume(slices.Collect(maps.Keys(loaded)))
		}
		for _, id := range dropped {
			m.remove(id)
			if _, err := m.Svc.Store.Deployment(ctx, id); errors.Is(err, ErrNotFound) {
				// Undeployed: its queue goes too.
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				if err := m.Intake.DeleteQueue(dctx, id); err != nil {
					m.log.Warn("delete an undeployed deployment's metric queue", "deployment", id, "err", err)
				}
				cancel()
			}
			m.log.Info("deployment handed over", "deployment", id, "replica", r.Info.ID)
		}
		took := false
		for _, id := range owned {
			if loaded[id] {
				continue
			}
			m.Svc.forget(id) // resolved afresh: another replica may have changed it
			r.TakeUp(id, true)
			if err := m.Svc.Engine.RecoverDeployment(ctx, id); err != nil {
				m.log.Warn("recover the executions of a deployment taken up", "deployment", id, "err", err)
			}
			if x := m.unendedUninstall(ctx, id); x != "" {
				// Being undeployed (its former owner died meanwhile): its
				// policies stay stopped, and this replica finishes it.
				m.awaitUndeploy(ctx, id, x)
			} else if _, err := m.load(ctx, id); err != nil {
				m.setBroken(id, err)
			}
			loaded[id] = true
			m.setServed(id, true)
			took = true
			m.log.Info("deployment taken up", "deployment", id, "replica", r.Info.ID)
		}
		if took {
			// Its metrics are consumed once its policies are loaded.
			m.Intake.Consume(slices.Collect(maps.Keys(loaded)))
		}
		select {
		case <-r.Lost():
			if len(loaded) == 0 {
				return
			}
		default:
		}
	}
}

// prune deletes the executions that ended longer ago than the retention.
func (m *Manager) prune(ctx context.Context) {
	if m.cfg.Retention <= 0 {
		return
	}
	n, err := m.Svc.Store.Prune(ctx, time.Now().Add(-m.cfg.Retention))
	if err != nil {
		m.log.Warn("prune executions", "err", err)
	} else if n > 0 {
		m.log.Info("pruned executions past the retention", "executions", n, "retention", m.cfg.Retention)
	}
}

// Deploy deploys a blueprint (submitting install) and starts evaluating its
// policies.
func (m *Manager) Deploy(ctx context.Context, req DeployRequest) (*Deployment, *workflows.Execution, error) {
	d, x, err := m.Svc.Deploy(ctx, req)
	if err == nil && m.cfg.Replica != nil {
		// A replica evaluates the deployment once it owns it (follow); its
		// metrics wait in its queue until then, from the first.
		dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if qerr := m.Intake.Declare(dctx, d.ID); qerr != nil {
			m.log.Warn("declare the deployment's metric queue (its owner declares it when it takes it up)", "deployment", d.ID, "err", qerr)
		}
		cancel()
	}
	if err != nil || m.cfg.Replica != nil {
		return d, x, err
	}
	t, err := m.Svc.Target(ctx, d.ID)
	if err != nil {
		return d, x, err
	}
	if err := m.add(ctx, d.ID, t.Plan); err != nil {
		return d, x, fmt.Errorf("deployment %s created, but its policies could not start: %w", d.ID, err)
	}
	return d, x, nil
}

// Update plans and submits a deployment update. Its policies run as they
// are until it ends; then the deployment's policies are loaded again from
// what it runs (the new blueprint once switched): those of the same name
// keep their state, new ones start with their grace, removed ones stop.
func (m *Manager) Update(ctx context.Context, req UpdateRequest) (*workflows.Update, *workflows.Execution, error) {
	u, x, err := m.Svc.Update(ctx, req)
	if err != nil || x == nil {
		return u, x, err
	}
	m.undeploy.Add(1)
	go func() {
		defer m.undeploy.Done()
		bg := context.WithoutCancel(ctx)
		end, err := m.Svc.Engine.Wait(bg, x.ID)
		if err == nil && end.Status != workflows.Succeeded {
			m.log.Warn("update did not succeed; the deployment's policies are loaded from what it runs now", "deployment", req.ID, "execution", x.ID, "status", end.Status)
		}
		if r := m.cfg.Replica; r != nil && !r.Owns(req.ID) {
			return
		}
		if _, lerr := m.load(bg, req.ID); lerr != nil {
			m.setBroken(req.ID, lerr)
		} else {
			m.mu.Lock()
			delete(m.broken, req.ID)
			m.mu.Unlock()
		}
	}()
	return u, x, nil
}

// StartUndeploy submits uninstall. Its policies stop at once; when
// uninstall succeeds the deployment is deleted, and when it fails they
// start again.
func (m *Manager) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	x, err := m.Svc.StartUndeploy(ctx, id)
	if err != nil {
		return nil, err
	}
	m.remove(id)
	m.awaitUndeploy(ctx, id, x.ID)
	return x, nil
}

// awaitUndeploy deletes the deployment once its uninstall (execution)
// succeeds, and starts its policies again when it fails.
func (m *Manager) awaitUndeploy(ctx context.Context, id, execution string) {
	m.undeploy.Add(1)
	go func() {
		defer m.undeploy.Done()
		bg := context.WithoutCancel(ctx)
		end, err := m.Svc.Engine.Wait(bg, execution)
		if err == nil {
			err = m.Svc.FinishUndeploy(bg, end)
		}
		if err == nil {
			return
		}
		m.log.Warn("undeploy", "deployment", id, "err", err)
		if r := m.cfg.Replica; r != nil && !r.Owns(id) {
			return
		}
		if _, lerr := m.load(bg, id); lerr != nil {
			m.setBroken(id, lerr)
		}
	}()
}

// unendedUninstall is the uninstall of a deployment not ended yet, if any.
func (m *Manager) unendedUninstall(ctx context.Context, id string) string {
	xs, err := m.Svc.Store.Unended(ctx, id)
	if err != nil {
		m.log.Warn("executions of a deployment taken up", "deployment", id, "err", err)
		return ""
	}
	for _, x := range xs {
		if x.Workflow == workflows.Uninstall {
			return x.ID
		}
	}
	return ""
}

// Policies returns the state of the policies of a deployment ("" for all),
// evaluated now.
func (m *Manager) Policies(deployment string) []policies.PolicyStatus {
	return m.Runner.Status(deployment, policies.Seconds(time.Now()))
}

// SetPause pauses (p non-nil) or resumes policies of a deployment (all of
// them with policy "").
func (m *Manager) SetPause(ctx context.Context, deployment, policy string, p *policies.Pause) ([]string, error) {
	return m.Runner.SetPause(ctx, deployment, policy, p)
}

// Close waits up to ctx for running executions and pending undeploys.
func (m *Manager) Close(ctx context.Context) error {
	err := m.Svc.Engine.Close(ctx)
	done := make(chan struct{})
	go func() { m.undeploy.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("undeploy still finishing: %w", ctx.Err()))
	}
	return err
}

// nopQueue refuses to queue: offline status never decides.
type nopQueue struct{}

func (nopQueue) Queue(context.Context, string, string, map[string]cty.Value) (string, error) {
	return "", errors.New("not running")
}

// offlineRunner is a runner over the state file with a deployment's
// policies ("" for all), for when orch serve is not running.
func (s *Service) offlineRunner(ctx context.Context, deployment string) (*policies.Runner, error) {
	r := policies.NewRunner(policies.NewPipeline(1), nopQueue{}, s.Store)
	deps, err := s.Store.Deployments(ctx)
	if err != nil {
		return nil, err
	}
	for _, d := range deps {
		if deployment != "" && d.ID != deployment {
			continue
		}
		t, err := s.Target(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		if err := r.AddDeployment(ctx, d.ID, t.Plan); err != nil {
			return nil, err
		}
	}
	if deployment != "" && r.Len() == 0 {
		if _, err := s.Store.Deployment(ctx, deployment); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// SetPause pauses or resumes policies in the state file, for when orch
// serve is not running (it reads the pause when it starts).
func (s *Service) SetPause(ctx context.Context, deployment, policy string, p *policies.Pause) ([]string, error) {
	r, err := s.offlineRunner(ctx, deployment)
	if err != nil {
		return nil, err
	}
	return r.SetPause(ctx, deployment, policy, p)
}

// Policies returns the policies of a deployment ("" for all) as the state
// file knows them, for when orch serve is not running: cooldowns and
// trigger history, but no window values (serve keeps the windows).
func (s *Service) Policies(ctx context.Context, deployment string) ([]policies.PolicyStatus, error) {
	r, err := s.offlineRunner(ctx, deployment)
	if err != nil {
		return nil, err
	}
	return r.Status(deployment, policies.Seconds(time.Now())), nil
}
