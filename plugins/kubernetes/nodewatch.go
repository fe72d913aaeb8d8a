package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/orchhq/orch/plugins"
)

// CanWatch says whether a node is a cluster whose nodes it can watch.
func (p *Plugin) CanWatch(node plugins.NodeInfo) error {
	if !node.Is(ClusterType) {
		return fmt.Errorf("target %s is not a %s node", node.Name, ClusterType)
	}
	return nil
}

// Watch watches the nodes of a kubernetes.cluster node (WatchNodes).
func (p *Plugin) Watch(ctx context.Context, node plugins.NodeInfo, w plugins.NodeWatch, changed func()) error {
	if err := p.CanWatch(node); err != nil {
		return err
	}
	return p.WatchNodes(ctx, str(node.Properties, "kubeconfig"), str(node.Properties, "context"), w.Selector, w.Settle, w.Resync, changed)
}

// MeshService is a kubernetes.app node's service (property service, or
// app) in its namespace.
func (p *Plugin) MeshService(node plugins.NodeInfo) (namespace, name string, ok bool) {
	if !node.Is(AppType) {
		return "", "", false
	}
	ns, name := str(node.Properties, "namespace"), str(node.Properties, "service")
	if name == "" {
		name = str(node.Properties, "app")
	}
	return ns, name, ns != "" && name != ""
}

// WatchNodes calls changed whenever the cluster's nodes (those selector
// picks; "" for all) change in a way
// that matters to the roles they play (a node added or deleted, its
// readiness, cordon, labels or taints; not heartbeats), once the changes
// have settled for settle (at most 5x settle after the first), and every
// resync. The informer's first list counts as a change, so a watch starts
// with one call. It returns when ctx is done.
func (p *Plugin) WatchNodes(ctx context.Context, kubeconfig, kubeContext, selector string, settle, resync time.Duration, changed func()) error {
	cs, err := p.Client(kubeconfig, kubeContext)
	if err != nil {
		return err
	}
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = selector
	}))
	inf := factory.Core().V1().Nodes().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		DeleteFunc: func(any) { poke() },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			if !ok1 || !ok2 || roleRelevant(o) != roleRelevant(n) {
				poke()
			}
		},
	}); err != nil {
		return fmt.Errorf("watch nodes of %q: %w", kubeContext, err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	tick := time.NewTicker(resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			changed()
		case <-kick:
			// Trailing debounce: wait until nothing changed for settle.
			deadline := time.After(5 * settle)
			quiet := time.NewTimer(settle)
		settling:
			for {
				select {
				case <-ctx.Done():
					quiet.Stop()
					return nil
				case <-kick:
					quiet.Reset(settle)
				case <-quiet.C:
					break settling
				case <-deadline:
					quiet.Stop()
					break settling
				}
			}
			changed()
		}
	}
}

// roleRelevant is what of a node the route-reflector choice reads.
func roleRelevant(n *corev1.Node) string {
	ready := "unknown"
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = string(c.Status)
		}
	}
	s := fmt.Sprintf("%s|%v|", ready, n.Spec.Unschedulable)
	for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
		s += k + "=" + n.Labels[k] + ","
	}
	for _, t := range n.Spec.Taints {
		s += "|" + t.Key + ":" + string(t.Effect)
	}
	return s
}
