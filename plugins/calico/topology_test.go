package calico

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// node builds a ready node in a zone, created age minutes after epoch.
func node(name, zone string, age int, opts ...func(*Node)) Node {
	n := Node{Name: name, Ready: true, Labels: map[string]string{}, Created: epoch.Add(time.Duration(age) * time.Minute)}
	if zone != "" {
		n.Labels[DefaultZoneLabel] = zone
	}
	for _, o := range opts {
		o(&n)
	}
	return n
}

func reflector(n *Node) { n.Labels[DefaultLabel] = "true" }
func notReady(n *Node)  { n.Ready = false }
func cordoned(n *Node)  { n.Unschedulable = true }
func pressured(n *Node) { n.Taints = append(n.Taints, "node.kubernetes.io/memory-pressure") }
func labelled(k, v string) func(*Node) {
	return func(n *Node) { n.Labels[k] = v }
}

// zoned makes count nodes in zone, named zone-i, created in order.
func zoned(zone string, count int) []Node {
	var out []Node
	for i := 0; i < count; i++ {
		out = append(out, node(fmt.Sprintf("%s-%d", zone, i), zone, i))
	}
	return out
}

func concat(lists ...[]Node) []Node {
	var out []Node
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		nodes      []Node
		want       []string
		ineligible map[string]string
	}{
		{
			name:  "six nodes over three zones: min 3, one per zone, the oldest",
			nodes: concat(zoned("a", 2), zoned("b", 2), zoned("c", 2)),
			want:  []string{"a-0", "b-0", "c-0"},
		},
		{
			name:  "uneven zones: the small zone takes what it can, the rest carried over",
			cfg:   Config{Min: 5},
			nodes: concat(zoned("a", 1), zoned("b", 3), zoned("c", 6)),
			want:  []string{"a-0", "b-0", "b-1", "c-0", "c-1"},
		},
		{
			name:  "fewer ready nodes than min: every ready node",
			nodes: zoned("a", 2),
			want:  []string{"a-0", "a-1"},
		},
		{
			name:  "ratio 0.1 of 60 ready nodes: 6, two per zone",
			cfg:   Config{Ratio: 0.1},
			nodes: concat(zoned("a", 20), zoned("b", 20), zoned("c", 20)),
			want:  []string{"a-0", "a-1", "b-0", "b-1", "c-0", "c-1"},
		},
		{
			name:  "ratio above max: max",
			cfg:   Config{Ratio: 0.5, Max: 4},
			nodes: concat(zoned("a", 10), zoned("b", 10)),
			want:  []string{"a-0", "a-1", "b-0", "b-1"},
		},
		{
			name: "not ready, cordoned, under pressure or incompatible: never chosen",
			cfg:  Config{IncompatibleLabels: []string{"node-role.kubernetes.io/edge", "pool=spot"}},
			nodes: []Node{
				node("a-0", "a", 0, notReady), node("a-1", "a", 1), node("b-0", "b", 0, cordoned), node("b-1", "b", 1),
				node("c-0", "c", 0, pressured), node("c-1", "c", 1, labelled("node-role.kubernetes.io/edge", "")),
				node("c-2", "c", 2, labelled("pool", "spot")), node("c-3", "c", 3, labelled("pool", "ondemand")),
			},
			want: []string{"a-1", "b-1", "c-3"},
			ineligible: map[string]string{"a-0": "not ready", "b-0": "cordoned", "c-0": "tainted node.kubernetes.io/memory-pressure",
				"c-1": "incompatible label node-role.kubernetes.io/edge", "c-2": "incompatible label pool=spot"},
		},
		{
			name:  "current reflectors are kept even when younger",
			nodes: concat(zoned("a", 2), zoned("b", 2), []Node{node("c-0", "c", 0), node("c-9", "c", 9, reflector)}),
			want:  []string{"a-0", "b-0", "c-9"},
		},
		{
			name:       "a cordoned reflector is dropped at once, the oldest other takes over",
			nodes:      concat(zoned("a", 2), zoned("b", 2), []Node{node("c-0", "c", 0, reflector, cordoned), node("c-1", "c", 1)}),
			want:       []string{"a-0", "b-0", "c-1"},
			ineligible: map[string]string{"c-0": "cordoned"},
		},
		{
			name:  "nodes without the zone label form their own zone",
			nodes: []Node{node("x", "", 0), node("y", "", 1), node("a-0", "a", 0)},
			want:  []string{"a-0", "x", "y"},
		},
		{
			name:       "no eligible node: no reflector",
			nodes:      []Node{node("a-0", "a", 0, notReady)},
			want:       nil,
			ineligible: map[string]string{"a-0": "not ready"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Select(tc.cfg, tc.nodes)
			if !reflect.DeepEqual(got.Reflectors, tc.want) {
				t.Errorf("reflectors %v, want %v", got.Reflectors, tc.want)
			}
			if tc.ineligible == nil {
				tc.ineligible = map[string]string{}
			}
			if !reflect.DeepEqual(got.Ineligible, tc.ineligible) {
				t.Errorf("ineligible %v, want %v", got.Ineligible, tc.ineligible)
			}
			if len(got.Reflectors) != got.Expected {
				t.Errorf("%d reflectors, expected %d", len(got.Reflectors), got.Expected)
			}
		})
	}
}

