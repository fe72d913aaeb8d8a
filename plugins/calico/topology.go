// Package calico computes Calico's BGP route-reflector topology: which
// nodes act as route reflectors as nodes come and go, their cluster IDs,
// and the BGPPeer objects that peer clients with reflectors. The functions
// here are pure; applying the result to a cluster is the workflow's job.
package calico

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// Defaults, as Calico's route-reflector autoscaler.
const (
	DefaultLabel     = "calico-route-reflector"
	DefaultZoneLabel = "topology.kubernetes.io/zone"
	// ClusterIDAnnotation is where Calico reads a node's route-reflector
	// cluster ID.
	ClusterIDAnnotation = "projectcalico.org/RouteReflectorClusterID"
	DefaultClusterID    = "224.0.0.1"
	// DefaultPeerPrefix starts the names of orch's BGPPeers.
	DefaultPeerPrefix = "orch-rr"
)

// Topology kinds.
const (
	Single = "single" // one cluster ID; reflectors mesh, every other node peers with them
	Multi  = "multi"  // one cluster ID per zone (224.0.0.N); a zone's nodes peer with its reflectors
)

// Config is the autoscaler's configuration.
type Config struct {
	Min, Max  int     // default 3, 10
	Ratio     float64 // reflectors per ready node, default 0.005
	ZoneLabel string  // default DefaultZoneLabel
	Label     string  // marks reflectors; default DefaultLabel
	// IncompatibleLabels exclude nodes: "key" (any value) or "key=value".
	IncompatibleLabels []string
	Topology           string // Single (default) or Multi
	ClusterID          string // Single's cluster ID, default DefaultClusterID
}

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Min == 0 {
		c.Min = 3
	}
	if c.Max == 0 {
		c.Max = 10
	}
	if c.Ratio == 0 {
		c.Ratio = 0.005
	}
	if c.ZoneLabel == "" {
		c.ZoneLabel = DefaultZoneLabel
	}
	if c.Label == "" {
		c.Label = DefaultLabel
	}
	if c.Topology == "" {
		c.Topology = Single
	}
	if c.ClusterID == "" {
		c.ClusterID = DefaultClusterID
	}
	return c
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Min < 0 || c.Max < 0:
		return fmt.Errorf("min %d and max %d must not be negative", c.Min, c.Max)
	case c.Min > c.Max:
		return fmt.Errorf("min %d is above max %d", c.Min, c.Max)
	case c.Ratio < 0 || c.Ratio > 1 || math.IsNaN(c.Ratio):
		return fmt.Errorf("ratio %g must be between 0 and 1", c.Ratio)
	case c.Topology != Single && c.Topology != Multi:
		return fmt.Errorf("topology %q: want %q or %q", c.Topology, Single, Multi)
	}
	return nil
}

// Node is what the selection needs of a Kubernetes Node.
type Node struct {
	Name          string
	Labels        map[string]string
	Ready         bool
	Unschedulable bool // cordoned
	// Taints are the keys of the node's taints.
	Taints  []string
	Created time.Time
}

// unhealthyTaints make a node ineligible, as the node lifecycle controller
// sets them.
var unhealthyTaints = []string{
	"node.kubernetes.io/not-ready",
	"node.kubernetes.io/unreachable",
	"node.kubernetes.io/memory-pressure",
	"node.kubernetes.io/disk-pressure",
	"node.kubernetes.io/pid-pressure",
	"node.kubernetes.io/network-unavailable",
	"node.kubernetes.io/unschedulable",
}

// Eligible reports whether a node may act as a route reflector, and why not.
func (c Config) Eligible(n Node) (bool, string) {
	switch {
	case !n.Ready:
		return false, "not ready"
	case n.Unschedulable:
		return false, "cordoned"
	}
	for _, t := range n.Taints {
		if slices.Contains(unhealthyTaints, t) {
			return false, "tainted " + t
		}
	}
	for _, il := range c.IncompatibleLabels {
		k, v, withValue := strings.Cut(il, "=")
		if got, ok := n.Labels[k]; ok && (!withValue || got == v) {
			return false, "incompatible label " + il
		}
	}
	return true, ""
}

// Expected is how many reflectors a cluster with ready eligible nodes
// wants: min(ready, clamp(ceil(ready x ratio), min, max)).
func (c Config) Expected(ready int) int {
	want := int(math.Ceil(float64(ready) * c.Ratio))
	want = max(c.Min, min(c.Max, want))
	return min(ready, want)
}

// Topology is a chosen route-reflector topology.
type Topology struct {
	Eligible int // eligible nodes
	Expected int
	// Reflectors are the chosen nodes, sorted, with their cluster IDs.
	Reflectors []string
	ClusterIDs map[string]string
	// Zones maps each zone ("" for nodes without the zone label) to its
	// reflectors.
	Zones map[string][]string
	// ZoneIDs are the cluster IDs of the zones (Multi).
	ZoneIDs map[string]string
	// Ineligible says why nodes were left out.
	Ineligible map[string]string
}

