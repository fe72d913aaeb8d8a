package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchhq/orch/workflows"
)

// journalLine is one line op.sh of the nodecellar example wrote:
// "OPERATION INSTANCE DETAIL".
type journalLine struct{ op, inst, detail string }

func readJournal(t *testing.T, path string) []journalLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []journalLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) < 2 {
			continue
		}
		jl := journalLine{op: f[0], inst: f[1]}
		if len(f) == 3 {
			jl.detail = strings.TrimSpace(f[2])
		}
		out = append(out, jl)
	}
	return out
}

// at is the position of the first line matching, or -1.
func at(j []journalLine, op, inst, detailPrefix string) int {
	return slices.IndexFunc(j, func(l journalLine) bool {
		return l.op == op && l.inst == inst && strings.HasPrefix(l.detail, detailPrefix)
	})
}

func count(j []journalLine, op, inst string) int {
	n := 0
	for _, l := range j {
		if l.op == op && l.inst == inst {
			n++
		}
	}
	return n
}

// killDuringCreate runs orch with args while op.sh holds every create back
// (journal.slow), kills it with SIGKILL once the create of an instance
// whose id starts with prefix has begun, and waits until the creates held
// back have given up unrecorded, as if the machine had gone down with orch:
// with journal.orphans, op.sh gives up a create whose orch is gone, also
// one the killed orch started that only begins after the kill.
func killDuringCreate(t *testing.T, state, journal, prefix string, args ...string) {
	t.Helper()
	slow, orphans := journal+".slow", journal+".orphans"
	for _, f := range []string{slow, orphans} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(orchBin, append([]string{"--state", state}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(journal)
		if strings.Contains(string(b), "begin-create "+prefix) {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("orch %s did not reach a create of %s*:\n%s", strings.Join(args, " "), prefix, b)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	waitAbandoned(t, journal)
	_ = os.Remove(slow)
}

// waitAbandoned waits until every create op.sh held back has given up: on
// a loaded machine a waiting script may take its time to notice.
func waitAbandoned(t *testing.T, journal string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		j := readJournal(t, journal)
		waiting := 0
		for _, l := range j {
			switch l.op {
			case "begin-create":
				waiting++
			case "abandoned":
				waiting--
			}
		}
		if waiting == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiting creates did not give up:\n%v", j)
		}
	}
}

type shown struct {
	Instances map[string]*workflows.NodeInstance `json:"instances"`
	Outputs   map[string]any                     `json:"outputs"`
}

func showDeployment(t *testing.T, state, id string) shown {
	t.Helper()
	r := orch(t, state, "deployments", "show", id, "-o", "json")
	if r.code != 0 {
		t.Fatalf("deployments show: %s", r.stderr)
	}
	var d shown
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func ofNode(d shown, node string) []*workflows.NodeInstance {
	return workflows.OfNode(d.Instances, node)
}

// checkApps checks every app instance runs in a host instance that exists,
// one per host, started.
func checkApps(t *testing.T, d shown, hosts int) {
	t.Helper()
	if got := len(ofNode(d, "host")); got != hosts {
		t.Errorf("%d host instances, want %d", got, hosts)
	}
	perHost := map[string]int{}
	for _, app := range ofNode(d, "nodecellar") {
		if d.Instances[app.Host] == nil || d.Instances[app.Host].Node != "host" {
			t.Errorf("app %s has host %q, which is not a host instance", app.ID, app.Host)
		}
		perHost[app.Host]++
		if app.State != workflows.StateStarted {
			t.Errorf("app %s is %s", app.ID, app.State)
		}
	}
	for _, h := range ofNode(d, "host") {
		if perHost[h.ID] != 1 {
			t.Errorf("host %s has %d apps, want 1", h.ID, perHost[h.ID])
		}
		if h.State != workflows.StateStarted {
			t.Errorf("host %s is %s", h.ID, h.State)
		}
	}
}

func instanceIDs(d shown) []string {
	var out []string
	for id := range d.Instances {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// The nodecellar example through the CLI, checked from what its
// operations wrote: install per instance with relationship operations,
// runtime attributes read by the app, scale out and in, a refused scale,
// heal, execute_operation, a scale killed with SIGKILL and resumed, and
// undeploy in reverse.
func TestNodecellarExample(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	journal := filepath.Join(dir, "journal")
	bp := "../../examples/nodecellar/blueprint.hcl"
	run := func(args ...string) result {
		t.Helper()
		r := orch(t, state, args...)
		if r.code != 0 {
			t.Fatalf("orch %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	reset := func() { _ = os.WriteFile(journal, nil, 0o600) }

	run("deploy", bp, "-d", "nc", "-i", "journal="+journal)
	d := showDeployment(t, state, "nc")
	checkApps(t, d, 2)
	mongod := ofNode(d, "mongod")
	if len(mongod) != 1 || mongod[0].Runtime["address"] != "127.0.0.1" {
		t.Fatalf("mongod = %+v", mongod)
	}
	db := mongod[0].ID
	j := readJournal(t, journal)
	for _, app := range ofNode(d, "nodecellar") {
		steps := []int{at(j, "create", app.ID, ""), at(j, "preconfigure", app.ID, app.ID+"->"+db+" mongo=127.0.0.1:27017"),
			at(j, "configure", app.ID, ""), at(j, "start", app.ID, ""), at(j, "establish", db, app.ID+"->"+db)}
		if slices.Contains(steps, -1) || !slices.IsSorted(steps) {
			t.Errorf("app %s: create, preconfigure (with the db's attributes), configure, start, establish at %v\n%v", app.ID, steps, j)
		}
		if host := at(j, "start", app.Host, ""); host < 0 || host > steps[0] {
			t.Errorf("app %s created before its host %s started", app.ID, app.Host)
		}
		if dbStart := at(j, "start", db, ""); dbStart < 0 || dbStart > steps[1] {
			t.Errorf("app %s preconfigured before the db started", app.ID)
		}
	}
	r := run("deployments", "outputs", "nc", "-o", "json")
	if !strings.Contains(r.stdout, `"mongodb://127.0.0.1:27017/nodecellar"`) {
		t.Errorf("outputs = %s", r.stdout)
	}

	// Scale out: a host with its app, which establishes with the db.
	reset()
	run("workflow", "run", "scale", "-d", "nc", "-p", "scalable_entity_name=host", "-p", "delta=1")
	before := d
	d = showDeployment(t, state, "nc")
	checkApps(t, d, 3)
	j = readJournal(t, journal)
	var added []string
	for _, app := range ofNode(d, "nodecellar") {
		if before.Instances[app.ID] == nil {
			added = append(added, app.ID)
			if at(j, "establish", db, app.ID+"->"+db) < at(j, "start", app.ID, "") || at(j, "preconfigure", app.ID, app.ID+"->"+db+" mongo=") < 0 {
				t.Errorf("added app %s did not preconfigure and establish with the db:\n%v", app.ID, j)
			}
		} else if count(j, "create", app.ID) > 0 || count(j, "establish", db) > 1 {
			t.Errorf("scale touched the existing app %s:\n%v", app.ID, j)
		}
	}
	if len(added) != 1 {
		t.Fatalf("scale +1 added apps %v", added)
	}

	// Scale past max: refused, nothing changed.
	reset()
	r = orch(t, state, "workflow", "run", "scale", "-d", "nc", "-p", "scalable_entity_name=host", "-p", "delta=1")
	if r.code == 0 || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stderr, "max 3") {
		t.Errorf("scale past max: exit %d\n%s", r.code, r.stderr)
	}
	if after := showDeployment(t, state, "nc"); !slices.Equal(instanceIDs(after), instanceIDs(d)) {
		t.Errorf("a refused scale changed the instances: %v -> %v", instanceIDs(d), instanceIDs(after))
	}
	if b, _ := os.ReadFile(journal); len(b) > 0 {
		t.Errorf("a refused scale ran operations:\n%s", b)
	}

	// Scale in by 2: the newest hosts go, their apps unlinking first.
	reset()
	run("workflow", "run", "scale", "-d", "nc", "-p", "scalable_entity_name=host", "-p", "delta=-2")
	before = d
	d = showDeployment(t, state, "nc")
	checkApps(t, d, 1)
	j = readJournal(t, journal)
	for _, app := range ofNode(before, "nodecellar") {
		if d.Instances[app.ID] != nil {
			continue
		}
		u, s, del, hs := at(j, "unlink", db, app.ID+"->"+db), at(j, "stop", app.ID, ""), at(j, "delete", app.ID, ""), at(j, "stop", app.Host, "")
		if u < 0 || u > s || s > del || del > hs {
			t.Errorf("removed app %s: unlink %d, stop %d, delete %d, its host's stop %d\n%v", app.ID, u, s, del, hs, j)
		}
	}
	if oldest := ofNode(before, "host")[0].ID; d.Instances[oldest] == nil {
		t.Errorf("scale in removed the oldest host %s", oldest)
	}

	// Heal the host: it and its app are reinstalled, the link re-run.
	reset()
	host := ofNode(d, "host")[0]
	app := ofNode(d, "nodecellar")[0]
	run("workflow", "run", "heal", "-d", "nc", "-p", "node_instance_id="+host.ID)
	j = readJournal(t, journal)
	order := []int{at(j, "unlink", db, app.ID+"->"+db), at(j, "stop", app.ID, ""), at(j, "delete", host.ID, ""),
		at(j, "create", host.ID, ""), at(j, "create", app.ID, ""), at(j, "establish", db, app.ID+"->"+db)}
	if slices.Contains(order, -1) || !slices.IsSorted(order) {
		t.Errorf("heal order %v\n%v", order, j)
	}
	if count(j, "stop", db) > 0 {
		t.Errorf("heal of a host touched the db:\n%v", j)
	}

	// execute_operation by type, with kwargs over the operation's inputs.
	reset()
	run("workflow", "run", "execute_operation", "-d", "nc", "-p", "operation=backup",
		"-p", `type_names=["nodecellar.Mongo"]`, "-p", `operation_kwargs={ DETAIL = "nightly" }`)
	if j = readJournal(t, journal); len(j) != 1 || j[0] != (journalLine{"backup", db, "nightly"}) {
		t.Errorf("execute_operation ran %v", j)
	}

	// A scale killed with SIGKILL in the middle, then resumed.
	reset()
	before = showDeployment(t, state, "nc")
	killDuringCreate(t, state, journal, "host_", "workflow", "run", "scale", "-d", "nc", "-p", "scalable_entity_name=host", "-p", "delta=2")
	r = run("executions", "list", "-d", "nc", "-o", "json")
	var xs []*workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil {
		t.Fatal(err)
	}
	killed := xs[len(xs)-1]
	if killed.Workflow != "scale" || killed.Status.Ended() {
		t.Fatalf("the killed scale is %s %s", killed.Workflow, killed.Status)
	}
	run("executions", "resume", killed.ID)
	d = showDeployment(t, state, "nc")
	checkApps(t, d, 3)
	j = readJournal(t, journal)
	for _, inst := range d.Instances {
		if before.Instances[inst.ID] != nil {
			continue
		}
		if n := count(j, "create", inst.ID); n != 1 {
			t.Errorf("added instance %s created %d times", inst.ID, n)
		}
	}
	for _, l := range j {
		if l.op == "begin-create" || l.op == "create" {
			if d.Instances[l.inst] == nil {
				t.Errorf("instance %s was created but is not in the deployment (orphaned)", l.inst)
			}
		}
	}
	x := showExecution(t, state, killed.ID)
	if x.Status != workflows.Succeeded || x.Resumes == 0 {
		t.Errorf("resumed scale: %s, %d resumes", x.Status, x.Resumes)
	}

	// Undeploy: every app unlinks and stops before its host and the db.
	reset()
	d = showDeployment(t, state, "nc")
	run("undeploy", "nc")
	j = readJournal(t, journal)
	dbStop := at(j, "stop", db, "")
	for _, app := range ofNode(d, "nodecellar") {
		u, s, hs := at(j, "unlink", db, app.ID+"->"+db), at(j, "stop", app.ID, ""), at(j, "stop", app.Host, "")
		if u < 0 || u > s || s > hs || s > dbStop {
			t.Errorf("undeploy of app %s: unlink %d, stop %d, host stop %d, db stop %d\n%v", app.ID, u, s, hs, dbStop, j)
		}
	}
	if at(j, "stop", ofNode(d, "mongo_host")[0].ID, "") < dbStop {
		t.Errorf("the db's host stopped before the db:\n%v", j)
	}
}

func showExecution(t *testing.T, state, id string) *workflows.Execution {
	t.Helper()
	r := orch(t, state, "executions", "show", id, "-o", "json")
	var x workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatalf("executions show: %v\n%s%s", err, r.stdout, r.stderr)
	}
	return &x
}
