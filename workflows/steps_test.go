package workflows_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/workflows"
)

// maintenance is a workflow of steps over a web tier (two instances) and
// a database: drain the web tier, back the database up, then resume the
// web tier; if the backup fails, notify. FAIL is a file whose existence
// fails the backup.
const maintenance = `
node_type "app" {
  operation "drain" { implementation = "test" }
  operation "resume" { implementation = "test" }
  operation "notify" { implementation = "test" }
}
node_type "store" {
  operation "backup" {
    implementation = "test"
    inputs         = { fail_if_exists = "FAIL" }
  }
}
node "web" {
  type      = "app"
  instances { default = 2 }
}
node "db" { type = "store" }
workflow "block" {
  uses = "test.block"
  parameter "ms" { type = number }
}
workflow "maintenance" {
  parameter "pause_ms" {
    type    = number
    default = 1
  }
  precondition {
    target        = node.db
    condition     = self.state == "started"
    error_message = "the database must be running to be backed up"
  }
  step "drain" {
    target         = node.web
    call_operation = "drain"
    on_success     = [step.backup, step.wait]
  }
  step "wait" {
    inline     = workflow.block
    parameters = { ms = param.pause_ms }
  }
  step "backup" {
    target         = node.db
    call_operation = "backup"
    on_success     = [step.resume]
    on_failure     = [step.notify]
  }
  step "resume" {
    target         = node.web
    call_operation = "resume"
  }
  step "notify" {
    target         = node.web
    call_operation = "notify"
    inputs         = { reason = "backup failed" }
  }
  step "mark" {
    target    = node.db
    set_state = "configured"
  }
}
`

// stepEvents are the step events of an execution, "type step" each.
func stepEvents(evs []workflows.Event) []string {
	var out []string
	for _, ev := range evs {
		if strings.HasPrefix(ev.Type, "step_") {
			out = append(out, ev.Type+" "+ev.Step)
		}
	}
	return out
}

// before reports whether a comes before b in list (both present).
func before(list []string, a, b string) bool {
	i, j := slices.Index(list, a), slices.Index(list, b)
	return i >= 0 && j >= 0 && i < j
}

func TestStepWorkflowsRunTheirGraph(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      bool
		wantOps   []string // the operations that ran, counted per node.op
		notOps    []string
		wantError string
		order     [][2]string // step events, a before b
		skipped   []string
	}{
		{
			name:    "success path: each step after the steps it follows, the failure path skipped",
			wantOps: []string{"web.drain", "web.drain", "db.backup", "web.resume", "web.resume"},
			notOps:  []string{"web.notify"},
			order: [][2]string{{"step_succeeded drain", "step_started backup"}, {"step_succeeded drain", "step_started wait"},
				{"step_succeeded backup", "step_started resume"}},
			skipped: []string{"notify"},
		},
		{
			name: "a failed step runs its on_failure steps and the execution ends failed, handled",
			fail: true, wantOps: []string{"web.drain", "web.drain", "db.backup", "web.notify", "web.notify"},
			notOps:    []string{"web.resume"},
			wantError: "step backup failed (handled by its on_failure steps: notify succeeded)",
			order:     [][2]string{{"step_failed backup", "step_started notify"}},
			skipped:   []string{"resume"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			id := fmt.Sprintf("st%d", len(tc.wantOps)+len(tc.notOps)*10)
			fail := filepath.Join(e.dir, "fail-"+id)
			if tc.fail {
				must(t, os.WriteFile(fail, nil, 0o600))
			}
			if x := e.deploy(id, strings.ReplaceAll(maintenance, `"FAIL"`, fmt.Sprintf("%q", fail))); x.Status != workflows.Succeeded {
				t.Fatalf("install %s: %s", x.Status, x.Error)
			}
			r := rec(id)
			r.mu.Lock()
			r.order = nil
			r.mu.Unlock()
			x, err := e.svc.Engine.Submit(context.Background(), workflows.Request{Deployment: id, Workflow: "maintenance", Parameters: map[string]string{"pause_ms": "5"}})
			must(t, err)
			x, err = e.svc.Engine.Wait(context.Background(), x.ID)
			must(t, err)
			if tc.wantError == "" && x.Status != workflows.Succeeded || tc.wantError != "" && (x.Status != workflows.Failed || !strings.Contains(x.Error, tc.wantError)) {
				t.Fatalf("execution %s: %q, want error %q", x.Status, x.Error, tc.wantError)
			}
			r.mu.Lock()
			ran := slices.Clone(r.order)
			r.mu.Unlock()
			for _, op := range slices.Compact(slices.Sorted(slices.Values(tc.wantOps))) {
				if got, want := count(ran, op), count(tc.wantOps, op); got != want {
					t.Errorf("%s ran %d times, want %d (ran %v)", op, got, want, ran)
				}
			}
			for _, op := range tc.notOps {
				if slices.Contains(ran, op) {
					t.Errorf("%s ran: %v", op, ran)
				}
			}
			evs := stepEvents(e.events(x))
			for _, o := range tc.order {
				if !before(evs, o[0], o[1]) {
					t.Errorf("%q is not before %q in %v", o[0], o[1], evs)
				}
			}
			for _, s := range tc.skipped {
				if !slices.Contains(evs, "step_skipped "+s) {
					t.Errorf("step %s not skipped: %v", s, evs)
				}
			}
			// mark follows nothing: it runs at once, and sets the state.
			if !slices.Contains(evs, "step_succeeded mark") {
				t.Errorf("mark did not run: %v", evs)
			}
			d, err := e.svc.Deployment(context.Background(), id)
			must(t, err)
			for _, inst := range d.Instances {
				if inst.Node == "db" && inst.State != "configured" {
					t.Errorf("db instance %s is %s, want configured (set_state)", inst.ID, inst.State)
				}
			}
		})
	}
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func TestStepWorkflowPreconditionRefusesBeforeAnythingRuns(t *testing.T) {
	e := newEnv(t)
	e.deploy("pre", strings.ReplaceAll(maintenance, `"FAIL"`, `"none"`))
	ctx := context.Background()
	// The database no longer started: set_state through another workflow
	// would do; stop does it for real.
	x, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "pre", Workflow: "stop"})
	must(t, err)
	_, err = e.svc.Engine.Wait(ctx, x.ID)
	must(t, err)
	r := rec("pre")
	r.mu.Lock()
	r.order = nil
	r.mu.Unlock()
	_, err = e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "pre", Workflow: "maintenance"})
	if err == nil || !strings.Contains(err.Error(), "the database must be running to be backed up") || !strings.Contains(err.Error(), "nothing was run") {
		t.Fatalf("submit: %v, want the precondition's error_message", err)
	}
	list, err := e.store.Unended(ctx, "pre")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("a refused workflow left executions: %+v", list)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.order) != 0 {
		t.Errorf("operations ran: %v", r.order)
	}
}

