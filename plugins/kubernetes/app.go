package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/orchhq/orch/plugins"
)

// Operation implementations of kubernetes.app.
const (
	AppCreate = "kubernetes.app.create"
	AppDelete = "kubernetes.app.delete"
)

// appCluster finds the kubernetes.cluster node an app is contained in.
func appCluster(op *plugins.OperationContext) (map[string]any, error) {
	for _, r := range op.Related {
		if r.Kind == "contained_in" && r.Is(ClusterType) {
			return r.Properties, nil
		}
	}
	return nil, fmt.Errorf("kubernetes.app %s must be contained_in a kubernetes.cluster node", op.Node)
}

type appClients struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
}

func (p *Plugin) appClients(cluster map[string]any) (*appClients, error) {
	cfg, err := RESTConfig(str(cluster, "kubeconfig"), str(cluster, "context"))
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &appClients{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// objectRef names an object orch created, kept in runtime properties so
// uninstall deletes exactly those, whatever the blueprint says by then.
type objectRef struct {
	Group, Version, Kind, Namespace, Name string
}

func (r objectRef) String() string {
	return strings.Join([]string{r.Group, r.Version, r.Kind, r.Namespace, r.Name}, "/")
}

func parseRef(s string) (objectRef, bool) {
	p := strings.Split(s, "/")
	if len(p) != 5 {
		return objectRef{}, false
	}
	return objectRef{p[0], p[1], p[2], p[3], p[4]}, true
}

func (c *appClients) resource(gvk schema.GroupVersionKind, ns string) (dynamic.ResourceInterface, bool, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dyn.Resource(m.Resource).Namespace(ns), true, nil
	}
	return c.dyn.Resource(m.Resource), false, nil
}

// appCreate creates the app from its manifests (server-side apply, so
// running it again converges), or adopts an existing app when the node
// gives no manifests.
func (p *Plugin) appCreate(ctx context.Context, op *plugins.OperationContext) error {
	cluster, err := appCluster(op)
	if err != nil {
		return err
	}
	ns, app := str(op.Properties, "namespace"), str(op.Properties, "app")
	if err := ValidateTarget(ns, app); err != nil {
		return err
	}
	manifests, _ := op.Properties["manifests"].([]any)
	if len(manifests) == 0 {
		client, err := p.Client(str(cluster, "kubeconfig"), str(cluster, "context"))
		if err != nil {
			return err
		}
		deps, err := client.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return plugins.Recoverable(fmt.Errorf("adopt %s: %w", app, err))
		}
		if len(deps.Items) == 0 {
			return fmt.Errorf("adopt %s: no deployment labelled app=%s in namespace %s; give manifests to create it", app, app, ns)
		}
		op.Runtime["adopted"] = true
		op.Log("info", fmt.Sprintf("adopted %d deployment(s) labelled app=%s in %s", len(deps.Items), app, ns))
		return nil
	}
	c, err := p.appClients(cluster)
	if err != nil {
		return err
	}
	client, err := p.Client(str(cluster, "kubeconfig"), str(cluster, "context"))
	if err != nil {
		return err
	}
	if _, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelManagedBy: ManagedByOrch}}}
		if _, err := client.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
		op.Runtime["created_namespace"] = ns
	} else if err != nil {
		return plugins.Recoverable(fmt.Errorf("namespace %s: %w", ns, err))
	}
	var created []any
	for i, m := range manifests {
		obj, ok := m.(map[string]any)
		if !ok {
			return fmt.Errorf("manifest %d of %s is not an object", i, op.Node)
		}
		u := &unstructured.Unstructured{Object: obj}
		gvk := u.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || u.GetName() == "" {
			return fmt.Errorf("manifest %d of %s needs apiVersion, kind and metadata.name", i, op.Node)
		}
		res, namespaced, err := c.resource(gvk, ns)
		if err != nil {
			return fmt.Errorf("manifest %d of %s: %w", i, op.Node, err)
		}
		if namespaced {
			if u.GetNamespace() == "" {
				u.SetNamespace(ns)
			}
			res, _, _ = c.resource(gvk, u.GetNamespace())
		}
		labels := u.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelManagedBy] = ManagedByOrch
		u.SetLabels(labels)
		data, err := json.Marshal(u.Object)
		if err != nil {
			return err
		}
		force := true
		if _, err := res.Patch(ctx, u.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "orch", Force: &force}); err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
		}
		ref := objectRef{gvk.Group, gvk.Version, gvk.Kind, u.GetNamespace(), u.GetName()}
		created = append(created, ref.String())
		op.Log("info", fmt.Sprintf("applied %s %s/%s", gvk.Kind, u.GetNamespace(), u.GetName()))
	}
	op.Runtime["created"] = created
	return nil
}

// appDelete deletes what appCreate created (never an adopted app).
func (p *Plugin) appDelete(ctx context.Context, op *plugins.OperationContext) error {
	if op.Runtime["adopted"] == true {
		op.Log("info", "the app was adopted, not created: left in place")
		return nil
	}
	cluster, err := appCluster(op)
	if err != nil {
		return err
	}
	c, err := p.appClients(cluster)
	if err != nil {
		return err
	}
	created, _ := op.Runtime["created"].([]any)
	bg := metav1.DeletePropagationBackground
	for i := len(created) - 1; i >= 0; i-- {
		ref, ok := parseRef(fmt.Sprint(created[i]))
		if !ok {
			continue
		}
		res, _, err := c.resource(schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind}, ref.Namespace)
		if err != nil {
			return err
		}
		if err := res.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &bg}); err != nil && !apierrors.IsNotFound(err) {
			return plugins.Recoverable(fmt.Errorf("delete %s %s: %w", ref.Kind, ref.Name, err))
		}
		op.Log("info", fmt.Sprintf("deleted %s %s/%s", ref.Kind, ref.Namespace, ref.Name))
	}
	if ns, ok := op.Runtime["created_namespace"].(string); ok && ns != "" {
		client, err := p.Client(str(cluster, "kubeconfig"), str(cluster, "context"))
		if err != nil {
			return err
		}
		if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return plugins.Recoverable(fmt.Errorf("delete namespace %s: %w", ns, err))
		}
		op.Log("info", fmt.Sprintf("deleted namespace %s", ns))
	}
	delete(op.Runtime, "created")
	delete(op.Runtime, "created_namespace")
	return nil
}

// str reads a string property of an operation's node (or a related one).
func str(m map[string]any, k string) string {
	if s, ok := m[k].(string); ok {
		return s
	}
	if v, ok := m[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}
