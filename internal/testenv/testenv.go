// Package testenv gives integration tests the real environment that `make
// env-up` starts: Kubernetes clients for the primary and peer clusters, the
// AMQP URL and the ssh target with kubectl, all read from the environment's
// env file. When the environment is missing, tests fail with how to start
// it; with -short they skip.
package testenv

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"k8s.io/apimachinery/pkg/util/rand"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Contexts of the two clusters in the kubeconfig.
const (
	Primary = "primary"
	Peer    = "peer"
)

// Env is a running test environment.
type Env struct {
	File       string
	Kubeconfig string
	Kubectl    string
	AMQPURL    string
	SSH        SSH
	// EtcdEndpoints is orch's own etcd (comma-separated URLs), apart from
	// the clusters'.
	EtcdEndpoints string
	// Chromium is Debian's browser, and NodePath the node_modules holding
	// playwright-core, for the console's browser tests.
	Chromium, NodePath string
}

// SSH is the sshd of the environment, with kubectl against the primary cluster.
type SSH struct {
	Host       string
	Port       int
	User       string
	KeyFile    string
	KnownHosts string
}

// Addr is host:port.
func (s SSH) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// DefaultFile is where `make env-up` writes the env file.
func DefaultFile() string {
	if f := os.Getenv("ORCH_TESTENV"); f != "" {
		return f
	}
	if d := os.Getenv("ORCH_TESTENV_DIR"); d != "" {
		return filepath.Join(d, "env")
	}
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "orch", "testenv", "env")
}

// Read parses an env file (lines `export NAME=VALUE`).
func Read(file string) (*Env, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export "))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = strings.Trim(v, `"'`)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(vars["ORCH_SSH_PORT"])
	if err != nil {
		return nil, fmt.Errorf("%s: ORCH_SSH_PORT %q: %w", file, vars["ORCH_SSH_PORT"], err)
	}
	e := &Env{
		File:          file,
		Kubeconfig:    vars["KUBECONFIG"],
		Kubectl:       vars["ORCH_KUBECTL"],
		AMQPURL:       vars["ORCH_AMQP_URL"],
		EtcdEndpoints: vars["ORCH_ETCD_ENDPOINTS"],
		Chromium:      vars["ORCH_CHROMIUM"],
		NodePath:      vars["ORCH_NODE_PATH"],
		SSH: SSH{Host: vars["ORCH_SSH_HOST"], Port: port, User: vars["ORCH_SSH_USER"],
			KeyFile: vars["ORCH_SSH_KEY"], KnownHosts: vars["ORCH_SSH_KNOWN_HOSTS"]},
	}
	for name, v := range map[string]string{"KUBECONFIG": e.Kubeconfig, "ORCH_AMQP_URL": e.AMQPURL, "ORCH_SSH_KEY": e.SSH.KeyFile, "ORCH_ETCD_ENDPOINTS": e.EtcdEndpoints,
		"ORCH_CHROMIUM": e.Chromium, "ORCH_NODE_PATH": e.NodePath} {
		if v == "" {
			return nil, fmt.Errorf("%s lacks %s", file, name)
		}
	}
	return e, nil
}

// Get returns the running environment, or fails the test saying how to
// start it. With -short the test is skipped instead.
func Get(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	file := DefaultFile()
	e, err := Read(file)
	if err != nil {
		t.Fatalf("the test environment is not running (%v).\nStart it with `make env-up` (or run `make test`, which starts and stops it), or run the unit tests alone with `go test -short ./...`.", err)
	}
	return e
}

// RESTConfig returns the client config of a cluster (Primary or Peer).
func (e *Env) RESTConfig(t testing.TB, context string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: e.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: context},
	).ClientConfig()
	if err != nil {
		t.Fatalf("kubeconfig %s, context %s: %v", e.Kubeconfig, context, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg
}

// Clientset returns a typed client of a cluster.
func (e *Env) Clientset(t testing.TB, context string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(e.RESTConfig(t, context))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Dynamic returns a dynamic client of a cluster.
func (e *Env) Dynamic(t testing.TB, context string) dynamic.Interface {
	t.Helper()
	dc, err := dynamic.NewForConfig(e.RESTConfig(t, context))
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// EtcdStore is an orch store URL of the test's own on the environment's
// etcd (etcd://HOST:PORT/NAME-RANDOM); its keys are deleted when the test
// ends.
func (e *Env) EtcdStore(t testing.TB, name string) string {
	t.Helper()
	endpoint := strings.Split(e.EtcdEndpoints, ",")[0]
	prefix := name + "-" + rand.String(8)
	t.Cleanup(func() {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.Delete(ctx, "/"+prefix+"/", clientv3.WithPrefix())
	})
	return "etcd://" + strings.TrimPrefix(endpoint, "http://") + "/" + prefix
}