func TestStepWorkflowResumeSkipsTheStepsDone(t *testing.T) {
	e := newEnv(t)
	fail := filepath.Join(e.dir, "fail")
	must(t, os.WriteFile(fail, nil, 0o600))
	e.deploy("res", strings.ReplaceAll(strings.ReplaceAll(maintenance, `"FAIL"`, fmt.Sprintf("%q", fail)), "on_failure     = [step.notify]", ""))
	ctx := context.Background()
	r := rec("res")
	r.mu.Lock()
	r.order = nil
	r.mu.Unlock()
	x, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "res", Workflow: "maintenance"})
	must(t, err)
	x, err = e.svc.Engine.Wait(ctx, x.ID)
	must(t, err)
	if x.Status != workflows.Failed || !strings.Contains(x.Error, "step backup failed") {
		t.Fatalf("first run %s: %s", x.Status, x.Error)
	}
	must(t, os.Remove(fail))
	_, err = e.svc.Engine.ResumeExecution(ctx, x.ID)
	must(t, err)
	x, err = e.svc.Engine.Wait(ctx, x.ID)
	must(t, err)
	if x.Status != workflows.Succeeded {
		t.Fatalf("resumed run %s: %s", x.Status, x.Error)
	}
	r.mu.Lock()
	ran := slices.Clone(r.order)
	r.mu.Unlock()
	if count(ran, "web.drain") != 2 || count(ran, "db.backup") != 2 || count(ran, "web.resume") != 2 {
		t.Errorf("ran %v: want drain twice (once per instance, not again on resume), backup twice (failed, then again), resume twice", ran)
	}
	if evs := stepEvents(e.events(x)); !slices.Contains(evs, "step_skipped drain") {
		t.Errorf("the resumed run did not skip drain: %v", evs)
	}
}

// What a killed process leaves of a step workflow: the execution started,
// drain done on both instances, wait (an inlined plugin workflow that
// cannot resume) and backup running. Reopened: drain is not run again,
// backup runs again, wait fails with the reason instead of running twice,
// and the execution ends failed.
func TestStepWorkflowRecoversAfterACrash(t *testing.T) {
	e := newEnv(t)
	e.deploy("crashst", strings.ReplaceAll(maintenance, `"FAIL"`, `"none"`))
	ctx := context.Background()
	d, err := e.store.Deployment(ctx, "crashst")
	must(t, err)
	steps := map[string]string{"drain": workflows.StepSucceeded, "wait": workflows.StepStarted, "backup": workflows.StepStarted}
	for _, inst := range workflows.OfNode(d.Instances, "web") {
		steps["drain@"+inst.ID] = workflows.StepSucceeded
	}
	now := time.Now().UTC()
	x := &workflows.Execution{ID: workflows.NewID(), Deployment: "crashst", Workflow: "maintenance", Status: workflows.Started,
		CreatedAt: now, StartedAt: &now, Steps: steps}
	must(t, e.store.PutExecution(ctx, x))
	e.close()
	r := rec("crashst")
	r.mu.Lock()
	r.order = nil
	r.mu.Unlock()

	e.open()
	must(t, e.svc.Engine.Resume(ctx))
	x = waitStatus(t, e, x.ID, workflows.Failed)
	if !strings.Contains(x.Error, "step wait failed: step wait was running block when orch stopped; test.block cannot resume safely") {
		t.Errorf("error %q", x.Error)
	}
	r.mu.Lock()
	ran := slices.Clone(r.order)
	r.mu.Unlock()
	if count(ran, "web.drain") != 0 || count(ran, "db.backup") != 1 {
		t.Errorf("after the crash ran %v: want backup once, drain not again", ran)
	}
	if evs := stepEvents(e.events(x)); !slices.Contains(evs, "step_skipped drain") || !slices.Contains(evs, "step_skipped resume") {
		t.Errorf("events %v: drain skipped as done, resume not run (wait failed unhandled)", evs)
	}
}
