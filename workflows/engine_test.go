package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/workflows"
)

// recorder keeps what the test operations did, per deployment.
type recorder struct {
	mu       sync.Mutex
	running  int
	peak     int
	started  map[string]time.Time
	ended    map[string]time.Time
	attempts map[string]int
	order    []string
}

var recorders sync.Map // deployment -> *recorder

func rec(dep string) *recorder {
	r, _ := recorders.LoadOrStore(dep, &recorder{started: map[string]time.Time{}, ended: map[string]time.Time{}, attempts: map[string]int{}})
	return r.(*recorder)
}

func num(v any) int {
	switch n := v.(type) {
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// testOp: sleeps inputs.sleep ms (or until cancelled), fails recoverably
// inputs.fail_times times, fails for good with inputs.fail, panics with
// inputs.panic.
func testOp(ctx context.Context, op *plugins.OperationContext) error {
	r := rec(op.Deployment)
	key := op.Node + "." + op.Operation
	r.mu.Lock()
	r.attempts[key]++
	attempt := r.attempts[key]
	r.running++
	if r.running > r.peak {
		r.peak = r.running
	}
	r.started[key] = time.Now()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running--
		r.ended[key] = time.Now()
		r.order = append(r.order, key)
		r.mu.Unlock()
	}()
	if op.Inputs["panic"] == true {
		panic("boom")
	}
	if d := num(op.Inputs["sleep"]); d > 0 {
		select {
		case <-time.After(time.Duration(d) * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if attempt <= num(op.Inputs["fail_times"]) {
		return plugins.Recoverable(fmt.Errorf("transient failure %d", attempt))
	}
	if op.Inputs["fail"] == true {
		return errors.New("permanent failure")
	}
	if f, ok := op.Inputs["fail_if_exists"].(string); ok {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("failed: %s exists", f)
		}
	}
	op.Runtime["attempts"] = attempt
	return nil
}

// blockWorkflow runs until cancelled or parameter ms elapsed.
type blockWorkflow struct{ resumable bool }

func (b blockWorkflow) Run(ctx context.Context, wc plugins.WorkflowContext) error {
	ms := 0
	fmt.Sscan(fmt.Sprint(wc.Parameters()["ms"]), &ms)
	wc.Event("info", fmt.Sprintf("blocking %dms", ms))
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b blockWorkflow) Resumable() bool { return b.resumable }

func testRegistry(t *testing.T) *plugins.Registry {
	r := plugins.NewRegistry()
	must(t, r.RegisterOperation("test", plugins.OperationFunc(testOp)))
	must(t, r.RegisterWorkflow("test.block", blockWorkflow{}))
	must(t, r.RegisterWorkflow("test.block_resumable", blockWorkflow{resumable: true}))
	return r
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type env struct {
	t     *testing.T
	dir   string
	state string
	svc   *orchestrator.Service
	store *orchestrator.Store
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, dir: t.TempDir()}
	e.state = filepath.Join(e.dir, "state.db")
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() { e.openWith(testRegistry(e.t)) }

func (e *env) openWith(reg *plugins.Registry) {
	store, err := orchestrator.Open(e.state, orchestrator.OpenOptions{})
	must(e.t, err)
	e.store = store
	e.svc = orchestrator.NewService(store, reg, nil)
	must(e.t, e.svc.Engine.Recover(context.Background()))
}

func (e *env) close() {
	if e.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.svc.Engine.CancelAll(ctx)
	_ = e.svc.Engine.Close(ctx)
	_ = e.store.Close()
	e.store = nil
}

// deploy writes src as a blueprint and deploys it as id, waiting for install.
func (e *env) deploy(id, src string) *workflows.Execution {
	e.t.Helper()
	path := filepath.Join(e.dir, id+".hcl")
	must(e.t, os.WriteFile(path, []byte(src), 0o644))
	_, x, err := e.svc.Deploy(context.Background(), orchestrator.DeployRequest{Paths: []string{path}, ID: id})
	must(e.t, err)
	x, err = e.svc.Engine.Wait(context.Background(), x.ID)
	must(e.t, err)
	return x
}

func (e *env) events(x *workflows.Execution) []workflows.Event {
	must(e.t, e.svc.Engine.FlushEvents(context.Background()))
	evs, err := e.store.Events(context.Background(), x.ID, 0)
	must(e.t, err)
	return evs
}

func countEvents(evs []workflows.Event, typ string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

func node(name, inputs string, rel string) string {
	return fmt.Sprintf(`
node %q {
  %s
  operation "create" {
    implementation = "test"
    inputs         = { %s }
    retry_interval = "10ms"
  }
}
`, name, rel, inputs)
}

func TestInstallRunsNodesInDependencyOrder(t *testing.T) {
	e := newEnv(t)
	x := e.deploy("order", node("host", "sleep = 30", "")+
		node("db", "sleep = 30", "contained_in = node.host")+
		node("app", "sleep = 10", "depends_on = [node.db]\n  connected_to = [node.host]")+
		node("web", "", "connected_to = [node.app]"))
	if x.Status != workflows.Succeeded {
		t.Fatalf("install %s: %s", x.Status, x.Error)
	}
	r := rec("order")
	for _, edge := range [][2]string{{"host", "db"}, {"db", "app"}, {"host", "app"}, {"app", "web"}} {
		before, after := edge[0]+".create", edge[1]+".create"
		if !r.ended[before].Before(r.started[after]) {
			t.Errorf("%s started before %s ended", after, before)
		}
	}
	d, err := e.store.Deployment(context.Background(), "order")
	must(t, err)
	for name, inst := range d.Instances {
		if inst.State != workflows.StateStarted {
			t.Errorf("%s is %s, want started", name, inst.State)
		}
		if num(inst.Runtime["attempts"]) != 1 {
			t.Errorf("%s runtime = %v", name, inst.Runtime)
		}
	}
}

func TestIndependentNodesRunInParallel(t *testing.T) {
	e := newEnv(t)
	var src strings.Builder
	for i := 0; i < 4; i++ {
		src.WriteString(node(fmt.Sprintf("n%d", i), "sleep = 300", ""))
	}
	x := e.deploy("parallel", src.String())
	if x.Status != workflows.Succeeded {
		t.Fatalf("install %s: %s", x.Status, x.Error)
	}
	if p := rec("parallel").peak; p != 4 {
		t.Errorf("at most %d operations ran at once, want 4", p)
	}
}

func TestUninstallRunsInReverseOrder(t *testing.T) {
	e := newEnv(t)
	src := `
node "host" {
  operation "delete" {
    implementation = "test"
    inputs = { sleep = 20 }
  }
}
node "app" {
  contained_in = node.host
  operation "delete" {
    implementation = "test"
    inputs = { sleep = 20 }
  }
}`
	if x := e.deploy("reverse", src); x.Status != workflows.Succeeded {
		t.Fatalf("install: %s", x.Error)
	}
	x, err := e.svc.Undeploy(context.Background(), "reverse")
	must(t, err)
	if x.Status != workflows.Succeeded {
		t.Fatalf("uninstall: %s", x.Error)
	}
	r := rec("reverse")
	if !r.ended["app.delete"].Before(r.started["host.delete"]) {
		t.Errorf("host deleted before app: order %v", r.order)
	}
	if _, err := e.store.Deployment(context.Background(), "reverse"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Errorf("deployment still there after undeploy: %v", err)
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name       string
		inputs     string
		retries    int
		wantStatus workflows.Status
		wantTries  int
		wantErr    string
	}{
		{"recoverable errors are retried until success", "fail_times = 2", 3, workflows.Succeeded, 3, ""},
		{"retries stop at max_retries", "fail_times = 5", 2, workflows.Failed, 3, "gave up after 3 attempts"},
		{"permanent errors are not retried", "fail = true", 3, workflows.Failed, 1, "permanent failure"},
		{"a panicking plugin fails the operation, not orch", "panic = true", 3, workflows.Failed, 1, "plugin panicked"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			id := fmt.Sprintf("retries%d", i)
			x := e.deploy(id, fmt.Sprintf(`
node "n" {
  operation "create" {
    implementation = "test"
    inputs         = { %s }
    max_retries    = %d
    retry_interval = "5ms"
  }
}`, tt.inputs, tt.retries))
			if x.Status != tt.wantStatus || !strings.Contains(x.Error, tt.wantErr) {
				t.Errorf("status %s error %q, want %s containing %q", x.Status, x.Error, tt.wantStatus, tt.wantErr)
			}
			if got := rec(id).attempts["n.create"]; got != tt.wantTries {
				t.Errorf("%d attempts, want %d", got, tt.wantTries)
			}
			if got := countEvents(e.events(x), workflows.EventOperationRetrying); got != tt.wantTries-1 {
				t.Errorf("%d retry events, want %d", got, tt.wantTries-1)
			}
		})
	}
}

func TestOperationTimeout(t *testing.T) {
	e := newEnv(t)
	x := e.deploy("timeout", `
node "slow" {
  operation "create" {
    implementation = "test"
    inputs         = { sleep = 10000 }
    timeout        = "100ms"
  }
}`)
	if x.Status != workflows.Failed || !strings.Contains(x.Error, "timed out after 100ms") {
		t.Fatalf("status %s error %q", x.Status, x.Error)
	}
	if took := x.EndedAt.Sub(*x.StartedAt); took > 5*time.Second {
		t.Errorf("a 100ms timeout took %s", took)
	}
}

const blockBlueprint = `node "n" {}` + blockWorkflows

const blockWorkflows = `
workflow "block" {
  uses = "test.block"
  parameter "ms" { default = 60000 }
}
workflow "block_resumable" {
  uses = "test.block_resumable"
  parameter "ms" { default = 60000 }
}
`

func waitStatus(t *testing.T, e *env, id string, want workflows.Status) *workflows.Execution {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		x, err := e.store.Execution(context.Background(), id)
		must(t, err)
		if x.Status == want {
			return x
		}
		if time.Now().After(deadline) {
			t.Fatalf("execution %s is %s, want %s", id, x.Status, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestQueueingAndCancel(t *testing.T) {
	e := newEnv(t)
	e.deploy("q1", blockBlueprint)
	e.deploy("q2", blockBlueprint)
	ctx := context.Background()
	first, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "q1", Workflow: "block"})
	must(t, err)
	waitStatus(t, e, first.ID, workflows.Started)
	second, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "q1", Workflow: "block", Parameters: map[string]string{"ms": "10"}})
	must(t, err)
	third, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "q1", Workflow: "block", Parameters: map[string]string{"ms": "10"}})
	must(t, err)
	other, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "q2", Workflow: "block", Parameters: map[string]string{"ms": "10"}})
	must(t, err)

	// One running execution per deployment; another deployment is not held up.
	waitStatus(t, e, second.ID, workflows.Queued)
	waitStatus(t, e, third.ID, workflows.Queued)
	waitStatus(t, e, other.ID, workflows.Succeeded)

	// Cancel a queued one: it never runs.
	x, err := e.svc.Engine.Cancel(ctx, third.ID)
	must(t, err)
	if x.Status != workflows.Cancelled {
		t.Errorf("cancelled queued execution is %s", x.Status)
	}
	// Cancel the running one: it stops, and the queue moves on.
	_, err = e.svc.Engine.Cancel(ctx, first.ID)
	must(t, err)
	waitStatus(t, e, first.ID, workflows.Cancelled)
	done, err := e.svc.Engine.Wait(ctx, second.ID)
	must(t, err)
	if done.Status != workflows.Succeeded {
		t.Errorf("queued execution ended %s", done.Status)
	}
	if !done.StartedAt.After(*waitStatus(t, e, first.ID, workflows.Cancelled).EndedAt) && !done.StartedAt.Equal(*waitStatus(t, e, first.ID, workflows.Cancelled).EndedAt) {
		t.Errorf("second started before first ended")
	}
	if got := waitStatus(t, e, third.ID, workflows.Cancelled); got.StartedAt != nil {
		t.Errorf("a cancelled queued execution started")
	}
	if _, err := e.svc.Engine.Cancel(ctx, done.ID); err == nil {
		t.Errorf("cancelling an ended execution should fail")
	}
}

