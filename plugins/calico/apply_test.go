package calico

import (
	"context"
	"reflect"
	"sort"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orchhq/orch/internal/testenv"
)

// Story 3 on the real primary cluster: nodes come in steps (6 -> 20 -> 60
// with ratio 0.1), one reflector is cordoned, all are cordoned; after each
// Apply the labelled set, the cluster ID annotations, the BGPPeers and the
// mesh setting match the rule, and a second Apply changes nothing.
func TestApplyConvergesAsNodesComeAndGo(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	dyn := e.Dynamic(t, testenv.Primary)
	ctx := context.Background()
	p := testenv.NewNodePool(t, cs)
	cl := Cluster{Kube: cs, Dynamic: dyn, NodeSelector: p.Selector(), PeerPrefix: "orch-" + p.Name, MeshConfig: "orch-" + p.Name}
	cfg := Config{Ratio: 0.1, Topology: Multi}
	t.Cleanup(func() {
		_ = cl.DeletePeers(ctx)
		_ = dyn.Resource(BGPConfigurations).Delete(ctx, cl.MeshConfig, metav1.DeleteOptions{})
	})

	check := func(step string, wantReflectors int, wantMesh bool) []string {
		t.Helper()
		res, err := cl.Apply(ctx, cfg, false)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		nodes, ann, err := cl.Nodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var labelled []string
		perZone := map[string]int{}
		for _, n := range nodes {
			if v, ok := n.Labels[DefaultLabel]; ok {
				labelled = append(labelled, n.Name)
				perZone[v]++
				if v != n.Labels[DefaultZoneLabel] || ann[n.Name][ClusterIDAnnotation] != res.Topology.ZoneIDs[n.Labels[DefaultZoneLabel]] {
					t.Errorf("%s: %s labelled %q, cluster id %q", step, n.Name, v, ann[n.Name][ClusterIDAnnotation])
				}
			} else if ann[n.Name][ClusterIDAnnotation] != "" {
				t.Errorf("%s: %s keeps a cluster id without the label", step, n.Name)
			}
		}
		sort.Strings(labelled)
		if len(labelled) != wantReflectors || !reflect.DeepEqual(labelled, res.Topology.Reflectors) {
			t.Errorf("%s: labelled %v, want %d (%v)", step, labelled, wantReflectors, res.Topology.Reflectors)
		}
		for z, n := range perZone {
			if n > (wantReflectors+2)/3 {
				t.Errorf("%s: zone %s has %d of %d reflectors", step, z, n, wantReflectors)
			}
		}
		peers, err := dyn.Resource(BGPPeers).List(ctx, metav1.ListOptions{LabelSelector: ManagedBy + "=orch"})
		if err != nil {
			t.Fatal(err)
		}
		mine := 0
		for _, u := range peers.Items {
			if len(u.GetName()) > len(cl.PeerPrefix) && u.GetName()[:len(cl.PeerPrefix)] == cl.PeerPrefix {
				mine++
			}
		}
		if wantPeers := len(res.Topology.Zones); mine != wantPeers {
			t.Errorf("%s: %d BGPPeers, want one per zone with reflectors (%d)", step, mine, wantPeers)
		}
		if mesh, _, err := cl.mesh(ctx); err != nil || mesh != wantMesh {
			t.Errorf("%s: nodeToNodeMeshEnabled %v, want %v (%v)", step, mesh, wantMesh, err)
		}
		again, err := cl.Apply(ctx, cfg, false)
		if err != nil || !again.Change.Empty() || len(again.PeersWritten)+len(again.PeersDeleted) != 0 || again.MeshChanged {
			t.Errorf("%s: a second apply changed %+v (%v)", step, again, err)
		}
		return labelled
	}

	p.Add(6)
	first := check("6 nodes", 3, false)
	p.Add(14)
	if got := check("20 nodes", 3, false); !reflect.DeepEqual(got, first) {
		t.Errorf("20 nodes: reflectors moved from %v to %v", first, got)
	}
	p.Add(40)
	sixty := check("60 nodes", 6, false)
	for _, n := range first {
		if !contains(sixty, n) {
			t.Errorf("60 nodes: existing reflector %s dropped", n)
		}
	}

	// A reflector is cordoned: it loses the role at once.
	p.Cordon(first[0])
	if got := check("a reflector cordoned", 6, false); contains(got, first[0]) {
		t.Errorf("cordoned %s still a reflector", first[0])
	}

	// Dry run: says what it would do, writes nothing.
	for i := 0; i < 60; i++ {
		p.Cordon(p.NodeName(i))
	}
	dry, err := cl.Apply(ctx, cfg, true)
	if err != nil || len(dry.Change.Unlabel) != 6 || !dry.MeshChanged || len(dry.PeersDeleted) != 3 {
		t.Fatalf("dry run = %+v, %v", dry, err)
	}
	if mesh, _, _ := cl.mesh(ctx); mesh {
		t.Fatal("the dry run switched the mesh on")
	}
	// Every node cordoned: no reflector, the mesh is back on, no peers.
	check("all cordoned", 0, true)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
