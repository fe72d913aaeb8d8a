package workflows

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
	"github.com/zclconf/go-cty/cty"
)

// Built-in workflows every deployment has.
const (
	Install   = "install"
	Uninstall = "uninstall"
)

// MaxBackoff caps the delay between retries of a recoverable error.
const MaxBackoff = 30 * time.Second

// Request asks for a workflow to run on a deployment.
type Request struct {
	Deployment string
	Workflow   string
	Parameters map[string]string // as given on the command line
	// Values are parameters given as typed values (a policy trigger's
	// expression); each is converted to its parameter's type.
	Values map[string]cty.Value `json:"-"`
	DryRun bool
	// ID, when set, is the new execution's id (from NewID): a policy
	// firing names the execution in its state before it is queued.
	ID string `json:"-"`
	// With is a record stored in the same transaction as the new
	// execution: both are stored, or neither (a firing's policy state).
	With *Record `json:"-"`
}

// Record is a policy's state record, stored with an execution.
type Record struct {
	Key   string
	Value any
}

// Engine runs executions: one at a time per deployment, the others queued
// in submission order.
type Engine struct {
	store    Store
	registry *plugins.Registry
	log      *slog.Logger
	events   *eventLog
	// Parallel bounds the tasks of one execution running at once (0: no bound).
	Parallel int

	mu      sync.Mutex
	active  map[string]string             // deployment -> running execution
	cancels map[string]context.CancelFunc // execution -> cancel
	waiters map[string][]chan struct{}    // execution -> closed when it ends
	// secrets are the sensitive typed parameters of executions not yet
	// ended: never stored, so lost (and the execution failed clearly) if
	// orch stops before it runs.
	secrets map[string]map[string]cty.Value
	owner   Owner // nil: every deployment
	wg      sync.WaitGroup
	closed  bool
}

// Option configures an Engine.
type Option func(*Engine)

// Owner says whether this process runs a deployment's executions (a
// replica runs only the deployments it owns).
type Owner interface {
	Owns(deployment string) bool
}

