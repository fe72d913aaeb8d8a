package kubernetes_test

import (
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/orchhq/orch/internal/testenv"
	k8s "github.com/orchhq/orch/plugins/kubernetes"
)

// fixture creates a namespace with a 2-replica Deployment in the primary
// cluster and returns the namespace.
func fixture(t testing.TB, e *testenv.Env, name string) string {
	t.Helper()
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "scale")
	testenv.CreateDeployment(t, cs, ns, name, 2)
	return ns
}

func replicas(t testing.TB, e *testenv.Env, ns, name string) int32 {
	t.Helper()
	d, err := e.Clientset(t, testenv.Primary).AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func sshTarget(e *testenv.Env) k8s.SSHTarget {
	return k8s.SSHTarget{Host: e.SSH.Host, Port: e.SSH.Port, User: e.SSH.User, KeyFile: e.SSH.KeyFile, KnownHosts: e.SSH.KnownHosts}
}

func scalers(t *testing.T, e *testenv.Env) map[string]k8s.Scaler {
	runner := k8s.NewSSH(sshTarget(e))
	t.Cleanup(func() { runner.Close() })
	return map[string]k8s.Scaler{
		"client-go": k8s.ClientScaler{Client: e.Clientset(t, testenv.Primary)},
		"ssh":       k8s.KubectlScaler{Runner: runner, Kubectl: "kubectl"},
	}
}

func TestKubeScale(t *testing.T) {
	e := testenv.Get(t)
	steps := []struct {
		amount   string
		limits   k8s.Limits
		from, to int32
	}{
		{"+1", k8s.Limits{}, 2, 3},
		{"-1", k8s.Limits{}, 3, 2},
		{"5", k8s.Limits{}, 2, 5},
		{"+0", k8s.Limits{}, 5, 5},
		{"+10", k8s.Limits{Max: 6}, 5, 6},
		{"-10", k8s.Limits{Min: 1}, 6, 1},
	}
	for transport, s := range scalers(t, e) {
		t.Run(transport, func(t *testing.T) {
			ns := fixture(t, e, "bookings")
			for _, st := range steps {
				a, err := k8s.ParseAmount(st.amount)
				if err != nil {
					t.Fatal(err)
				}
				from, to, err := s.Scale(context.Background(), ns, "bookings", a, st.limits)
				if err != nil {
					t.Fatalf("%s: %v", st.amount, err)
				}
				if from != st.from || to != st.to {
					t.Errorf("%s: %d -> %d, want %d -> %d", st.amount, from, to, st.from, st.to)
				}
				if got := replicas(t, e, ns, "bookings"); got != st.to {
					t.Errorf("%s: deployment has %d replicas, want %d", st.amount, got, st.to)
				}
			}
		})
	}
}

// Concurrent increments add up: the read-modify-write retries on conflict.
func TestKubeScaleConcurrentIncrementsAddUp(t *testing.T) {
	e := testenv.Get(t)
	for transport, s := range scalers(t, e) {
		t.Run(transport, func(t *testing.T) {
			ns := fixture(t, e, "bookings")
			plus1, _ := k8s.ParseAmount("+1")
			const n = 4
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, _, err := s.Scale(context.Background(), ns, "bookings", plus1, k8s.Limits{}); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := replicas(t, e, ns, "bookings"); got != 2+n {
				t.Errorf("%d concurrent +1 from 2 ended at %d", n, got)
			}
		})
	}
}

// recordingRunner fails the test if any command runs.
type recordingRunner struct{ ran []string }

func (r *recordingRunner) Run(ctx context.Context, argv ...string) ([]byte, error) {
	r.ran = append(r.ran, strings.Join(argv, " "))
	return nil, errors.New("must not run")
}

func TestHostileNamesAreRefusedBeforeAnythingRuns(t *testing.T) {
	hostile := []struct{ ns, name string }{
		{"default", "x; rm -rf /"},
		{"default", "$(id)"},
		{"default", "`id`"},
		{"default", "a b"},
		{"default", "--all"},
		{"kube-system; id", "web"},
		{"default", strings.Repeat("a", 300)},
		{"default", ""},
	}
	plus1, _ := k8s.ParseAmount("+1")
	client := fake.NewClientset()
	for _, h := range hostile {
		r := &recordingRunner{}
		if _, _, err := (k8s.KubectlScaler{Runner: r}).Scale(context.Background(), h.ns, h.name, plus1, k8s.Limits{}); err == nil || len(r.ran) > 0 {
			t.Errorf("ssh %q/%q: err %v, commands run %q", h.ns, h.name, err, r.ran)
		}
		if _, _, err := (k8s.ClientScaler{Client: client}).Scale(context.Background(), h.ns, h.name, plus1, k8s.Limits{}); err == nil || len(client.Actions()) > 0 {
			t.Errorf("client-go %q/%q: err %v, requests %v", h.ns, h.name, err, client.Actions())
		}
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"kubectl":               "kubectl",
		"--replicas=3":          "--replicas=3",
		"x; rm -rf /":           `'x; rm -rf /'`,
		"$(id)":                 `'$(id)'`,
		"it's":                  `'it'\''s'`,
		"":                      `''`,
		"{.spec.replicas} {.x}": `'{.spec.replicas} {.x}'`,
	}
	for in, want := range tests {
		if got := k8s.ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestWrongHostKeyIsRefused(t *testing.T) {
	e := testenv.Get(t)
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(e.SSH.Addr())}, signer.PublicKey())
	if err := os.WriteFile(wrong, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	target := sshTarget(e)
	target.KnownHosts = wrong
	runner := k8s.NewSSH(target)
	defer runner.Close()
	_, err := runner.Run(context.Background(), "kubectl", "version", "--client")
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		t.Fatalf("want a host key mismatch, got %v", err)
	}
	// An unknown host (empty known_hosts) is refused too, never trusted.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	target.KnownHosts = empty
	if _, err := k8s.NewSSH(target).Run(context.Background(), "true"); err == nil {
		t.Fatal("connected to a host not in known_hosts")
	}
}

// A host that accepts TCP and never speaks cannot stall a command past
// its context, or past the SSH timeout without one; a second command to
// the same host is not held behind the first for good.
func TestASilentSSHHostCannotStallTheQueue(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(crand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	key, known := filepath.Join(dir, "key"), filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	target := k8s.SSHTarget{Host: host, Port: p, User: "u", KeyFile: key, KnownHosts: known, Timeout: 800 * time.Millisecond}
	runner := k8s.NewSSH(target)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := runner.Run(ctx, "true"); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a silent host under a 300ms context: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the context was ignored: %s", took)
	}
	start = time.Now()
	if _, err := runner.Run(context.Background(), "true"); err == nil || !strings.Contains(err.Error(), "handshake") {
		t.Errorf("a silent host with no context deadline: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the SSH timeout was ignored: %s", took)
	}
}
