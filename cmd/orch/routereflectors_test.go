package main

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins/calico"
)

// Story 3 through the CLI: the route_reflectors workflow of the example,
// on a node pool of the primary cluster: a dry run changes nothing and
// says what it would do; the run marks one reflector per zone; a cordoned
// reflector is replaced by the next run.
func TestRouteReflectorsExampleOnTheCluster(t *testing.T) {
	e, cs, pool, mesh := routeReflectorPool(t)
	ctx := context.Background()
	pool.Add(6)
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

// Story 3 under orch serve: the topology follows the nodes as they come in
// steps (6 -> 20 -> 60 with ratio 0.1), as a reflector is cordoned and as
// nodes are removed; serve
// killed with SIGKILL while a reflector is cordoned converges when it
// starts again.
func TestServeFollowsNodeChanges(t *testing.T) {
	e, cs, pool, mesh := routeReflectorPool(t)
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "../../examples/route-reflectors/blueprint.hcl", "-d", "rr", "-i", "kubeconfig="+e.Kubeconfig,
		"-i", "node_selector="+pool.Selector(), "-i", "mesh_config="+mesh, "-i", "ratio=0.1"); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	args := []string{"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue}
	serve := startServe(t, state, args...)

	// converged: the pool's labelled nodes are what the rule chooses now.
	converged := func(step string) {
		t.Helper()
		start := time.Now()
		testenv.WaitFor(t, step+": the topology to follow", 60*time.Second, func() bool {
			list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: pool.Selector()})
			if err != nil {
				return false
			}
			var nodes []calico.Node
			var labelled []string
			for i := range list.Items {
				n := calico.FromNode(&list.Items[i])
				nodes = append(nodes, n)
				if _, ok := n.Labels[calico.DefaultLabel]; ok {
					labelled = append(labelled, n.Name)
				}
			}
			sort.Strings(labelled)
			want := calico.Select(calico.Config{Ratio: 0.1, Topology: calico.Multi}, nodes)
			return len(want.Reflectors) > 0 && strings.Join(labelled, ",") == strings.Join(want.Reflectors, ",")
		})
		t.Logf("%s: converged in %s", step, time.Since(start).Round(10*time.Millisecond))
	}
	pool.Add(6)
	converged("6 nodes")
	pool.Add(14)
	converged("20 nodes")
	pool.Add(40)
	converged("60 nodes")
	pool.Cordon(pool.NodeName(0))
	converged("a reflector cordoned")
	for _, i := range []int{2, 3, 5, 8} { // reflectors and others go
		pool.Delete(pool.NodeName(i))
	}
	converged("4 nodes removed")

	// Killed, a reflector cordoned meanwhile, started again: converges.
	_ = serve.cmd.Process.Kill()
	_ = serve.cmd.Wait()
	pool.Cordon(pool.NodeName(1))
	serve = startServe(t, state, args...)
	defer serve.stop(t)
	converged("after a restart")
}

// routeReflectorPool gives a test its own node pool of the primary cluster
// and mesh BGPConfiguration name, and removes orch's BGPPeers and that
// configuration at the end.
func routeReflectorPool(t *testing.T) (*testenv.Env, kubernetes.Interface, *testenv.NodePool, string) {
	t.Helper()
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	dyn := e.Dynamic(t, testenv.Primary)
	pool := testenv.NewNodePool(t, cs)
	mesh := "orch-" + pool.Name
	t.Cleanup(func() {
		ctx := context.Background()
		_ = calico.Cluster{Dynamic: dyn}.DeletePeers(ctx) // the example's orch-rr-* peers
		_ = dyn.Resource(calico.BGPConfigurations).Delete(ctx, mesh, metav1.DeleteOptions{})
	})
	return e, cs, pool, mesh
}