// WithOwner makes the engine run only the executions of the deployments
// o owns; the others stay queued for their owner.
func WithOwner(o Owner) Option { return func(e *Engine) { e.owner = o } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithEventObserver calls fn for every event as it is emitted (before it is
// stored): the CLI prints progress with it.
func WithEventObserver(fn func(Event)) Option {
	return func(e *Engine) { e.events.observers = append(e.events.observers, fn) }
}

// New returns an engine over store, running plugins from registry.
func New(store Store, registry *plugins.Registry, opts ...Option) *Engine {
	e := &Engine{
		store:    store,
		registry: registry,
		log:      slog.Default(),
		active:   map[string]string{},
		cancels:  map[string]context.CancelFunc{},
		waiters:  map[string][]chan struct{}{},
		secrets:  map[string]map[string]cty.Value{},
	}
	e.events = newEventLog(store)
	for _, o := range opts {
		o(e)
	}
	e.events.log = e.log
	e.events.start()
	return e
}

// Recover fixes what a crash left behind: executions left started are
// queued again when their workflow can resume (install, uninstall, and
// plugin workflows that say so), otherwise failed with the reason;
// cancelling ones become cancelled. It runs nothing; Resume does.
func (e *Engine) Recover(ctx context.Context) error { return e.recover(ctx, "") }

// RecoverDeployment is Recover for one deployment's executions (a replica
// that has just become its owner), then runs what is queued.
func (e *Engine) RecoverDeployment(ctx context.Context, deployment string) error {
	if err := e.recover(ctx, deployment); err != nil {
		return err
	}
	e.schedule(ctx, deployment)
	return nil
}

// ResumeDeployment runs a deployment's queued executions (one another
// process submitted).
func (e *Engine) ResumeDeployment(ctx context.Context, deployment string) {
	e.schedule(ctx, deployment)
}

func (e *Engine) recover(ctx context.Context, deployment string) error {
	all, err := e.store.Unended(ctx, deployment)
	if err != nil {
		return fmt.Errorf("recover executions: %w", err)
	}
	now := time.Now().UTC()
	for _, x := range all {
		switch x.Status {
		case Cancelling:
			x.Status, x.EndedAt = Cancelled, &now
			x.Error = "orch stopped while the execution was being cancelled"
			e.emit(x, "warning", EventWorkflowCancelled, "", "", x.Error)
		case Started:
			if x.Update != nil || e.resumable(ctx, x.Workflow, x.Deployment) {
				x.Status = Queued
				x.Resumes++
				e.emit(x, "warning", EventWorkflowResumed, "", "",
					fmt.Sprintf("orch stopped while this execution was running (started %s); it will resume, skipping the operations that completed", x.StartedAt.Format(time.RFC3339)))
			} else {
				x.Status, x.EndedAt = Failed, &now
				x.Error = fmt.Sprintf("orch stopped while this execution was running (started %s); workflow %q cannot resume safely, run it again", x.StartedAt.Format(time.RFC3339), x.Workflow)
				e.emit(x, "error", EventWorkflowFailed, "", "", x.Error)
			}
		case Pending:
			x.Status = Queued
		default:
			continue
		}
		if err := e.store.PutExecution(ctx, x); err != nil {
			return fmt.Errorf("recover execution %s: %w", x.ID, err)
		}
	}
	return e.events.Flush(ctx)
}

func (e *Engine) resumable(ctx context.Context, workflow, deployment string) bool {
	t, err := e.store.Target(ctx, deployment)
	if err != nil {
		return workflow == Install || workflow == Uninstall
	}
	if builtin(t, workflow) {
		return true // they skip what is done, per instance
	}
	pw := t.Plan.Workflows[workflow]
	if pw == nil {
		return false
	}
	if pw.StepWorkflow() {
		return true // its steps record their progress (steps.go)
	}
	impl, ok := e.registry.Workflow(pw.Uses)
	if !ok {
		return false
	}
	r, ok := impl.(plugins.Resumable)
	return ok && r.Resumable()
}

// Resume starts the queued executions of every deployment.
func (e *Engine) Resume(ctx context.Context) error {
	all, err := e.store.Unended(ctx, "")
	if err != nil {
		return err
	}
	deps := map[string]bool{}
	for _, x := range all {
		if x.Status == Queued || x.Status == Pending {
			deps[x.Deployment] = true
		}
	}
	for d := range deps {
		e.schedule(ctx, d)
	}
	return nil
}

// Workflows lists the workflows a deployment can run: the built-in ones
// and those its blueprint declares.
func Workflows(t *Target) []string {
	out := slices.Clone(BuiltinWorkflows)
	var names []string
	for n := range t.Plan.Workflows {
		if !slices.Contains(out, n) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append(out, names...)
}

// Submit validates the request, stores a new execution and runs it now or
// queues it behind the deployment's running one.
func (e *Engine) Submit(ctx context.Context, req Request) (*Execution, error) {
	t, err := e.store.Target(ctx, req.Deployment)
	if err != nil {
		return nil, err
	}
	params, err := e.bind(t, req.Workflow, req.Parameters, req.Values)
	if err != nil {
		return nil, err
	}
	pw := t.Plan.Workflows[req.Workflow]
	if pw != nil && pw.StepWorkflow() {
		// Refused, with nothing stored, when a precondition does not
		// hold now (checked again when it starts).
		if err := CheckPreconditions(t, pw, params); err != nil {
			return nil, err
		}
	}
	if pw != nil && pw.Uses == blueprints.BuiltinWorkflowPrefix+Scale {
		// A scale past min or max is refused now, with nothing stored
		// (it is checked again when it runs: others may run before it).
		if _, err := planScale(t, params); err != nil {
			return nil, err
		}
	}
	id := req.ID
	if id == "" {
		id = NewID()
	} else if !validID(id) {
		return nil, fmt.Errorf("execution id %q is not one NewID makes", id)
	}
	x := &Execution{
		ID:         id,
		Deployment: req.Deployment,
		Workflow:   req.Workflow,
		Parameters: goParams(params, true),
		Args:       req.Parameters,
		DryRun:     req.DryRun,
		Status:     Pending,
		CreatedAt:  time.Now().UTC(),
	}
	secret, err := x.keepValues(req.Values)
	if err != nil {
		return nil, err
	}
	if len(secret) > 0 {
		e.mu.Lock()
		e.secrets[x.ID] = secret
		e.mu.Unlock()
	}
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, errors.New("engine is shutting down")
	}
	if err := e.store.CreateExecution(ctx, x, req.With); err != nil {
		e.mu.Lock()
		delete(e.secrets, x.ID)
		e.mu.Unlock()
		return nil, fmt.Errorf("store execution: %w", err)
	}
	e.schedule(ctx, req.Deployment)
	// Stored: from here it is submitted, whatever the read says (a caller
	// that took an error for "not queued" would queue it again).
	if stored, err := e.store.Execution(ctx, x.ID); err == nil {
		return stored, nil
	}
	return x, nil
}

// SubmitUpdate stores an execution carrying out a planned update (or,
// dryRun, describing it) and runs it now or queues it behind the
// deployment's running one.
func (e *Engine) SubmitUpdate(ctx context.Context, deployment string, u *Update, dryRun bool) (*Execution, error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, errors.New("engine is shutting down")
	}
	x := &Execution{ID: NewID(), Deployment: deployment, Workflow: UpdateWorkflow, DryRun: dryRun, Status: Pending,
		CreatedAt: time.Now().UTC(), Update: u}
	if err := e.store.CreateExecution(ctx, x, nil); err != nil {
		return nil, fmt.Errorf("store execution: %w", err)
	}
	e.schedule(ctx, deployment)
	if stored, err := e.store.Execution(ctx, x.ID); err == nil {
		return stored, nil
	}
	return x, nil
}

// Waiting returns an execution of workflow in deployment that waits to
// start (pending, or queued behind the running one), or "".
func (e *Engine) Waiting(ctx context.Context, deployment, workflow string) (string, error) {
	list, err := e.store.Unended(ctx, deployment)
	if err != nil {
		return "", err
	}
	for _, x := range list {
		if x.Workflow == workflow && (x.Status == Pending || x.Status == Queued) {
			return x.ID, nil
		}
	}
	return "", nil
}

// bind checks the workflow exists and binds its parameters.
func (e *Engine) bind(t *Target, workflow string, given map[string]string, values map[string]cty.Value) (map[string]cty.Value, error) {
	pw := t.Plan.Workflows[workflow] // the blueprint's own, or the built-in one core.hcl declares
	if pw == nil && builtin(t, workflow) {
		if len(given) > 0 || len(values) > 0 {
			return nil, fmt.Errorf("workflow %q takes no parameters", workflow)
		}
		return map[string]cty.Value{}, nil
	}
	if pw == nil {
		return nil, fmt.Errorf("deployment %s has no workflow %q (it has: %s)", t.Deployment, workflow, strings.Join(Workflows(t), ", "))
	}
	if builtin(t, workflow) {
		if len(pw.Parameters) == 0 && (len(given) > 0 || len(values) > 0) {
			return nil, fmt.Errorf("workflow %q takes no parameters", workflow)
		}
		return pw.BindValues(given, values)
	}
	if pw.StepWorkflow() {
		return pw.BindValues(given, values)
	}
	if _, ok := e.registry.Workflow(pw.Uses); !ok {
		return nil, fmt.Errorf("workflow %q uses %q, which no plugin provides", workflow, pw.Uses)
	}
	return pw.BindValues(given, values)
}

// Runs reports whether this engine runs a deployment's executions (it is
// not left to another process that owns the deployment).
func (e *Engine) Runs(deployment string) bool { return e.owner == nil || e.owner.Owns(deployment) }

// Running is the execution of a deployment running in this engine, or "".
func (e *Engine) Running(deployment string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.active[deployment]
}

// schedule starts the oldest queued execution of a deployment if none runs.
func (e *Engine) schedule(ctx context.Context, deployment string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || e.owner != nil && !e.owner.Owns(deployment) {
		return
	}
	running := e.active[deployment]
	list, err := e.store.Unended(ctx, deployment)
	if err != nil {
		e.log.Error("schedule", "deployment", deployment, "err", err)
		return
	}
	for _, x := range list {
		if x.Status != Pending && x.Status != Queued {
			continue
		}
		if running != "" {
			if x.Status == Pending {
				x.Status = Queued
				if err := e.store.PutExecution(ctx, x); err != nil {
					e.log.Error("queue execution", "execution", x.ID, "err", err)
				}
				e.emit(x, "info", EventWorkflowQueued, "", "", fmt.Sprintf("queued behind execution %s", running))
			}
			continue
		}
		running = x.ID
		e.active[deployment] = x.ID
		runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		e.cancels[x.ID] = cancel
		e.wg.Add(1)
		go e.run(runCtx, x)
	}
}

func (e *Engine) run(ctx context.Context, x *Execution) {
	defer e.wg.Done()
	now := time.Now().UTC()
	x.Status, x.StartedAt = Started, &now
	var err error
	if perr := e.store.PutExecution(ctx, x); perr != nil {
		// Not recorded as started, it would run again after a restart
		// (resumed as pending): it does not run now, and ends failed.
		e.log.Error("start execution", "execution", x.ID, "err", perr)
		err = fmt.Errorf("not started: its start could not be stored (%v); run it again", perr)
	} else {
		mode := ""
		if x.DryRun {
			mode = " (dry run)"
		}
		e.emit(x, "info", EventWorkflowStarted, "", "", fmt.Sprintf("starting %s on deployment %s%s", x.Workflow, x.Deployment, mode))
		err = e.execute(ctx, x)
	}

	e.mu.Lock()
	cancel := e.cancels[x.ID]
	delete(e.cancels, x.ID)
	e.mu.Unlock()
	// Read back: Cancel may have marked it cancelling meanwhile.
	stored, gerr := e.store.Execution(context.WithoutCancel(ctx), x.ID)
	if gerr == nil {
		x.Status = stored.Status
	}
	end := time.Now().UTC()
	x.EndedAt = &end
	switch {
	case x.Status == Cancelling || (err != nil && ctx.Err() != nil):
		x.Status = Cancelled
		x.Error = "cancelled"
		e.emit(x, "warning", EventWorkflowCancelled, "", "", fmt.Sprintf("%s cancelled", x.Workflow))
	case err != nil:
		x.Status = Failed
		x.Error = err.Error()
		e.emit(x, "error", EventWorkflowFailed, "", "", fmt.Sprintf("%s failed: %s", x.Workflow, err))
	default:
		x.Status = Succeeded
		e.emit(x, "info", EventWorkflowSucceeded, "", "", fmt.Sprintf("%s succeeded in %s", x.Workflow, end.Sub(*x.StartedAt).Round(time.Millisecond)))
	}
	cancel()
	bg := context.WithoutCancel(ctx)
	if err := e.events.Flush(bg); err != nil {
		e.log.Error("flush events", "execution", x.ID, "err", err)
	}
	if err := e.store.PutExecution(bg, x); err != nil {
		e.log.Error("end execution", "execution", x.ID, "err", err)
	}
	e.mu.Lock()
	delete(e.active, x.Deployment)
	delete(e.secrets, x.ID)
	for _, ch := range e.waiters[x.ID] {
		close(ch)
	}
	delete(e.waiters, x.ID)
	e.mu.Unlock()
	e.schedule(bg, x.Deployment)
}

func (e *Engine) execute(ctx context.Context, x *Execution) error {
	if x.Update != nil {
		return e.runUpdate(ctx, x)
	}
	t, err := e.store.Target(ctx, x.Deployment)
	if err != nil {
		return err
	}
	e.mu.Lock()
	secret := e.secrets[x.ID]
	e.mu.Unlock()
	values, err := x.values(secret)
	if err != nil {
		return err
	}
	params, err := e.bind(t, x.Workflow, x.Args, values)
	if err != nil {
		return err
	}
	defer e.updateOutputs(context.WithoutCancel(ctx), x, t)
	if builtin(t, x.Workflow) {
		return e.runBuiltin(ctx, x, t, x.Workflow, params)
	}
	pw := t.Plan.Workflows[x.Workflow]
	if pw.StepWorkflow() {
		return e.runStepWorkflow(ctx, x, t, pw, params)
	}
	return e.runPlugin(ctx, x, t, pw, params)
}

// runPlugin runs a plugin's workflow with its timeout.
func (e *Engine) runPlugin(ctx context.Context, x *Execution, t *Target, pw *blueprints.PlanWorkflow, params map[string]cty.Value) error {
	impl, ok := e.registry.Workflow(pw.Uses)
	if !ok {
		return fmt.Errorf("workflow %q uses %q, which no plugin provides", pw.Name, pw.Uses)
	}
	sensitive := make([]cty.Value, 0, len(t.Plan.Nodes)+len(params))
	for _, n := range t.Plan.Nodes {
		sensitive = append(sensitive, n.Properties)
	}
	for _, v := range params {
		sensitive = append(sensitive, v)
	}
	wc := &workflowContext{e: e, x: x, t: t, params: goParams(params, false), values: params, scrub: newScrubber(sensitive...)}
	timeout := cmp.Or(pw.Timeout, blueprints.DefaultWorkflowTimeout)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := runWorkflowSafely(wctx, impl, wc)
	if errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("workflow %s timed out after %s (its timeout)", pw.Name, timeout)
	}
	return wc.scrub.err(err)
}

