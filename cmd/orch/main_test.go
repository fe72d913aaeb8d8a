package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchhq/orch/workflows"
)

var orchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orch-bin-")
	if err != nil {
		panic(err)
	}
	orchBin = filepath.Join(dir, "orch")
	if out, err := exec.Command("go", "build", "-o", orchBin, ".").CombinedOutput(); err != nil {
		panic("build orch: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

func orch(t *testing.T, state string, args ...string) result {
	t.Helper()
	return orchWith(t, nil, state, args...)
}

// orchWith runs orch with env added to this process's environment.
func orchWith(t *testing.T, env []string, state string, args ...string) result {
	t.Helper()
	cmd := exec.Command(orchBin, append([]string{"--state", state}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func index(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// The foundation's end-to-end story: deploy creates the files in dependency
// order, undeploy removes them in reverse, and the CLI shows it all.
func TestDeployAndUndeployTheFilesExample(t *testing.T) {
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state.db")
	dir := filepath.Join(tmp, "files")
	journal := filepath.Join(tmp, "journal")

	r := orch(t, state, "deploy", "../../examples/files/blueprint.hcl", "-d", "files", "-i", "dir="+dir, "-i", "journal="+journal, "-i", "greeting=hi")
	if r.code != 0 {
		t.Fatalf("deploy exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"] config_", ".create started (script", "install succeeded", ": succeeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, r.stdout)
		}
	}
	conf, err := os.ReadFile(filepath.Join(dir, "app.conf"))
	if err != nil || string(conf) != "greeting = HI\n" {
		t.Errorf("app.conf = %q, %v", conf, err)
	}
	j := lines(t, journal)
	for _, edge := range [][2]string{{"mkdir dir", "write config"}, {"mkdir dir", "write cache"}, {"write config", "write app"}} {
		if a, b := index(j, edge[0]), index(j, edge[1]); a < 0 || b < 0 || a > b {
			t.Errorf("journal %v: want %q before %q", j, edge[0], edge[1])
		}
	}

	r = orch(t, state, "deployments", "show", "files", "-o", "json")
	var d struct {
		Instances map[string]workflows.NodeInstance `json:"instances"`
		Outputs   map[string]any                    `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("deployments show -o json: %v\n%s", err, r.stdout)
	}
	ptrs := map[string]*workflows.NodeInstance{}
	for k, v := range d.Instances {
		ptrs[k] = &v
	}
	if apps := workflows.OfNode(ptrs, "app"); len(apps) != 1 || apps[0].State != "started" || apps[0].Runtime["size"] == nil {
		t.Errorf("app instances = %+v", apps)
	}
	if d.Outputs["config_path"] != filepath.Join(dir, "app.conf") {
		t.Errorf("outputs = %v", d.Outputs)
	}

	// Running install again does nothing: every node is started.
	r = orch(t, state, "workflow", "run", "install", "-d", "files")
	if r.code != 0 || len(lines(t, journal)) != 4 {
		t.Errorf("second install: exit %d, journal %v", r.code, lines(t, journal))
	}

	r = orch(t, state, "undeploy", "files")
	if r.code != 0 {
		t.Fatalf("undeploy exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("files left behind: %v", err)
	}
	j = lines(t, journal)[4:]
	for _, edge := range [][2]string{{"remove app", "remove config"}, {"remove config", "rmdir dir"}, {"remove cache", "rmdir dir"}} {
		if a, b := index(j, edge[0]), index(j, edge[1]); a < 0 || b < 0 || a > b {
			t.Errorf("uninstall journal %v: want %q before %q", j, edge[0], edge[1])
		}
	}

	r = orch(t, state, "executions", "list", "-o", "json")
	var xs []workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil || len(xs) != 3 {
		t.Fatalf("executions list: %v %s", err, r.stdout)
	}
	for _, x := range xs {
		if x.Status != workflows.Succeeded {
			t.Errorf("execution %s %s", x.Workflow, x.Status)
		}
	}
	r = orch(t, state, "events", "-e", xs[2].ID)
	if !strings.Contains(r.stdout, "uninstall succeeded") {
		t.Errorf("events: %s", r.stdout)
	}
	if r = orch(t, state, "deployments", "show", "files"); r.code == 0 {
		t.Errorf("deployment still shown after undeploy")
	}
}

func TestFailuresExitNonZero(t *testing.T) {
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state.db")
	bad := filepath.Join(tmp, "bad.hcl")
	if err := os.WriteFile(bad, []byte("node \"a\" {\n  depends_on = [node.b]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	failing := filepath.Join(tmp, "failing.hcl")
	if err := os.WriteFile(failing, []byte(`node "a" {
  operation "create" {
    implementation = "script"
    inputs = { command = ["sh", "-c", "echo disk full >&2; exit 3"] }
  }
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"invalid blueprint", []string{"validate", bad}, bad + ":2:17: error: Reference to undeclared node"},
		{"failing operation", []string{"deploy", failing}, "disk full"},
		{"unknown workflow", []string{"workflow", "run", "nope", "-d", "failing"}, `no workflow "nope"`},
		{"unknown deployment", []string{"undeploy", "ghost"}, "not found"},
		{"bad input flag", []string{"deploy", failing, "-d", "x", "-i", "novalue"}, "want NAME=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := orch(t, state, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0\n%s%s", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("output lacks %q:\n%s%s", tt.want, r.stdout, r.stderr)
			}
		})
	}
}

// startDeploy runs `orch deploy` in the background and returns once the
// slow operation has started.
func startDeploy(t *testing.T, state, blueprint, mark string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(orchBin, "--state", state, "deploy", blueprint, "-d", "crash")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), ".create started") && strings.Contains(sc.Text(), "[slow_") {
				close(started)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("slow operation never started")
	}
	// The script is running once it has left its mark.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(mark); err == nil {
			return cmd
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("slow operation's script never ran")
		}
	}
}

