package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
)

// Namespace creates a namespace named prefix-<random> and deletes it when
// the test ends.
func Namespace(t testing.TB, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	name := prefix + "-" + rand.String(6)
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	return name
}

// Deployment is a Deployment labelled app=<name> with a placeholder image:
// kwok's simulated kubelets run any image.
func Deployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.local/" + name + ":1"}}},
			},
		},
	}
}

// CreateDeployment creates Deployment(name, replicas) in ns.
func CreateDeployment(t testing.TB, cs kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), Deployment(name, replicas), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NodePool is a test's own set of kwok nodes in a cluster: labelled
// orch-test-pool=<Name>, spread over zone-a, zone-b and zone-c, and tainted
// so no other test's pods land on them. They are deleted at the end.
type NodePool struct {
	Name  string
	t     testing.TB
	cs    kubernetes.Interface
	count int
}

// Selector selects the pool's nodes.
func (p *NodePool) Selector() string { return "orch-test-pool=" + p.Name }

// NewNodePool returns an empty pool.
func NewNodePool(t testing.TB, cs kubernetes.Interface) *NodePool {
	p := &NodePool{Name: "pool-" + rand.String(5), t: t, cs: cs}
	t.Cleanup(func() {
		_ = cs.CoreV1().Nodes().DeleteCollection(context.Background(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: p.Selector()})
	})
	return p
}

// NodeName returns the name of the pool's i-th node.
func (p *NodePool) NodeName(i int) string { return fmt.Sprintf("%s-%02d", p.Name, i) }

// Add creates n more nodes, a millisecond apart (creation order is age
// order), and waits until they are Ready with no taint but the pool's.
func (p *NodePool) Add(n int) {
	p.t.Helper()
	ctx := context.Background()
	zones := []string{"zone-a", "zone-b", "zone-c"}
	for i := p.count; i < p.count+n; i++ {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        p.NodeName(i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
				Labels:      map[string]string{"orch-test-pool": p.Name, "type": "kwok", "topology.kubernetes.io/zone": zones[i%3]},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: "orch-test/pool", Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")},
				Capacity: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("110")}},
		}
		if _, err := p.cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			p.t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	p.count += n
	// The node lifecycle controller leaves its not-ready taint on a new
	// node for a moment after it is Ready.
	WaitFor(p.t, fmt.Sprintf("%d ready nodes in %s", p.count, p.Name), 60*time.Second, func() bool {
		list, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: p.Selector()})
		if err != nil {
			return false
		}
		ready := 0
		for _, n := range list.Items {
			ok := len(n.Spec.Taints) == 1
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
					ok = false
				}
			}
			if ok && len(n.Status.Conditions) > 0 {
				ready++
			}
		}
		return ready == p.count
	})
}

// Cordon marks a node unschedulable.
func (p *NodePool) Cordon(name string) {
	p.t.Helper()
	patch := []byte(`{"spec":{"unschedulable":true}}`)
	if _, err := p.cs.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		p.t.Fatal(err)
	}
}

// Delete deletes one of the pool's nodes.
func (p *NodePool) Delete(name string) {
	p.t.Helper()
	if err := p.cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		p.t.Fatal(err)
	}
}