// Cancel cancels a queued execution at once, or asks a running one to stop.
func (e *Engine) Cancel(ctx context.Context, id string) (*Execution, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, err := e.store.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	switch x.Status {
	case Pending, Queued:
		now := time.Now().UTC()
		x.Status, x.EndedAt, x.Error = Cancelled, &now, "cancelled before it started"
		e.emit(x, "warning", EventWorkflowCancelled, "", "", "cancelled before it started")
	case Started:
		cancel, here := e.cancels[id]
		if !here {
			return nil, fmt.Errorf("execution %s runs in another orch process; cancel it there", id)
		}
		x.Status = Cancelling
		e.emit(x, "warning", EventLog, "", "", "cancel requested")
		defer cancel()
	default:
		return x, fmt.Errorf("execution %s has already ended (%s)", id, x.Status)
	}
	if err := e.store.PutExecution(ctx, x); err != nil {
		return nil, err
	}
	return x, e.events.Flush(ctx)
}

// Wait blocks until the execution has ended and returns it.
func (e *Engine) Wait(ctx context.Context, id string) (*Execution, error) {
	for {
		e.mu.Lock()
		x, err := e.store.Execution(ctx, id)
		if err != nil {
			e.mu.Unlock()
			return nil, err
		}
		if x.Status.Ended() {
			e.mu.Unlock()
			return x, nil
		}
		ch := make(chan struct{})
		e.waiters[id] = append(e.waiters[id], ch)
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
			// Ended elsewhere (cancelled while queued): look again.
		}
	}
}

