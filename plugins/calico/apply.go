package calico

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// Calico's resources orch writes.
var (
	BGPPeers          = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "bgppeers"}
	BGPConfigurations = schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "bgpconfigurations"}
)

// ManagedBy labels the BGPPeers orch owns; others are never touched.
const ManagedBy = "app.kubernetes.io/managed-by"

// Cluster is the cluster a topology is applied to.
type Cluster struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// NodeSelector limits the nodes considered (a label selector); "" is
	// every node.
	NodeSelector string
	// PeerPrefix prefixes orch's BGPPeer names (default DefaultPeerPrefix), so two
	// node pools can be managed apart.
	PeerPrefix string
	// MeshConfig is the BGPConfiguration whose nodeToNodeMeshEnabled is
	// switched (default "default"); "-" leaves the mesh alone.
	MeshConfig string
}

// Result is what an Apply did (or, in a dry run, would do).
type Result struct {
	Topology     Topology
	Change       Change
	PeersWritten []string
	PeersDeleted []string
	Mesh         bool // nodeToNodeMeshEnabled as left
	MeshChanged  bool
}

// prefix is the BGPPeer name prefix, DefaultPeerPrefix unless set.
func (cl Cluster) prefix() string {
	if cl.PeerPrefix == "" {
		return DefaultPeerPrefix
	}
	return cl.PeerPrefix
}

// Nodes reads the cluster's nodes as the selection sees them, with their
// cluster ID annotations.
func (cl Cluster) Nodes(ctx context.Context) ([]Node, NodeAnnotations, error) {
	list, err := cl.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: cl.NodeSelector})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	nodes := make([]Node, 0, len(list.Items))
	ann := NodeAnnotations{}
	for i := range list.Items {
		n := &list.Items[i]
		nodes = append(nodes, FromNode(n))
		if id, ok := n.Annotations[ClusterIDAnnotation]; ok {
			ann[n.Name] = map[string]string{ClusterIDAnnotation: id}
		}
	}
	return nodes, ann, nil
}

// FromNode converts a Kubernetes Node.
func FromNode(n *corev1.Node) Node {
	out := Node{Name: n.Name, Labels: map[string]string{}, Unschedulable: n.Spec.Unschedulable, Created: n.CreationTimestamp.Time}
	for k, v := range n.Labels {
		out.Labels[k] = v
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			out.Ready = c.Status == corev1.ConditionTrue
		}
	}
	for _, t := range n.Spec.Taints {
		out.Taints = append(out.Taints, t.Key)
	}
	return out
}

// Apply computes the topology of the cluster's nodes and converges the
// cluster to it, in an order that never leaves routing without peers: new
// reflectors are marked and the desired BGPPeers written first, then the
// node-to-node mesh is switched off (only once reflectors exist), then nodes
// losing the role are unmarked and obsolete peers deleted. With no reflector
// left the mesh is switched back on before any peer is deleted. Running it
// again changes nothing. With dryRun nothing is written.
func (cl Cluster) Apply(ctx context.Context, c Config, dryRun bool) (*Result, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if cl.MeshConfig == "" {
		cl.MeshConfig = "default"
	}
	nodes, ann, err := cl.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Topology: Select(c, nodes)}
	res.Change = Diff(c, res.Topology, nodes, ann)
	res.Mesh = MeshEnabled(res.Topology)
	peers := Peers(c, res.Topology, cl.prefix())
	existing, err := cl.Dynamic.Resource(BGPPeers).List(ctx, metav1.ListOptions{LabelSelector: ManagedBy + "=orch"})
	if err != nil {
		return nil, fmt.Errorf("list bgppeers: %w", err)
	}
	current := map[string]*unstructured.Unstructured{}
	for i := range existing.Items {
		p := &existing.Items[i]
		if strings.HasPrefix(p.GetName(), cl.prefix()+"-") {
			current[p.GetName()] = p
		}
	}
	var write []Peer
	for _, p := range peers {
		if cur := current[p.Name]; cur == nil || !samePeer(cur, p) {
			write = append(write, p)
			res.PeersWritten = append(res.PeersWritten, p.Name)
		}
	}
	for name := range current {
		if !slices.ContainsFunc(peers, func(p Peer) bool { return p.Name == name }) {
			res.PeersDeleted = append(res.PeersDeleted, name)
		}
	}
	sort.Strings(res.PeersDeleted)
	meshNow, meshExists, err := cl.mesh(ctx)
	if err != nil {
		return nil, err
	}
	res.MeshChanged = cl.MeshConfig != "-" && (!meshExists || meshNow != res.Mesh)
	if dryRun {
		return res, nil
	}
	byName := map[string]Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	for _, name := range slices.Sorted(maps.Keys(res.Change.Label)) {
		if err := cl.mark(ctx, name, map[string]any{c.Label: LabelValue(c, byName[name])}, map[string]any{ClusterIDAnnotation: res.Change.Label[name]}); err != nil {
			return res, err
		}
	}
	for _, p := range write {
		if err := cl.writePeer(ctx, p); err != nil {
			return res, err
		}
	}
	if res.MeshChanged && res.Mesh {
		// No reflector is left: the full mesh comes back before anything
		// else goes.
		if err := cl.setMesh(ctx, true, meshExists); err != nil {
			return res, err
		}
	}
	if res.MeshChanged && !res.Mesh {
		if err := cl.setMesh(ctx, false, meshExists); err != nil {
			return res, err
		}
	}
	for _, name := range res.Change.Unlabel {
		if err := cl.mark(ctx, name, map[string]any{c.Label: nil}, map[string]any{ClusterIDAnnotation: nil}); err != nil {
			return res, err
		}
	}
	for _, name := range res.PeersDeleted {
		err := cl.Dynamic.Resource(BGPPeers).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return res, fmt.Errorf("delete bgppeer %s: %w", name, err)
		}
	}
	return res, nil
}