// Select chooses the reflectors. Eligible nodes are spread across the
// zones as evenly as possible: zones with fewer eligible nodes are filled
// first and what they cannot take is carried over to the larger ones. In a
// zone, current reflectors are kept (oldest first), then the oldest other
// nodes are added. A current reflector that is no longer eligible is
// dropped at once.
func Select(c Config, nodes []Node) Topology {
	c = c.WithDefaults()
	t := Topology{ClusterIDs: map[string]string{}, Zones: map[string][]string{}, ZoneIDs: map[string]string{}, Ineligible: map[string]string{}}
	byZone := map[string][]Node{}
	for _, n := range nodes {
		if ok, why := c.Eligible(n); !ok {
			t.Ineligible[n.Name] = why
			continue
		}
		z := n.Labels[c.ZoneLabel]
		byZone[z] = append(byZone[z], n)
	}
	ready := 0
	zones := make([]string, 0, len(byZone))
	for z, ns := range byZone {
		ready += len(ns)
		zones = append(zones, z)
	}
	t.Eligible = ready
	t.Expected = c.Expected(ready)
	// Zone IDs are by zone name, so they do not change as sizes change.
	sort.Strings(zones)
	for i, z := range zones {
		t.ZoneIDs[z] = fmt.Sprintf("224.0.0.%d", i+1)
	}
	sort.SliceStable(zones, func(i, j int) bool { return len(byZone[zones[i]]) < len(byZone[zones[j]]) })
	remaining := t.Expected
	for i, z := range zones {
		quota := min(len(byZone[z]), ceilDiv(remaining, len(zones)-i))
		ns := byZone[z]
		sort.SliceStable(ns, func(a, b int) bool {
			ra, rb := isReflector(c, ns[a]), isReflector(c, ns[b])
			if ra != rb {
				return ra
			}
			if !ns[a].Created.Equal(ns[b].Created) {
				return ns[a].Created.Before(ns[b].Created)
			}
			return ns[a].Name < ns[b].Name
		})
		for _, n := range ns[:quota] {
			t.Zones[z] = append(t.Zones[z], n.Name)
			t.Reflectors = append(t.Reflectors, n.Name)
			if c.Topology == Multi {
				t.ClusterIDs[n.Name] = t.ZoneIDs[z]
			} else {
				t.ClusterIDs[n.Name] = c.ClusterID
			}
		}
		sort.Strings(t.Zones[z])
		remaining -= quota
	}
	sort.Strings(t.Reflectors)
	if c.Topology != Multi {
		t.ZoneIDs = map[string]string{}
	}
	return t
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func isReflector(c Config, n Node) bool {
	_, ok := n.Labels[c.Label]
	return ok
}

// Change is what applying a topology does to nodes.
type Change struct {
	// Label are nodes to mark as reflectors (with their cluster ID), or whose
	// mark or cluster ID is wrong.
	Label map[string]string
	// Unlabel are nodes that lose the role.
	Unlabel []string
}

// Empty reports whether nothing changes.
func (ch Change) Empty() bool { return len(ch.Label) == 0 && len(ch.Unlabel) == 0 }

// NodeAnnotations are the nodes' cluster ID annotations, by node.
type NodeAnnotations map[string]map[string]string

// Diff returns the changes that turn the nodes' current marks into t: a
// node is marked with the label (value: its zone in Multi, "true" in
// Single) and the cluster ID annotation.
func Diff(c Config, t Topology, nodes []Node, annotations NodeAnnotations) Change {
	c = c.WithDefaults()
	ch := Change{Label: map[string]string{}}
	for _, n := range nodes {
		id, chosen := t.ClusterIDs[n.Name]
		value, marked := n.Labels[c.Label]
		switch {
		case chosen && (!marked || value != LabelValue(c, n) || annotations[n.Name][ClusterIDAnnotation] != id):
			ch.Label[n.Name] = id
		case !chosen && (marked || annotations[n.Name][ClusterIDAnnotation] != ""):
			ch.Unlabel = append(ch.Unlabel, n.Name)
		}
	}
	sort.Strings(ch.Unlabel)
	return ch
}

// LabelValue is the value of a reflector's label: its zone in Multi (so
// peers can select a zone's reflectors), "true" in Single.
func LabelValue(c Config, n Node) string {
	c = c.WithDefaults()
	if c.Topology == Multi {
		return labelSafe(n.Labels[c.ZoneLabel])
	}
	return "true"
}

// labelSafe makes a zone name a valid label value ("" -> "none").
func labelSafe(zone string) string {
	if zone == "" {
		return "none"
	}
	return zone
}

// Peer is a desired crd.projectcalico.org/v1 BGPPeer: its name and the
// node and peer selectors (Calico selector syntax).
type Peer struct {
	Name         string
	NodeSelector string
	PeerSelector string
}

// Peers returns the BGPPeers of a topology, their names starting with
// prefix, sorted by name. With no reflector there are none (and the
// node-to-node mesh must stay on).
func Peers(c Config, t Topology, prefix string) []Peer {
	c = c.WithDefaults()
	if len(t.Reflectors) == 0 {
		return nil
	}
	if c.Topology == Single {
		return []Peer{
			{Name: prefix + "-mesh", NodeSelector: fmt.Sprintf("has(%s)", c.Label), PeerSelector: fmt.Sprintf("has(%s)", c.Label)},
			{Name: prefix + "-clients", NodeSelector: fmt.Sprintf("!has(%s)", c.Label), PeerSelector: fmt.Sprintf("has(%s)", c.Label)},
		}
	}
	var out []Peer
	for z, refl := range t.Zones {
		if len(refl) == 0 {
			continue
		}
		v := labelSafe(z)
		// Every node of the zone, reflectors included (they mesh), peers
		// with the zone's reflectors.
		nodeSel := fmt.Sprintf("%s == '%s'", c.ZoneLabel, z)
		if z == "" {
			nodeSel = fmt.Sprintf("!has(%s)", c.ZoneLabel)
		}
		out = append(out, Peer{Name: prefix + "-zone-" + peerNameSafe(v), NodeSelector: nodeSel, PeerSelector: fmt.Sprintf("%s == '%s'", c.Label, v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// peerNameSafe makes a zone a valid object name part.
func peerNameSafe(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// MeshEnabled is the node-to-node mesh setting the topology wants: off once
// reflectors exist, on when none is left, so routing never has no peers.
func MeshEnabled(t Topology) bool { return len(t.Reflectors) == 0 }