func TestExpected(t *testing.T) {
	c := Config{Ratio: 0.1}.WithDefaults()
	for ready, want := range map[int]int{0: 0, 1: 1, 3: 3, 6: 3, 20: 3, 31: 4, 60: 6, 100: 10, 1000: 10} {
		if got := c.Expected(ready); got != want {
			t.Errorf("Expected(%d) = %d, want %d", ready, got, want)
		}
	}
}

func TestMultiTopologyHasAClusterIDAndAPeerPerZone(t *testing.T) {
	c := Config{Topology: Multi}
	topo := Select(c, concat(zoned("b", 2), zoned("a", 2), zoned("c", 2)))
	wantIDs := map[string]string{"a-0": "224.0.0.1", "b-0": "224.0.0.2", "c-0": "224.0.0.3"}
	if !reflect.DeepEqual(topo.ClusterIDs, wantIDs) {
		t.Errorf("cluster ids %v, want %v", topo.ClusterIDs, wantIDs)
	}
	peers := Peers(c, topo, DefaultPeerPrefix)
	want := []Peer{
		{"orch-rr-zone-a", "topology.kubernetes.io/zone == 'a'", "calico-route-reflector == 'a'"},
		{"orch-rr-zone-b", "topology.kubernetes.io/zone == 'b'", "calico-route-reflector == 'b'"},
		{"orch-rr-zone-c", "topology.kubernetes.io/zone == 'c'", "calico-route-reflector == 'c'"},
	}
	if !reflect.DeepEqual(peers, want) {
		t.Errorf("peers %+v", peers)
	}
	if MeshEnabled(topo) {
		t.Error("the node-to-node mesh stays on with reflectors")
	}
}

func TestSingleTopologyPeersAndMesh(t *testing.T) {
	topo := Select(Config{}, zoned("a", 4))
	for _, n := range topo.Reflectors {
		if topo.ClusterIDs[n] != DefaultClusterID {
			t.Errorf("%s cluster id %q", n, topo.ClusterIDs[n])
		}
	}
	want := []Peer{
		{"orch-rr-mesh", "has(calico-route-reflector)", "has(calico-route-reflector)"},
		{"orch-rr-clients", "!has(calico-route-reflector)", "has(calico-route-reflector)"},
	}
	if got := Peers(Config{}, topo, DefaultPeerPrefix); !reflect.DeepEqual(got, want) {
		t.Errorf("peers %+v", got)
	}
	empty := Select(Config{}, nil)
	if Peers(Config{}, empty, DefaultPeerPrefix) != nil || !MeshEnabled(empty) {
		t.Error("with no reflector: no peers, and the mesh must be on")
	}
}

func TestDiffLabelsAndUnlabels(t *testing.T) {
	nodes := []Node{node("a-0", "a", 0), node("a-1", "a", 1, reflector), node("a-2", "a", 2, reflector, cordoned), node("a-3", "a", 3)}
	topo := Select(Config{}, nodes)
	ann := NodeAnnotations{"a-1": {ClusterIDAnnotation: DefaultClusterID}, "a-2": {ClusterIDAnnotation: DefaultClusterID}}
	ch := Diff(Config{}, topo, nodes, ann)
	// a-1 is kept as it is; a-0 and a-3 join; cordoned a-2 loses the role.
	wantLabel := map[string]string{"a-0": DefaultClusterID, "a-3": DefaultClusterID}
	if !reflect.DeepEqual(ch.Label, wantLabel) || !reflect.DeepEqual(ch.Unlabel, []string{"a-2"}) {
		t.Errorf("diff %+v", ch)
	}
	// Applied, the diff is empty.
	for name := range wantLabel {
		for i := range nodes {
			if nodes[i].Name == name {
				nodes[i].Labels[DefaultLabel] = "true"
				ann[name] = map[string]string{ClusterIDAnnotation: DefaultClusterID}
			}
		}
	}
	delete(nodes[2].Labels, DefaultLabel)
	delete(ann, "a-2")
	if ch := Diff(Config{}, Select(Config{}, nodes), nodes, ann); !ch.Empty() {
		t.Errorf("second diff %+v, want empty", ch)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []Config{{Min: 5, Max: 2}, {Ratio: 2}, {Topology: "ring"}, {Min: -1}} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Error(err)
	}
}

// BenchmarkSelect1000Nodes: choosing and diffing the topology of 1,000
// nodes over 5 zones.
func BenchmarkSelect1000Nodes(b *testing.B) {
	var nodes []Node
	for _, z := range []string{"a", "b", "c", "d", "e"} {
		nodes = append(nodes, zoned(z, 200)...)
	}
	c := Config{Ratio: 0.01, Topology: Multi}
	for i := 0; i < b.N; i++ {
		t := Select(c, nodes)
		_ = Diff(c, t, nodes, nil)
		_ = Peers(c, t, DefaultPeerPrefix)
	}
}