// mark merge-patches a node's labels and annotations (nil removes one).
func (cl Cluster) mark(ctx context.Context, node string, labels, annotations map[string]any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}})
	if err != nil {
		return err
	}
	if _, err := cl.Kube.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("mark node %s: %w", node, err)
	}
	return nil
}

func samePeer(u *unstructured.Unstructured, p Peer) bool {
	ns, _, _ := unstructured.NestedString(u.Object, "spec", "nodeSelector")
	ps, _, _ := unstructured.NestedString(u.Object, "spec", "peerSelector")
	return ns == p.NodeSelector && ps == p.PeerSelector
}

// writePeer creates or updates one of orch's BGPPeers with server-side apply.
func (cl Cluster) writePeer(ctx context.Context, p Peer) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "crd.projectcalico.org/v1",
		"kind":       "BGPPeer",
		"metadata":   map[string]any{"name": p.Name, "labels": map[string]any{ManagedBy: "orch"}},
		"spec":       map[string]any{"nodeSelector": p.NodeSelector, "peerSelector": p.PeerSelector},
	}}
	if _, err := cl.Dynamic.Resource(BGPPeers).Apply(ctx, p.Name, obj, metav1.ApplyOptions{FieldManager: "orch", Force: true}); err != nil {
		return fmt.Errorf("write bgppeer %s: %w", p.Name, err)
	}
	return nil
}

// mesh reads nodeToNodeMeshEnabled of the mesh BGPConfiguration (Calico's
// default when absent is on).
func (cl Cluster) mesh(ctx context.Context) (enabled, exists bool, err error) {
	if cl.MeshConfig == "-" {
		return true, true, nil
	}
	u, err := cl.Dynamic.Resource(BGPConfigurations).Get(ctx, cl.MeshConfig, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("get bgpconfiguration %s: %w", cl.MeshConfig, err)
	}
	v, found, _ := unstructured.NestedBool(u.Object, "spec", "nodeToNodeMeshEnabled")
	return !found || v, true, nil
}

func (cl Cluster) setMesh(ctx context.Context, enabled, exists bool) error {
	if !exists {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "crd.projectcalico.org/v1", "kind": "BGPConfiguration",
			"metadata": map[string]any{"name": cl.MeshConfig},
			"spec":     map[string]any{"nodeToNodeMeshEnabled": enabled},
		}}
		if _, err := cl.Dynamic.Resource(BGPConfigurations).Create(ctx, obj, metav1.CreateOptions{FieldManager: "orch"}); err != nil {
			return fmt.Errorf("create bgpconfiguration %s: %w", cl.MeshConfig, err)
		}
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"nodeToNodeMeshEnabled": enabled}})
	if _, err := cl.Dynamic.Resource(BGPConfigurations).Patch(ctx, cl.MeshConfig, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "orch"}); err != nil {
		return fmt.Errorf("set nodeToNodeMeshEnabled=%v on bgpconfiguration %s: %w", enabled, cl.MeshConfig, err)
	}
	return nil
}

// DeletePeers deletes orch's BGPPeers of this cluster's prefix (and no
// other), e.g. when the topology is no longer managed.
func (cl Cluster) DeletePeers(ctx context.Context) error {
	list, err := cl.Dynamic.Resource(BGPPeers).List(ctx, metav1.ListOptions{LabelSelector: ManagedBy + "=orch"})
	if err != nil {
		return fmt.Errorf("list bgppeers: %w", err)
	}
	for _, p := range list.Items {
		if !strings.HasPrefix(p.GetName(), cl.prefix()+"-") {
			continue
		}
		if err := cl.Dynamic.Resource(BGPPeers).Delete(ctx, p.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bgppeer %s: %w", p.GetName(), err)
		}
	}
	return nil
}
