package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/policies"
)

// startExporter serves a gauge orch_test_load in Prometheus's text format,
// at the value the test sets.
func startExporter(t *testing.T) (addr string, set func(float64)) {
	t.Helper()
	var v atomic.Value
	v.Store(0.0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP orch_test_load The test's load.\n# TYPE orch_test_load gauge\norch_test_load %g\n", v.Load().(float64))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String(), func(x float64) { v.Store(x) }
}

// startPrometheus runs Debian's Prometheus server scraping target every
// second, with its own storage; stop kills it.
func startPrometheus(t *testing.T, target string) (url string, stop func()) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (make env-up installs it): %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [%q]
`, target)), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("prometheus:\n%s", log.String())
		}
	})
	url = "http://" + addr
	testenv.WaitFor(t, "prometheus scraping the exporter", 60*time.Second, func() bool {
		resp, err := http.Get(url + "/api/v1/query?query=orch_test_load")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var ans struct {
			Data struct{ Result []any } `json:"data"`
		}
		return json.NewDecoder(resp.Body).Decode(&ans) == nil && len(ans.Data.Result) > 0
	})
	return url, stop
}

// A real Prometheus server scraping an exporter on this machine: a
// `source` block feeds its query's values to the policies, a breach scales
// web up on the primary cluster; Prometheus stopped, the data is missing,
// and nothing scales down under the default.
func TestPrometheusSourceScalesAndHoldsWhenStopped(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "prometheus")
	testenv.CreateDeployment(t, cs, ns, "web", 2)
	target, setLoad := startExporter(t)
	setLoad(40) // neither policy's
	promURL, stopProm := startPrometheus(t, target)

	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/prometheus.hcl", "-d", "prom", "-i", "kubeconfig="+e.Kubeconfig,
		"-i", "namespace="+ns, "-i", "prom_url="+promURL); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "prometheus")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	stopped := false
	defer func() {
		if !stopped {
			serve.stop(t)
		}
	}()
	explain := func(policy string) policies.PolicyStatus {
		t.Helper()
		r := orch(t, state, "policies", "explain", policy, "-d", "prom", "-n", "200", "-o", "json")
		var ps policies.PolicyStatus
		if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
			t.Fatalf("explain %s: %v\n%s%s", policy, err, r.stdout, r.stderr)
		}
		return ps
	}

	// The polled values reach the windows: 40, nothing scales.
	testenv.WaitFor(t, "the source's values evaluated", 20*time.Second, func() bool {
		for _, c := range explain("up").Conditions {
			if c.Known && c.Values["value"] == 40 && c.Values["hosts"] == 1 {
				return true
			}
		}
		return false
	})
	time.Sleep(2 * time.Second)
	if got := replicasOf(t, cs, ns, "web"); got != 2 {
		t.Fatalf("web has %d replicas under a load of 40, want 2", got)
	}
	// A breach scrapes in, is polled and scales web up; the polls are
	// recorded from the broker (serve publishes a copy).
	recording := filepath.Join(t.TempDir(), "polled.jsonl")
	rec := startRecording(t, e.AMQPURL, exchange, "prom", recording, 6, 40*time.Second)
	setLoad(95)
	testenv.WaitFor(t, "Prometheus's breach scales web to 3", 30*time.Second, func() bool { return replicasOf(t, cs, ns, "web") >= 3 })
	setLoad(40)
	if err := rec.Wait(); err != nil {
		t.Fatalf("orch metrics record: %v", err)
	}
	data, err := os.ReadFile(recording)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"polled":"load"`); n != 6 {
		t.Errorf("%d of the 6 recorded messages are marked as polled from source load:\n%s", n, data)
	}
	r := orch(t, filepath.Join(t.TempDir(), "unused.db"), "policies", "replay", recording, "testdata/prometheus.hcl", "-d", "prom", "-o", "json",
		"-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns, "-i", "prom_url="+promURL)
	var replayed replayOutput
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &replayed) != nil {
		t.Fatalf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if replayed.Metrics != 6 || !strings.Contains(r.stdout, `"fired": true`) {
		t.Errorf("replayed %d metrics of the 6 recorded, want all, the breach firing:\n%s", replayed.Metrics, r.stdout)
	}
	time.Sleep(5 * time.Second) // past the cooldown, the window back at 40
	if got := replicasOf(t, cs, ns, "web"); got != 3 {
		t.Fatalf("web has %d replicas after the breach, want 3", got)
	}

	// serve counts the polls.
	ep, err := api.ReadEndpoint(api.EndpointPath(state))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ep.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ep.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^orch_source_polls_total [1-9]`).Match(body) {
		t.Errorf("/metrics counts no source polls:\n%s", body)
	}

	// Prometheus stops: the data is missing; down holds (it would scale
	// down if missing were zero).
	stopProm()
	testenv.WaitFor(t, "down's data missing", 20*time.Second, func() bool { return explain("down").MissingSince != 0 })
	time.Sleep(6 * time.Second) // more than a cooldown of missing data
	serve.stop(t)
	stopped = true
	if got := replicasOf(t, cs, ns, "web"); got != 3 {
		t.Errorf("web scaled to %d with Prometheus stopped, want 3", got)
	}
	var missing *policies.Decision
	down := explain("down")
	for i, d := range down.Decisions {
		if d.Fired {
			t.Errorf("down fired: %+v", d)
		}
		if d.Reason == "missing-data" {
			missing = &down.Decisions[i]
		}
	}
	if missing == nil || !strings.Contains(missing.Missing, "source load failing") {
		t.Errorf("down's decisions %+v, want one held back as missing-data naming the failing source", down.Decisions)
	}
}
