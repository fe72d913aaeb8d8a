package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/workflows"
)

// executionEvents reads an execution's events through the CLI.
func executionEvents(t *testing.T, state, id string) []workflows.Event {
	t.Helper()
	r := orch(t, state, "-o", "json", "events", "-e", id)
	if r.code != 0 {
		t.Fatalf("events: %s", r.stderr)
	}
	var out []workflows.Event
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev workflows.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		out = append(out, ev)
	}
	return out
}

// stepLog is the step events, "type step" each, in order.
func stepLog(evs []workflows.Event) []string {
	var out []string
	for _, ev := range evs {
		if strings.HasPrefix(ev.Type, "step_") {
			out = append(out, ev.Type+" "+ev.Step)
		}
	}
	return out
}

// inOrder reports whether want appear in list in that order.
func inOrder(list []string, want ...string) bool {
	at := 0
	for _, w := range want {
		i := slices.Index(list[at:], w)
		if i < 0 {
			return false
		}
		at += i + 1
	}
	return true
}

// The maintenance example on the primary cluster: a workflow of steps that
// inlines kube_scale (drain, then restore), runs the database's backup
// between, and notifies instead when the backup fails; another that scales
// then records; their preconditions; the dry run's plan.
func TestMaintenanceExampleRunsItsStepsOnTheCluster(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "maint")
	dir := t.TempDir()
	state, backups := filepath.Join(dir, "state.db"), filepath.Join(dir, "backups")
	if r := orch(t, state, "deploy", "../../examples/maintenance/blueprint.hcl", "-d", "maint", "-i", "kubeconfig="+e.Kubeconfig,
		"-i", "namespace="+ns, "-i", "backup_dir="+backups); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	replicas := func() int32 { return replicasOf(t, cs, ns, "web") }
	if n := replicas(); n != 2 {
		t.Fatalf("web has %d replicas after install, want 2", n)
	}
	lastExecution := func() string {
		t.Helper()
		r := orch(t, state, "-o", "json", "executions", "list", "-d", "maint")
		var xs []*workflows.Execution
		if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil || len(xs) == 0 {
			t.Fatalf("executions: %v %s", err, r.stdout)
		}
		return xs[len(xs)-1].ID
	}

	// The dry run prints the plan in the order it would run, and changes
	// nothing.
	r := orch(t, state, "workflow", "run", "maintenance", "-d", "maint", "--dry-run")
	if r.code != 0 {
		t.Fatalf("dry run: %s%s", r.stdout, r.stderr)
	}
	plan := []string{"1. drain: inline scale_web; then backup", "2. backup: call_operation backup on db_", "3. restore: inline scale_web", "on failure only: notify: call_operation notify on db_"}
	var lines []string
	for _, l := range strings.Split(r.stdout, "\n") {
		for _, p := range plan {
			if strings.Contains(l, p) {
				lines = append(lines, p)
			}
		}
	}
	if !slices.Equal(lines, plan) {
		t.Errorf("dry run plan %q, want %q:\n%s", lines, plan, r.stdout)
	}
	if _, err := os.Stat(backups); err == nil || replicas() != 2 {
		t.Errorf("the dry run changed something: backups %v, %d replicas", err, replicas())
	}

	// The success path: drained, backed up, restored.
	if r := orch(t, state, "workflow", "run", "maintenance", "-d", "maint"); r.code != 0 {
		t.Fatalf("maintenance: %s%s", r.stdout, r.stderr)
	}
	evs := executionEvents(t, state, lastExecution())
	log := stepLog(evs)
	if !inOrder(log, "step_started drain", "step_succeeded drain", "step_started backup", "step_succeeded backup", "step_started restore", "step_succeeded restore") ||
		!slices.Contains(log, "step_skipped notify") {
		t.Errorf("success path events %v", log)
	}
	drained := slices.ContainsFunc(evs, func(ev workflows.Event) bool { return strings.Contains(ev.Message, "from 2 to 0 replicas") })
	if files, _ := filepath.Glob(filepath.Join(backups, "backup-db_*.json")); len(files) != 1 || !drained || replicas() != 2 {
		t.Errorf("after maintenance: backups %v, drained %v, %d replicas (want 1 backup, drained, 2)", files, drained, replicas())
	}

	// The failure path: the backup fails, notify runs, the web tier stays
	// drained, and the execution fails naming what handled it.
	blocker := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = orch(t, state, "workflow", "run", "maintenance", "-d", "maint", "-p", "backup_dir="+filepath.Join(blocker, "backups"))
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "step backup failed (handled by its on_failure steps: notify succeeded)") {
		t.Fatalf("failing maintenance: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	log = stepLog(executionEvents(t, state, lastExecution()))
	if !inOrder(log, "step_succeeded drain", "step_started backup", "step_failed backup", "step_started notify", "step_succeeded notify") ||
		!slices.Contains(log, "step_skipped restore") {
		t.Errorf("failure path events %v", log)
	}
	notes, _ := os.ReadFile(filepath.Join(backups, "notifications"))
	if !strings.Contains(string(notes), "failed; the web tier is left drained") || replicas() != 0 {
		t.Errorf("after the failed backup: notifications %q, %d replicas (want the notice, 0)", notes, replicas())
	}

	// A second workflow inlining kube_scale, then recording it.
	if r := orch(t, state, "workflow", "run", "grow", "-d", "maint", "-p", "by=+3"); r.code != 0 {
		t.Fatalf("grow: %s%s", r.stdout, r.stderr)
	}
	notes, _ = os.ReadFile(filepath.Join(backups, "notifications"))
	if n := replicas(); n != 3 || !strings.Contains(string(notes), "web tier scaled by +3") {
		t.Errorf("after grow: %d replicas, notifications %q", n, notes)
	}
	if !inOrder(stepLog(executionEvents(t, state, lastExecution())), "step_succeeded scale", "step_started record", "step_succeeded record") {
		t.Errorf("grow did not scale, then record")
	}

	// The database stopped: both refuse before anything runs.
	if r := orch(t, state, "workflow", "run", "stop", "-d", "maint"); r.code != 0 {
		t.Fatalf("stop: %s%s", r.stdout, r.stderr)
	}
	before := lastExecution()
	r = orch(t, state, "workflow", "run", "maintenance", "-d", "maint")
	if r.code == 0 || !strings.Contains(r.stderr, "the database must be running to be backed up") || lastExecution() != before || replicas() != 3 {
		t.Errorf("maintenance with the database stopped: exit %d, %s; new execution %v, %d replicas", r.code, r.stderr, lastExecution() != before, replicas())
	}
}
