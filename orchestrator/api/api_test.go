package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/script"
	"github.com/orchhq/orch/workflows"
)

// recorder is a test workflow implementation that records its runs.
type recorder struct {
	mu   sync.Mutex
	runs []map[string]any
}

func (r *recorder) Register(reg *plugins.Registry) error {
	return reg.RegisterWorkflow("test.record", plugins.WorkflowFunc(func(ctx context.Context, wc plugins.WorkflowContext) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.runs = append(r.runs, wc.Parameters())
		return nil
	}))
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

const policyBlueprint = `
node "web" {}
workflow "scale" {
  uses = "test.record"
  parameter "amount" { default = "+0" }
}
policy_type "hot" {
  parameter "limit" { type = number }
  condition "high" { when = mean(window("cpu", "10s")) > param.limit }
}
policy "web_cpu" {
  initial_delay = "0s"
  type       = policy_type.hot
  targets    = [node.web]
  properties = { limit = 80 }
  trigger "high" {
    workflow   = workflow.scale
    parameters = { amount = "+1" }
  }
}
`

type fixture struct {
	mgr    *orchestrator.Manager
	rec    *recorder
	client *Client
	url    string
	dir    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := orchestrator.Open(filepath.Join(dir, "state.db"), orchestrator.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	reg := plugins.NewRegistry()
	if err := reg.Add(script.Plugin{}, rec); err != nil {
		t.Fatal(err)
	}
	stats := orchestrator.NewServeStats()
	svc := orchestrator.NewService(store, reg, nil, workflows.WithEventObserver(stats.ObserveEvent))
	mgr := orchestrator.NewManager(svc, orchestrator.ManagerConfig{AMQPURL: "amqp://unused", Queue: "unused"}, stats)
	if _, _, err := mgr.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Server{Manager: mgr, Token: "test-token-0123456789"}).Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = mgr.Close(ctx)
		store.Close()
	})
	return &fixture{mgr: mgr, rec: rec, client: NewClient(srv.URL, "test-token-0123456789"), url: srv.URL, dir: dir}
}

func (f *fixture) wait(t *testing.T, x *workflows.Execution) *workflows.Execution {
	t.Helper()
	var after uint64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		page, err := f.client.Events(context.Background(), x.ID, after, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page.Events {
			if ev.Seq <= after {
				t.Fatalf("event %d repeated after %d", ev.Seq, after)
			}
			after = ev.Seq
		}
		if page.Execution.Status.Ended() && len(page.Events) == 0 {
			return page.Execution
		}
	}
	t.Fatalf("execution %s did not end", x.ID)
	return nil
}

func TestEveryRouteNeedsTheToken(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/v1/health", "/v1/deployments", "/v1/executions", "/v1/policies", "/metrics"} {
		for name, header := range map[string]string{"none": "", "wrong": "Bearer nope", "no bearer": "test-token-0123456789"} {
			req, _ := http.NewRequest(http.MethodGet, f.url+path, nil)
			if header != "" {
				req.Header.Set("Authorization", header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with %s token: %d, want 401", path, name, resp.StatusCode)
			}
		}
	}
	if _, err := f.client.Health(context.Background()); err != nil {
		t.Errorf("health with the token: %v", err)
	}
}

func TestListenRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "10.1.2.3:0", "example.com:80"} {
		if l, err := Listen(addr); err == nil {
			l.Close()
			t.Errorf("Listen(%q) accepted", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		l, err := Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		l.Close()
	}
}

func TestDeployRunFollowAndUndeployThroughTheAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	files := filepath.Join(f.dir, "files")
	d, x, err := f.client.Deploy(ctx, orchestrator.DeployRequest{
		Paths: []string{mustAbs(t, "../../examples/files/blueprint.hcl")}, ID: "files", Inputs: map[string]string{"dir": files}})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != "files" || x.Workflow != "install" {
		t.Fatalf("deploy answered %s / %s", d.ID, x.Workflow)
	}
	if end := f.wait(t, x); end.Status != workflows.Succeeded {
		t.Fatalf("install %s: %s", end.Status, end.Error)
	}
	if _, err := os.Stat(filepath.Join(files, "app.conf")); err != nil {
		t.Errorf("install through the API did not create the files: %v", err)
	}
	deps, err := f.client.Deployments(ctx)
	if err != nil || len(deps) != 1 || deps[0].ID != "files" {
		t.Errorf("deployments = %v, %v", deps, err)
	}
	wfs, err := f.client.Workflows(ctx, "files")
	if err != nil || len(wfs) < 2 {
		t.Errorf("workflows = %v, %v", wfs, err)
	}
	dry, err := f.client.Submit(ctx, workflows.Request{Deployment: "files", Workflow: "uninstall", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if end := f.wait(t, dry); end.Status != workflows.Succeeded || !end.DryRun {
		t.Errorf("dry run = %+v", end)
	}
	if _, err := os.Stat(filepath.Join(files, "app.conf")); err != nil {
		t.Errorf("a dry-run uninstall removed files: %v", err)
	}
	if _, err := f.client.Submit(ctx, workflows.Request{Deployment: "files", Workflow: "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown workflow: %v", err)
	}
	if _, err := f.client.Execution(ctx, "zzzzzzzz"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Errorf("missing execution: %v, want ErrNotFound", err)
	}

	x, err = f.client.StartUndeploy(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	if end := f.wait(t, x); end.Status != workflows.Succeeded {
		t.Fatalf("uninstall %s: %s", end.Status, end.Error)
	}
	gone := false
	for deadline := time.Now().Add(10 * time.Second); !gone && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, err := f.client.Deployment(ctx, "files")
		gone = errors.Is(err, orchestrator.ErrNotFound)
	}
	if !gone {
		t.Errorf("deployment kept after a successful uninstall through the API")
	}
	if _, err := os.Stat(files); !os.IsNotExist(err) {
		t.Errorf("files left: %v", err)
	}
}

func TestDeployErrorsComeBackAsDiagnostics(t *testing.T) {
	f := newFixture(t)
	bad := filepath.Join(f.dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("node \"a\" {\n  depends_on = [node.b]\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.client.Deploy(context.Background(), orchestrator.DeployRequest{Paths: []string{bad}})
	var e *Error
	if !errors.As(err, &e) || !e.Diagnostics || e.Status != http.StatusBadRequest {
		t.Fatalf("deploy of a bad blueprint: %#v", err)
	}
	if !strings.Contains(e.Message, "bad.hcl:2:") || !strings.Contains(e.Message, "depends_on = [node.b]") {
		t.Errorf("diagnostics lack file:line and the source line:\n%s", e.Message)
	}
}

// A deployment created through the API is evaluated at once: a breaching
// metric queues its policy's workflow, the policy's status shows the
// values and the cooldown, and /metrics counts it all.
func TestPoliciesOfADeploymentMadeThroughTheAPIFire(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	bp := filepath.Join(f.dir, "web.hcl")
	if err := os.WriteFile(bp, []byte(policyBlueprint), 0o644); err != nil {
		t.Fatal(err)
	}
	_, x, err := f.client.Deploy(ctx, orchestrator.DeployRequest{Paths: []string{bp}, ID: "web"})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, x)
	ps, err := f.client.Policies(ctx, "web")
	if err != nil || len(ps) != 1 || len(ps[0].Conditions) != 1 || ps[0].Conditions[0].Known {
		t.Fatalf("policies before any metric = %+v, %v", ps, err)
	}
	now := time.Now().Unix()
	body := fmt.Sprintf(`{"node_id": "web_1", "node_name": "web", "deployment_id": "web", "name": "cpu", "path": "total", "metric": 95, "unit": "%%", "type": "GAUGE", "host": "h1", "service": "web.web.web_1.cpu.total", "time": %d}`, now)
	if err := f.mgr.Runner.Ingest(ctx, []byte(body), "web"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); f.rec.count() == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if f.rec.count() != 1 || f.rec.runs[0]["amount"] != "+1" {
		t.Fatalf("workflow runs = %v", f.rec.runs)
	}
	ps, err = f.client.Policies(ctx, "web")
	if err != nil || len(ps) != 1 {
		t.Fatal(ps, err)
	}
	c := ps[0].Conditions[0]
	if !c.Known || !c.Holds || c.Values["mean(cpu, 10s)"] != 95 || c.Workflow != "scale" {
		t.Errorf("condition = %+v", c)
	}
	if len(ps[0].Triggers) != 1 || ps[0].Triggers[0].Execution == "" || ps[0].LastDecision == nil || !ps[0].LastDecision.Fired {
		t.Errorf("triggers %+v, last decision %+v", ps[0].Triggers, ps[0].LastDecision)
	}

	req, _ := http.NewRequest(http.MethodGet, f.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer test-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"orch_metrics_applied_total 1", "orch_policy_triggers_total 1", "orch_policy_conditions_fired_total 1",
		"orch_policies 1", `orch_executions_total{event="succeeded"}`, "orch_broker_reconnects_total 0"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Undeployed: its policies stop at once.
	x, err = f.client.StartUndeploy(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, x)
	if err := f.mgr.Runner.Ingest(ctx, []byte(strings.Replace(body, fmt.Sprint(now), fmt.Sprint(now+100), 1)), "web"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := f.client.Policies(ctx, ""); len(ps) != 0 || f.rec.count() != 1 {
		t.Errorf("after undeploy: policies %v, runs %d", ps, f.rec.count())
	}
}

func TestEndpointFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db.api")
	want := Endpoint{URL: "http://127.0.0.1:1", Token: "secret", PID: 7}
	if err := WriteEndpoint(path, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("endpoint file mode %v, %v", st.Mode(), err)
	}
	got, err := ReadEndpoint(path)
	if err != nil || got != want {
		t.Errorf("read back %+v, %v", got, err)
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Through the API, serve reads only the named blueprint's directory tree,
// and only blueprint files: not /etc/passwd (whose lines would come back
// in the diagnostics), not an import climbing out, not an inputs file
// elsewhere or one that is not HCL (a .env beside the blueprint).
func TestTheAPIReadsOnlyTheBlueprintsDirectory(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	app := filepath.Join(f.dir, "app")
	if err := os.MkdirAll(app, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) string {
		path := filepath.Join(app, name)
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	secret := filepath.Join(f.dir, "secret.hcl")
	if err := os.WriteFile(secret, []byte(`input "token" { default = "s3cr3t" }`), 0o600); err != nil {
		t.Fatal(err)
	}
	good := write("main.hcl", `node "web" {}`)
	climbing := write("climb.hcl", `imports = ["../secret.hcl"]`)
	env := write(".env", "TOKEN=s3cr3t\n")
	for _, tc := range []struct {
		name string
		req  orchestrator.DeployRequest
		want string
	}{
		{"a system file", orchestrator.DeployRequest{Paths: []string{"/etc/passwd"}, ID: "a"}, "is not a blueprint file"},
		{"a relative path", orchestrator.DeployRequest{Paths: []string{"main.hcl"}, ID: "b"}, "absolute paths"},
		{"an import climbing out", orchestrator.DeployRequest{Paths: []string{climbing}, ID: "c"}, "is outside the blueprint's directory"},
		{"an inputs file elsewhere", orchestrator.DeployRequest{Paths: []string{good}, ID: "d", InputsFile: secret}, "is outside the blueprint's directory"},
		{"an inputs file that is not HCL", orchestrator.DeployRequest{Paths: []string{good}, ID: "e", InputsFile: env}, "must end with .hcl or .json"},
	} {
		_, _, err := f.client.Deploy(ctx, tc.req)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "root:") || strings.Contains(err.Error(), "s3cr3t")) {
			t.Errorf("%s: the error shows another file's contents: %v", tc.name, err)
		}
	}
	if _, _, err := f.client.Deploy(ctx, orchestrator.DeployRequest{Paths: []string{good}, ID: "ok"}); err != nil {
		t.Errorf("a blueprint in its own directory: %v", err)
	}
}

// A client that opens a connection and says nothing, or dribbles its
// headers, or keeps an idle connection, is cut off by the server's
// timeouts (serve uses 10 s for headers, 2 minutes idle).
func TestSlowAndSilentClientsAreCutOff(t *testing.T) {
	l, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }),
		timeouts{header: 300 * time.Millisecond, read: time.Second, write: time.Second, idle: 300 * time.Millisecond})
	go srv.Serve(l)
	defer srv.Close()
	closedWithin := func(name string, c net.Conn, d time.Duration) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(d))
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("%s: the server kept the connection past %s", name, d)
				}
				return
			}
		}
	}
	silent, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closedWithin("a silent client", silent, 3*time.Second)

	dribble, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer dribble.Close()
	go func() {
		for _, b := range []byte("GET /v1/health HTTP/1.1\r\nHost: x\r\n") {
			if _, err := dribble.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	closedWithin("a client dribbling its headers", dribble, 3*time.Second)

	idle, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if _, err := idle.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	closedWithin("an idle keep-alive", idle, 3*time.Second)
}

// A failed install resumed through the API runs again, skipping what it
// did: the node that succeeded is not created twice.
func TestResumeAFailedExecutionThroughTheAPI(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	flag := filepath.Join(f.dir, "fail")
	count := filepath.Join(f.dir, "count")
	bp := filepath.Join(f.dir, "resume.hcl")
	src := fmt.Sprintf(`
node "first" {
  operation "create" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "echo x >> \"$COUNT\""], COUNT = %q }
  }
}
node "second" {
  depends_on = [node.first]
  operation "create" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "test ! -e \"$FLAG\""], FLAG = %q }
  }
}
`, count, flag)
	if err := os.WriteFile(bp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, x, err := f.client.Deploy(ctx, orchestrator.DeployRequest{Paths: []string{bp}, ID: "resume"})
	if err != nil {
		t.Fatal(err)
	}
	if end := f.wait(t, x); end.Status != workflows.Failed {
		t.Fatalf("install should fail: %s", end.Status)
	}
	if _, err := f.client.Resume(ctx, "zzzz"); err == nil {
		t.Error("resuming an unknown execution succeeded")
	}
	_ = os.Remove(flag)
	again, err := f.client.Resume(ctx, x.ID)
	if err != nil {
		t.Fatal(err)
	}
	if end := f.wait(t, again); end.Status != workflows.Succeeded || end.Resumes != 1 {
		t.Fatalf("resumed install: %s (%d resumes) %s", end.Status, end.Resumes, end.Error)
	}
	if b, _ := os.ReadFile(count); string(b) != "x\n" {
		t.Errorf("the node that had succeeded ran again: %q", b)
	}
	if _, err := f.client.Resume(ctx, x.ID); err == nil || !strings.Contains(err.Error(), "only a failed or cancelled") {
		t.Errorf("resuming a succeeded execution: %v", err)
	}
}