// CancelAll cancels every execution running in this process.
func (e *Engine) CancelAll(ctx context.Context) {
	e.mu.Lock()
	ids := make([]string, 0, len(e.cancels))
	for id := range e.cancels {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		if _, err := e.Cancel(ctx, id); err != nil {
			e.log.Warn("cancel", "execution", id, "err", err)
		}
	}
}

// Close stops scheduling, waits for running executions to end and flushes
// the event log.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("engine close: executions still running: %w", ctx.Err())
	}
	return e.events.Close(ctx)
}

// FlushEvents writes buffered events to the store.
func (e *Engine) FlushEvents(ctx context.Context) error { return e.events.Flush(ctx) }

func (e *Engine) emit(x *Execution, level, typ, node, op, msg string) {
	e.events.Emit(Event{
		Time: time.Now().UTC(), Execution: x.ID, Level: level, Type: typ,
		Node: node, Operation: op, Message: msg,
	})
}

// emitInst is emit for an event of one instance.
func (e *Engine) emitInst(x *Execution, level, typ string, inst *NodeInstance, op, msg string) {
	e.events.Emit(Event{
		Time: time.Now().UTC(), Execution: x.ID, Level: level, Type: typ,
		Node: inst.Node, Instance: inst.ID, Operation: op, Message: msg,
	})
}