const crashBlueprint = `
input "mark" {}
node "fast" {
  operation "create" {
    implementation = "script"
    inputs = { command = ["true"] }
  }
}
node "slow" {
  depends_on = [node.fast]
  operation "create" {
    implementation = "script"
    # The first run hangs (and is killed); the resumed run finishes.
    inputs = { command = ["sh", "-c", "if [ -e \"$MARK\" ]; then exit 0; fi; touch \"$MARK\"; exec sleep 617"], MARK = input.mark }
    timeout = "60s"
  }
}
`

// startCrashDeploy writes the crash blueprint into a temporary directory and
// starts deploying it; it returns the state file and the running orch.
func startCrashDeploy(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	tmp := t.TempDir()
	mark := filepath.Join(tmp, "mark")
	bp := filepath.Join(tmp, "crash.hcl")
	src := strings.Replace(crashBlueprint, `input "mark" {}`, `input "mark" { default = "`+mark+`" }`, 1)
	if err := os.WriteFile(bp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(tmp, "state.db")
	return state, startDeploy(t, state, bp, mark)
}

// TestKilledMidExecutionResumes kills orch with SIGKILL in the middle of
// install. The next orch command finds the execution started, resumes it
// (skipping what completed) and it succeeds: nothing stays started.
func TestKilledMidExecutionResumes(t *testing.T) {
	state, cmd := startCrashDeploy(t)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The orphaned `sleep` is in its own process group; stop it.
	_ = exec.Command("pkill", "-f", "sleep 617").Run()

	r := orch(t, state, "executions", "list", "-o", "json")
	var xs []workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil || len(xs) != 1 || xs[0].Status != workflows.Started {
		t.Fatalf("after the kill the execution should be left started: %v %s", err, r.stdout)
	}

	// Any command that runs workflows recovers first; this one queues
	// behind the resumed install.
	r = orch(t, state, "workflow", "run", "install", "-d", "crash")
	if r.code != 0 {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = orch(t, state, "executions", "list", "-o", "json")
	xs = nil
	if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil || len(xs) != 2 {
		t.Fatalf("executions: %v %s", err, r.stdout)
	}
	if xs[0].Status != workflows.Succeeded || xs[0].Resumes != 1 {
		t.Errorf("killed install: %s, resumes %d, error %q", xs[0].Status, xs[0].Resumes, xs[0].Error)
	}
	r = orch(t, state, "events", "-e", xs[0].ID)
	if !strings.Contains(r.stdout, "it will resume") || len(regexp.MustCompile(`fast_[0-9a-f]+\.create started`).FindAllString(r.stdout, -1)) != 1 {
		t.Errorf("resumed execution's events:\n%s", r.stdout)
	}
}

// TestInterruptCancels sends SIGINT to a running deploy: the execution is
// cancelled, the operation stopped, and the exit code is non-zero.
func TestInterruptCancels(t *testing.T) {
	state, cmd := startCrashDeploy(t)
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
		t.Errorf("interrupted deploy: %v", err)
	}
	if time.Since(start) > 20*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	r := orch(t, state, "executions", "list", "-o", "json")
	var xs []workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil || len(xs) != 1 || xs[0].Status != workflows.Cancelled {
		t.Errorf("interrupted execution: %v %s", err, r.stdout)
	}
}

// A broker password in ORCH_AMQP_URL is never printed by --help (it was,
// as the flag's default).
func TestHelpPrintsNoBrokerPassword(t *testing.T) {
	for _, args := range [][]string{{"serve", "--help"}, {"metrics", "publish", "--help"}, {"metrics", "record", "--help"}} {
		cmd := exec.Command(orchBin, args...)
		cmd.Env = append(os.Environ(), "ORCH_AMQP_URL=amqp://orch:hunter2@broker:5672/")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "$ORCH_AMQP_URL") {
			t.Errorf("%v prints the password, or does not name the variable:\n%s", args, out)
		}
	}
}