func TestSubmitRejectsBadRequests(t *testing.T) {
	e := newEnv(t)
	e.deploy("bad", blockBlueprint)
	ctx := context.Background()
	tests := []struct {
		req  workflows.Request
		want string
	}{
		{workflows.Request{Deployment: "nope", Workflow: "install"}, "not found"},
		{workflows.Request{Deployment: "bad", Workflow: "blok"}, `no workflow "blok"`},
		{workflows.Request{Deployment: "bad", Workflow: "block", Parameters: map[string]string{"mss": "1"}}, `Did you mean "ms"?`},
		{workflows.Request{Deployment: "bad", Workflow: "install", Parameters: map[string]string{"x": "1"}}, "takes no parameters"},
	}
	for _, tt := range tests {
		if _, err := e.svc.Engine.Submit(ctx, tt.req); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.req, err, tt.want)
		}
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.deploy("dry", node("n", "", ""))
	ctx := context.Background()
	x, err := e.svc.Run(ctx, workflows.Request{Deployment: "dry", Workflow: workflows.Uninstall, DryRun: true})
	must(t, err)
	if x.Status != workflows.Succeeded {
		t.Fatalf("dry run %s: %s", x.Status, x.Error)
	}
	d, err := e.store.Deployment(ctx, "dry")
	must(t, err)
	if workflows.OfNode(d.Instances, "n")[0].State != workflows.StateStarted {
		t.Errorf("dry-run uninstall changed state to %s", workflows.OfNode(d.Instances, "n")[0].State)
	}
}

