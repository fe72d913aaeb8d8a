package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/orchhq/orch/internal/testenv"
)

func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*/blueprint.hcl")
	if len(files) < 2 {
		t.Fatalf("found %d example blueprints", len(files))
	}
	for _, f := range files {
		if r := orch(t, filepath.Join(t.TempDir(), "state.db"), "validate", f); r.code != 0 {
			t.Errorf("%s:\n%s", f, r.stderr)
		}
	}
}

// Story 1 through orch: the scale example deployed, kube_scale run over
// ssh and through client-go against the primary cluster.
func TestScaleExampleOnTheCluster(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ns := testenv.Namespace(t, cs, "story1")
	testenv.CreateDeployment(t, cs, ns, "bookings", 2)
	replicas := func() int32 { return replicasOf(t, cs, ns, "bookings") }

	state := filepath.Join(t.TempDir(), "state.db")
	deployScaleExample(t, e, state, ns)
	steps := []struct {
		workflow, amount string
		want             int32
		event            string
	}{
		{"kube_scale", "+1", 3, "from 2 to 3"},
		{"kube_scale", "-1", 2, "from 3 to 2"},
		{"kube_scale_api", "+2", 4, "from 2 to 4"},
		{"kube_scale_api", "50", 10, "from 4 to 10"}, // clamped at max
		{"kube_scale", "-50", 1, "from 10 to 1"},     // clamped at min
	}
	for _, st := range steps {
		r := orch(t, state, "workflow", "run", st.workflow, "-d", "scale", "-p", "amount="+st.amount)
		if r.code != 0 {
			t.Fatalf("%s %s: %s%s", st.workflow, st.amount, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stdout, st.event) {
			t.Errorf("%s %s: output lacks %q:\n%s", st.workflow, st.amount, st.event, r.stdout)
		}
		if got := replicas(); got != st.want {
			t.Errorf("%s %s: %d replicas, want %d", st.workflow, st.amount, got, st.want)
		}
	}
	// Dry run changes nothing.
	if r := orch(t, state, "workflow", "run", "kube_scale", "-d", "scale", "-p", "amount=+3", "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would scale") || replicas() != 1 {
		t.Errorf("dry run: exit %d, replicas %d\n%s", r.code, replicas(), r.stdout)
	}
	// A hostile name fails the execution before any command runs.
	r := orch(t, state, "workflow", "run", "kube_scale", "-d", "scale", "-p", "name=x; rm -rf /", "-p", "amount=+1")
	if r.code == 0 || !strings.Contains(r.stdout, "not a valid Kubernetes name") {
		t.Errorf("hostile name: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := orch(t, state, "workflow", "run", "kube_scale", "-d", "scale", "-p", "amount=1.5"); r.code == 0 {
		t.Errorf("amount 1.5 accepted")
	}
}

// deployScaleExample deploys examples/scale as "scale", with the test
// environment's ssh target and kubeconfig, for the app in ns.
func deployScaleExample(t *testing.T, e *testenv.Env, state, ns string) {
	t.Helper()
	r := orch(t, state, "deploy", "../../examples/scale/blueprint.hcl", "-d", "scale",
		"-i", "ssh_port="+strconv.Itoa(e.SSH.Port), "-i", "ssh_user="+e.SSH.User,
		"-i", "ssh_keyfilename="+e.SSH.KeyFile, "-i", "known_hosts="+e.SSH.KnownHosts,
		"-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns)
	if r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
}

// replicasOf reads a Deployment's desired replica count.
func replicasOf(t *testing.T, cs kubernetes.Interface, ns, name string) int32 {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}
