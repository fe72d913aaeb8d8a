package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
)

// startRecording starts orch metrics record of a deployment's messages
// to file (count of them, at most for d) and returns once it consumes.
func startRecording(t *testing.T, url, exchange, deployment, file string, count int, d time.Duration) *exec.Cmd {
	t.Helper()
	rec := exec.Command(orchBin, "metrics", "record", file, "--url", url, "--exchange", exchange, "-d", deployment,
		"--count", fmt.Sprint(count), "--for", d.String())
	out, _ := rec.StdoutPipe()
	rec.Stderr = os.Stderr
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := out.Read(b)
	if !strings.Contains(string(b[:n]), "recording") {
		t.Fatalf("orch metrics record did not start: %q", b[:n])
	}
	return rec
}

// collectdBlocks are the collectd.conf blocks of docs/metrics.md.
func collectdBlocks(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, b := range codeBlocks(t, "../../docs/metrics.md") {
		if b.lang == "collectd" {
			out = append(out, b.text)
		}
	}
	if len(out) != 2 {
		t.Fatalf("docs/metrics.md has %d collectd blocks, want the JSON and the Graphite one", len(out))
	}
	return out
}

// startCollectd runs Debian's collectd in the foreground with the
// documented amqp block (its exchange and routing key replaced by the
// test's) and a unix socket the test puts values through.
func startCollectd(t *testing.T, block, exchange, routingKey string) (putval func(identifier string, v float64)) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/collectd"); err != nil {
		t.Fatalf("collectd is not installed (make env-up installs collectd-core): %v", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "collectd.sock")
	block = strings.Replace(block, `Exchange "cloudify-monitoring"`, fmt.Sprintf("Exchange %q", exchange), 1)
	block = strings.Replace(block, `RoutingKey "shop.web"`, fmt.Sprintf("RoutingKey %q", routingKey), 1)
	conf := fmt.Sprintf(`Hostname "web-1.example.com"
FQDNLookup false
Interval 1
BaseDir %q
PIDFile %q
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File stderr
</Plugin>
LoadPlugin unixsock
<Plugin unixsock>
  SocketFile %q
</Plugin>
%s`, dir, filepath.Join(dir, "collectd.pid"), sock, block)
	file := filepath.Join(dir, "collectd.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/collectd", "-t", "-C", file).CombinedOutput(); err != nil {
		t.Fatalf("collectd -t refuses the configuration: %v\n%s\n%s", err, out, conf)
	}
	cmd := exec.Command("/usr/sbin/collectd", "-f", "-C", file)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("collectd:\n%s", log.String())
		}
	})
	testenv.WaitFor(t, "collectd's socket", 20*time.Second, func() bool { _, err := os.Stat(sock); return err == nil })
	return func(identifier string, v float64) {
		t.Helper()
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := fmt.Fprintf(c, "PUTVAL %q interval=1 N:%g\n", identifier, v); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		n, _ := c.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "0 ") {
			t.Fatalf("PUTVAL %s: %s", identifier, buf[:n])
		}
	}
}

// A real collectd publishing to the test broker as docs/metrics.md says,
// in both of write_amqp's formats: under serve, its values fill a
// policy's window, and a breach scales a Deployment on the primary
// cluster.
func TestCollectdScalesThroughTheBroker(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "collectd")
	testenv.CreateDeployment(t, cs, ns, "web", 1)
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "testdata/restart.hcl", "-d", "cd", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "collectd")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	var putvals []func(string, float64)
	for i, block := range collectdBlocks(t) {
		format := []string{"JSON", "Graphite"}[i]
		putval := startCollectd(t, block, exchange, "cd.web")
		putvals = append(putvals, putval)
		want := int32(2 + i)
		// Below the threshold: nothing scales.
		putval("web-1.example.com/cpu/percent-user", 20)
		time.Sleep(1500 * time.Millisecond)
		if got := replicasOf(t, cs, ns, "web"); got != want-1 {
			t.Fatalf("%s: %d replicas after a value under the threshold, want %d", format, got, want-1)
		}
		testenv.WaitFor(t, format+": collectd's breach scales web to "+fmt.Sprint(want), 30*time.Second, func() bool {
			putval("web-1.example.com/cpu/percent-user", 95)
			time.Sleep(300 * time.Millisecond)
			return replicasOf(t, cs, ns, "web") >= want
		})
		if got := replicasOf(t, cs, ns, "web"); got != want {
			t.Errorf("%s: %d replicas, want %d", format, got, want)
		}
		r := orch(t, state, "policies", "show", "web_cpu", "-d", "cd")
		if !strings.Contains(r.stdout, "fired") {
			t.Errorf("%s: policies show:\n%s%s", format, r.stdout, r.stderr)
		}
		time.Sleep(2 * time.Second) // past the cooldown, for the next format
	}

	// Recorded (one message of each format) and replayed: the same values
	// reach the policy, and the breach fires.
	recording := filepath.Join(t.TempDir(), "collectd.jsonl")
	rec := startRecording(t, e.AMQPURL, exchange, "cd", recording, 2, 30*time.Second)
	putvals[0]("web-1.example.com/cpu/percent-user", 50)
	time.Sleep(1100 * time.Millisecond)
	putvals[1]("web-1.example.com/cpu/percent-user", 97)
	if err := rec.Wait(); err != nil {
		t.Fatalf("orch metrics record: %v", err)
	}
	r := orch(t, filepath.Join(t.TempDir(), "unused.db"), "policies", "replay", recording, "testdata/restart.hcl", "-d", "cd", "-o", "json",
		"-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns)
	var replayed replayOutput
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &replayed) != nil {
		t.Fatalf("replay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if replayed.Metrics != 2 || !strings.Contains(r.stdout, `"fired": true`) {
		t.Errorf("replayed %d metrics of the 2 recorded, want both, the second firing:\n%s", replayed.Metrics, r.stdout)
	}
}
