package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins/calico"
)

// Story 3 through the CLI: the route_reflectors workflow of the example,
// on a node pool of the primary cluster: a dry run changes nothing and
// says what it would do; the run marks one reflector per zone; a cordoned
// reflector is replaced by the next run.
func TestRouteReflectorsExampleOnTheCluster(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	dyn := e.Dynamic(t, testenv.Primary)
	ctx := context.Background()
	pool := testenv.NewNodePool(t, cs)
	pool.Add(6)
	mesh := "orch-" + pool.Name
	t.Cleanup(func() {
		_ = dyn.Resource(calico.BGPPeers).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: calico.ManagedBy + "=orch"})
		_ = dyn.Resource(calico.BGPConfigurations).Delete(ctx, mesh, metav1.DeleteOptions{})
	})
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "../../examples/route-reflectors/blueprint.hcl", "-d", "rr", "-i", "kubeconfig="+e.Kubeconfig,
		"-i", "node_selector="+pool.Selector(), "-i", "mesh_config="+mesh); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	reflectors := func() []string {
		list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: pool.Selector() + "," + calico.DefaultLabel})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range list.Items {
			out = append(out, n.Name)
		}
		return out
	}

	r := orch(t, state, "workflow", "run", "route_reflectors", "-d", "rr", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would mark "+pool.NodeName(0)+" as a route reflector (cluster ID 224.0.0.1)") ||
		!strings.Contains(r.stdout, "would set nodeToNodeMeshEnabled to false") {
		t.Fatalf("dry run: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := reflectors(); len(got) != 0 {
		t.Fatalf("the dry run marked %v", got)
	}

	if r = orch(t, state, "workflow", "run", "route_reflectors", "-d", "rr"); r.code != 0 {
		t.Fatalf("run: %s%s", r.stdout, r.stderr)
	}
	first := reflectors()
	want := []string{pool.NodeName(0), pool.NodeName(1), pool.NodeName(2)} // the oldest of each zone
	if strings.Join(first, ",") != strings.Join(want, ",") {
		t.Fatalf("reflectors %v, want %v", first, want)
	}
	pool.Cordon(pool.NodeName(1))
	r = orch(t, state, "workflow", "run", "route_reflectors", "-d", "rr")
	if r.code != 0 || !strings.Contains(r.stdout, "remove the route-reflector role from "+pool.NodeName(1)+" (cordoned)") {
		t.Fatalf("after a cordon: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	want = []string{pool.NodeName(0), pool.NodeName(2), pool.NodeName(4)} // zone-b's next oldest
	if got := reflectors(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("reflectors after a cordon %v, want %v", got, want)
	}
	if r = orch(t, state, "workflow", "run", "route_reflectors", "-d", "rr"); !strings.Contains(r.stdout, "nothing to change") {
		t.Errorf("a third run changed something:\n%s", r.stdout)
	}
}
