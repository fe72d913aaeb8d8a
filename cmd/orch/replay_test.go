package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
)

// A live run is recorded with orch metrics record while orch serve
// (--dry-run) evaluates it; orch policies replay of the recording gives the
// same decisions as serve made.
func TestReplayMatchesTheLiveRun(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "replay")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	dir := t.TempDir()
	state, recording := filepath.Join(dir, "state.db"), filepath.Join(dir, "live.jsonl")
	inputs := []string{"-i", "kubeconfig=" + e.Kubeconfig, "-i", "namespace=" + ns}
	if r := orch(t, state, append([]string{"deploy", "testdata/replay.hcl", "-d", "replay"}, inputs...)...); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue, "--dry-run")

	// The stream: calm, a breach, a dip, a spike, then low.
	var stream []float64
	for _, phase := range []struct {
		value float64
		n     int
	}{{40, 15}, {95, 20}, {50, 10}, {99, 15}, {10, 20}} {
		for range phase.n {
			stream = append(stream, phase.value)
		}
	}
	rec := exec.Command(orchBin, "metrics", "record", recording, "--url", e.AMQPURL, "--exchange", exchange, "-d", "replay",
		"--count", strconv.Itoa(len(stream)), "--for", "2m")
	out, _ := rec.StdoutPipe()
	rec.Stderr = os.Stderr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || !strings.Contains(lines.Text(), "recording") {
		t.Fatalf("orch metrics record did not start: %q", lines.Text())
	}
	pub, err := producer.Dial(e.AMQPURL, exchange)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, v := range stream {
		m := producer.Metric{DeploymentID: "replay", NodeName: "web", NodeID: "web", Host: "h1", Name: "cpu", Path: "total",
			Value: v, Time: policies.Seconds(time.Now())}
		if err := pub.Publish(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := rec.Wait(); err != nil {
		t.Fatalf("orch metrics record: %v", err)
	}
	serve.stop(t)

	var first, last float64
	if err := readRecording(recording, func(r policies.Record) {
		var m struct{ Time float64 }
		_ = json.Unmarshal(r.Body, &m)
		if first == 0 {
			first = m.Time
		}
		last = m.Time
	}); err != nil {
		t.Fatal(err)
	}
	r := orch(t, state, append([]string{"policies", "replay", recording, "testdata/replay.hcl", "-o", "json"}, inputs...)...)
	if r.code != 0 {
		t.Fatalf("replay: %s%s", r.stdout, r.stderr)
	}
	var replayed replayOutput
	if err := json.Unmarshal([]byte(r.stdout), &replayed); err != nil {
		t.Fatal(err)
	}
	if replayed.Metrics != len(stream) {
		t.Fatalf("replayed %d metrics, recorded %d", replayed.Metrics, len(stream))
	}
	// serve's decisions while the stream ran (after it, serve saw the
	// data go missing; the recording ends with the last metric).
	type key struct {
		Time         float64
		Policy       string
		Condition    string
		Fired        bool
		Reason       policies.Reason
		CooldownLeft float64
		Workflow     string
		Values       string
	}
	keyOf := func(d policies.Decision) key {
		v, _ := json.Marshal(d.Values)
		return key{d.Time, d.Policy, d.Condition, d.Fired, d.Reason, d.CooldownLeft, d.Workflow, string(v)}
	}
	var live, again []key
	fired := 0
	for _, policy := range []string{"cpu_up", "cpu_ewma", "cpu_spike"} {
		ex := orch(t, state, "policies", "explain", policy, "-d", "replay", "-n", "1000", "-o", "json")
		var ps policies.PolicyStatus
		if err := json.Unmarshal([]byte(ex.stdout), &ps); err != nil {
			t.Fatalf("explain %s: %v\n%s%s", policy, err, ex.stdout, ex.stderr)
		}
		for _, d := range ps.Decisions {
			if d.Time >= first && d.Time <= last {
				live = append(live, keyOf(d))
				if d.Fired {
					fired++
				}
			}
		}
	}
	for _, d := range replayed.Decisions {
		again = append(again, keyOf(d))
	}
	sortKeys := func(ks []key) {
		slices.SortFunc(ks, func(a, b key) int {
			if a.Time != b.Time {
				return cmp.Compare(a.Time, b.Time)
			}
			return strings.Compare(a.Policy+a.Condition, b.Policy+b.Condition)
		})
	}
	sortKeys(live)
	sortKeys(again)
	if fired < 3 || len(live) < 10 {
		t.Fatalf("the live run made too few decisions to compare: %d, %d fired: %+v", len(live), fired, live)
	}
	if !reflect.DeepEqual(live, again) {
		t.Fatalf("replay differs from the live run:\nlive   %+v\nreplay %+v", live, again)
	}
	t.Logf("%d decisions (%d fired) the same live and replayed", len(live), fired)
}

func readRecording(path string, fn func(policies.Record)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return policies.ReadRecords(f, func(_ int, r policies.Record) error { fn(r); return nil })
}
