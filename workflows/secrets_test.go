package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/workflows"
)

// leakyOp prints its "password" input and fails with it: the engine must
// scrub it from events and errors, whatever the plugin does.
func leakyOp(_ context.Context, op *plugins.OperationContext) error {
	pw, _ := op.Inputs["password"].(string)
	op.Log("info", "connecting with "+pw)
	return plugins.Recoverable(fmt.Errorf("login as admin:%s refused", pw))
}

type leakyWorkflow struct{}

func (leakyWorkflow) Run(_ context.Context, wc plugins.WorkflowContext) error {
	var p struct {
		Token string `param:"token"`
	}
	if err := wc.Decode(&p); err != nil {
		return err
	}
	wc.Event("info", "using token "+p.Token)
	return errors.New("token " + p.Token + " expired")
}

type panickyWorkflow struct{}

func (panickyWorkflow) Run(context.Context, plugins.WorkflowContext) error { panic("boom") }

const secretsBlueprint = `
input "password" {
  sensitive = true
  default   = "hunter2-pw"
}
node "db" {
  operation "create" {
    implementation = "test.leaky"
    inputs         = { password = input.password }
    max_retries    = 1
    retry_interval = "10ms"
  }
}
workflow "rotate" {
  uses = "test.leaky_workflow"
  parameter "token" { default = input.password }
}
workflow "crash" { uses = "test.panicky" }
`

// What is sensitive never reaches an event or an execution's error, even
// when a plugin prints it or puts it in its error (the retry stays a
// retry); a plugin workflow that panics fails its execution instead of
// taking orch down.
func TestSecretsAreScrubbedAndPanicsContained(t *testing.T) {
	e := newEnv(t)
	reg := testRegistry(t)
	must(t, reg.RegisterOperation("test.leaky", plugins.OperationFunc(leakyOp)))
	must(t, reg.RegisterWorkflow("test.leaky_workflow", leakyWorkflow{}))
	must(t, reg.RegisterWorkflow("test.panicky", panickyWorkflow{}))
	e.close()
	e.openWith(reg)
	x := e.deploy("secrets", secretsBlueprint)
	if x.Status != workflows.Failed || strings.Contains(x.Error, "hunter2") || !strings.Contains(x.Error, "admin:(sensitive) refused") {
		t.Errorf("install %s: %q", x.Status, x.Error)
	}
	evs := e.events(x)
	if n := countEvents(evs, workflows.EventOperationRetrying); n != 1 {
		t.Errorf("%d retries, want 1: the scrubbed error must stay recoverable", n)
	}
	ctx := context.Background()
	run := func(wf string) *workflows.Execution {
		x, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "secrets", Workflow: wf})
		must(t, err)
		end, err := e.svc.Engine.Wait(ctx, x.ID)
		must(t, err)
		evs = append(evs, e.events(end)...)
		return end
	}
	if end := run("rotate"); end.Status != workflows.Failed || end.Error != "token (sensitive) expired" {
		t.Errorf("rotate %s: %q", end.Status, end.Error)
	}
	if end := run("crash"); end.Status != workflows.Failed || !strings.Contains(end.Error, "plugin panicked: boom") {
		t.Errorf("crash %s: %q", end.Status, end.Error)
	}
	seen := 0
	for _, ev := range evs {
		if strings.Contains(ev.Message, "hunter2") {
			t.Errorf("event %s shows the secret: %s", ev.Type, ev.Message)
		}
		if strings.Contains(ev.Message, "(sensitive)") {
			seen++
		}
	}
	if seen < 3 {
		t.Errorf("only %d events mention the redacted secret", seen)
	}
	stored, err := e.store.Execution(ctx, x.ID)
	must(t, err)
	if strings.Contains(stored.Error, "hunter2") {
		t.Errorf("the state file keeps the secret: %s", stored.Error)
	}
}

// A plugin workflow runs within its timeout (the workflow block's, an hour
// by default): one that never ends fails, and its deployment's queue moves
// on.
func TestAWorkflowThatNeverEndsTimesOut(t *testing.T) {
	e := newEnv(t)
	if x := e.deploy("slow", `
workflow "wait" {
  uses    = "test.block"
  timeout = "200ms"
  parameter "ms" { default = 60000 }
}`); x.Status != workflows.Succeeded {
		t.Fatalf("install: %s", x.Error)
	}
	ctx := context.Background()
	x, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "slow", Workflow: "wait"})
	must(t, err)
	end, err := e.svc.Engine.Wait(ctx, x.ID)
	must(t, err)
	if end.Status != workflows.Failed || !strings.Contains(end.Error, "timed out after 200ms") {
		t.Errorf("%s: %q", end.Status, end.Error)
	}
	next, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "slow", Workflow: "wait", Parameters: map[string]string{"ms": "1"}})
	must(t, err)
	if end, err := e.svc.Engine.Wait(ctx, next.ID); err != nil || end.Status != workflows.Succeeded {
		t.Errorf("the next run: %v %v", end, err)
	}
}

// failStart is a store whose write of a started execution fails.
type failStart struct {
	*orchestrator.Store
	svc *orchestrator.Service
}

func (f failStart) Target(ctx context.Context, id string) (*workflows.Target, error) {
	return f.svc.Target(ctx, id)
}

func (f failStart) PutExecution(ctx context.Context, x *workflows.Execution) error {
	if x.Status == workflows.Started {
		return errors.New("disk full")
	}
	return f.Store.PutExecution(ctx, x)
}

// An execution whose start cannot be stored does not run (after a restart
// it would look pending and run again): it ends failed, saying why.
func TestAnExecutionWhoseStartIsNotStoredDoesNotRun(t *testing.T) {
	e := newEnv(t)
	if x := e.deploy("nostart", `workflow "wait" {
  uses = "test.block"
  parameter "ms" { default = 1 }
}`); x.Status != workflows.Succeeded {
		t.Fatalf("install: %s", x.Error)
	}
	eng := workflows.New(failStart{e.store, e.svc}, testRegistry(t))
	ctx := context.Background()
	x, err := eng.Submit(ctx, workflows.Request{Deployment: "nostart", Workflow: "wait"})
	must(t, err)
	end, err := eng.Wait(ctx, x.ID)
	must(t, err)
	if end.Status != workflows.Failed || !strings.Contains(end.Error, "not started: its start could not be stored (disk full)") {
		t.Errorf("%s: %q", end.Status, end.Error)
	}
	must(t, eng.FlushEvents(ctx))
	evs, err := e.store.Events(ctx, x.ID, 0)
	must(t, err)
	for _, ev := range evs {
		if strings.Contains(ev.Message, "blocking") || ev.Type == workflows.EventWorkflowStarted {
			t.Errorf("the workflow ran: %s %s", ev.Type, ev.Message)
		}
	}
	_ = eng.Close(ctx)
}