// updateOutputs evaluates the deployment's outputs again with the runtime
// attributes as the execution left them, and stores them (redacted).
func (e *Engine) updateOutputs(ctx context.Context, x *Execution, t *Target) {
	if x.DryRun || len(t.Plan.Outputs) == 0 {
		return
	}
	vals, err := t.Plan.OutputValues(blueprints.RuntimeScope{Attributes: t.attributesOf})
	if err != nil {
		e.emit(x, "warning", EventLog, "", "", fmt.Sprintf("outputs not updated: %v", err))
	}
	out := make(map[string]any, len(vals))
	for k, v := range vals {
		out[k] = blueprints.GoValue(v, true)
	}
	if err := e.store.PutOutputs(ctx, t.Deployment, out); err != nil {
		e.log.Error("store outputs", "deployment", t.Deployment, "err", err)
	}
}

// ResumeExecution runs a failed or cancelled execution again, skipping the
// operations it did (per instance): it is queued, and runs when the
// deployment's running execution (if any) ends.
func (e *Engine) ResumeExecution(ctx context.Context, id string) (*Execution, error) {
	x, err := e.store.Execution(ctx, id)
	if err != nil {
		return nil, err
	}
	switch x.Status {
	case Failed, Cancelled:
	case Queued, Pending:
		e.schedule(ctx, x.Deployment) // recovered after a crash: run it now
		return e.store.Execution(ctx, x.ID)
	default:
		return nil, fmt.Errorf("execution %s is %s; only a failed or cancelled execution can be resumed", x.ID, x.Status)
	}
	if x.Update == nil && !e.resumable(ctx, x.Workflow, x.Deployment) {
		return nil, fmt.Errorf("execution %s runs workflow %q, which cannot resume safely; run it again", x.ID, x.Workflow)
	}
	if len(x.Sensitive) > 0 {
		return nil, fmt.Errorf("execution %s had sensitive parameters, which were not stored; run it again", x.ID)
	}
	x.Status, x.Error, x.EndedAt = Queued, "", nil
	x.Resumes++
	// Steps that did not succeed run again; those that did are skipped.
	for k, v := range x.Steps {
		if v != StepSucceeded {
			delete(x.Steps, k)
		}
	}
	e.emit(x, "info", EventWorkflowResumed, "", "", "resumed by request, skipping the operations that completed")
	if err := e.store.PutExecution(ctx, x); err != nil {
		return nil, err
	}
	e.schedule(ctx, x.Deployment)
	return e.store.Execution(ctx, x.ID)
}