// TestRecoverAfterCrash simulates what a killed process leaves: executions
// marked started. Reopened, install resumes and skips what was done; a
// workflow that cannot resume fails with the reason; nothing stays started.
func TestRecoverAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.deploy("crash", node("a", "", "")+node("b", "", "depends_on = [node.a]")+blockWorkflows)
	ctx := context.Background()
	d, err := e.store.Deployment(ctx, "crash")
	must(t, err)
	// The crash happened after a was created, before b.
	workflows.OfNode(d.Instances, "b")[0].State = workflows.StateUninitialized
	must(t, e.store.PutInstance(ctx, "crash", workflows.OfNode(d.Instances, "b")[0]))
	now := time.Now().UTC()
	install := &workflows.Execution{ID: workflows.NewID(), Deployment: "crash", Workflow: workflows.Install, Status: workflows.Started, CreatedAt: now, StartedAt: &now}
	block := &workflows.Execution{ID: workflows.NewID(), Deployment: "crash", Workflow: "block", Status: workflows.Started, CreatedAt: now, StartedAt: &now}
	resumable := &workflows.Execution{ID: workflows.NewID(), Deployment: "crash", Workflow: "block_resumable", Args: map[string]string{"ms": "1"}, Status: workflows.Started, CreatedAt: now, StartedAt: &now}
	for _, x := range []*workflows.Execution{install, block, resumable} {
		must(t, e.store.PutExecution(ctx, x))
	}
	e.close()
	before := rec("crash").attempts["a.create"]

	e.open()
	must(t, e.svc.Engine.Resume(ctx))
	x, err := e.svc.Engine.Wait(ctx, install.ID)
	must(t, err)
	if x.Status != workflows.Succeeded || x.Resumes != 1 {
		t.Errorf("resumed install: %s (resumes %d) %s", x.Status, x.Resumes, x.Error)
	}
	if got := rec("crash").attempts["a.create"]; got != before {
		t.Errorf("a.create ran again after resume")
	}
	if got := rec("crash").attempts["b.create"]; got != 2 {
		t.Errorf("b.create ran %d times in all, want 2 (deploy, resume)", got)
	}
	evs := e.events(x)
	if countEvents(evs, workflows.EventWorkflowResumed) != 1 {
		t.Errorf("no resumed event")
	}
	failed := waitStatus(t, e, block.ID, workflows.Failed)
	if !strings.Contains(failed.Error, "cannot resume safely") {
		t.Errorf("non-resumable error = %q", failed.Error)
	}
	waitStatus(t, e, resumable.ID, workflows.Succeeded)
}