// goParams converts bound parameters to plain values; redact for storing
// and showing, not for the workflow itself.
func goParams(params map[string]cty.Value, redact bool) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = blueprints.GoValue(v, redact)
	}
	return out
}

// workflowContext is what plugin workflows see.
type workflowContext struct {
	e      *Engine
	x      *Execution
	t      *Target
	params map[string]any
	values map[string]cty.Value
	scrub  scrubber
}

func (w *workflowContext) Values() map[string]cty.Value { return w.values }
func (w *workflowContext) Decode(dst any) error         { return plugins.Decode(w.values, dst) }

func (w *workflowContext) Deployment() string         { return w.x.Deployment }
func (w *workflowContext) Execution() string          { return w.x.ID }
func (w *workflowContext) Parameters() map[string]any { return w.params }
func (w *workflowContext) DryRun() bool               { return w.x.DryRun }
func (w *workflowContext) Event(level, msg string) {
	w.e.emit(w.x, level, EventLog, "", "", w.scrub.text(msg))
}

// runWorkflowSafely runs a plugin workflow, turning a panic into an error
// so one bad plugin cannot take orch serve down.
func runWorkflowSafely(ctx context.Context, impl plugins.Workflow, wc plugins.WorkflowContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("workflow %s: plugin panicked: %v", wc.Execution(), r)
		}
	}()
	return impl.Run(ctx, wc)
}
func (w *workflowContext) Nodes() []plugins.NodeInfo {
	out := make([]plugins.NodeInfo, 0, len(w.t.Plan.Nodes))
	for _, n := range w.t.Plan.Nodes {
		info := plugins.NodeInfo{Name: n.Name, Types: n.Types, Properties: blueprints.GoMap(n.Properties, false)}
		info.Runtime = w.t.attributesOf(n.Name) // the oldest instance's
		out = append(out, info)
	}
	return out
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Emit records an event in an execution's log through the batching writer,
// as the engine's own events are (for other components' notes on an
// execution, and the state file's append benchmark).
func (e *Engine) Emit(ev Event) { e.events.Emit(ev) }
