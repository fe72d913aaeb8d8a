package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Labels and annotations that mark orch's copies in the target cluster:
// reconcile deletes only what carries them.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedByOrch    = "orch"
	LabelBurstApp    = "orch.io/burst-app"
	AnnotationSource = "orch.io/source"
)

// Burst is one burst or reconcile: an app (label app=<App>) in a namespace
// of the source cluster, replicated into the target cluster.
type Burst struct {
	App       string
	Namespace string
	// Source and Target are the clusters (Target gets the copies).
	Source, Target kubernetes.Interface
	// SourceDynamic writes the traffic split (a VirtualService) in the
	// source cluster, where the mesh routes the app's traffic.
	SourceDynamic dynamic.Interface
	SourceName    string // for the source annotation, e.g. the context name
	// Weight is the share of traffic (percent) sent to the replica.
	Weight int
	// Suffix names the replica's mesh host: <service><Suffix>.
	Suffix  string
	Timeout time.Duration
	// Traffic is how the traffic is split (default TrafficVirtualService).
	Traffic Traffic
	Mesh    TrafficSplitter
	// Replication is how the app reaches the target (default
	// ReplicationCopy).
	Replication Replication
	DryRun      bool
	Log         func(msg string)
}

// Traffic is how burst splits an app's traffic between it and its replica.
type Traffic string

// The traffic modes of burst.
const (
	TrafficVirtualService Traffic = "virtualservice" // an Istio VirtualService written with the dynamic client
	TrafficGraphQL        Traffic = "graphql"        // Calisti's applyHTTPRoute, through Mesh
	TrafficNone           Traffic = "none"
)

// Replication is how burst puts the app into the target cluster.
type Replication string

// The replication modes of burst.
const (
	ReplicationCopy             Replication = "copy"             // orch writes the copies into the target
	ReplicationResourceSyncRule Replication = "resourcesyncrule" // orch writes ResourceSyncRules on the source; the cluster registry copies
)

// TrafficSplitter splits a host's traffic between it and a replica host
// (the Calisti GraphQL client implements it).
type TrafficSplitter interface {
	SplitTraffic(ctx context.Context, namespace, host, replicaHost string, port, weight int) error
	RemoveSplit(ctx context.Context, namespace, host string) error
}

// VirtualServices is the Istio resource of the traffic split.
var VirtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func (b *Burst) logf(format string, args ...any) {
	if b.Log != nil {
		b.Log(fmt.Sprintf(format, args...))
	}
}

func (b *Burst) validate() error {
	if err := ValidateTarget(b.Namespace, b.App); err != nil {
		return err
	}
	if b.Weight < 0 || b.Weight > 100 {
		return fmt.Errorf("weight %d: must be between 0 and 100", b.Weight)
	}
	if b.Suffix == "" {
		b.Suffix = "-repl"
	}
	if b.Timeout <= 0 {
		b.Timeout = 60 * time.Second
	}
	switch b.Replication {
	case "":
		b.Replication = ReplicationCopy
	case ReplicationCopy, ReplicationResourceSyncRule:
	default:
		return fmt.Errorf("replication %q: want copy or resourcesyncrule", b.Replication)
	}
	switch b.Traffic {
	case "":
		b.Traffic = TrafficVirtualService
	case TrafficVirtualService, TrafficNone:
	case TrafficGraphQL:
		if b.Mesh == nil {
			return fmt.Errorf("traffic graphql needs the mesh's GraphQL endpoint (parameter mesh_url)")
		}
	default:
		return fmt.Errorf("traffic %q: want virtualservice, graphql or none", b.Traffic)
	}
	return nil
}

func (b *Burst) selector() string { return "app=" + b.App }

func (b *Burst) copyMeta(src metav1.ObjectMeta, name string) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Namespace: b.Namespace, Labels: map[string]string{}, Annotations: map[string]string{}}
	for k, v := range src.Labels {
		m.Labels[k] = v
	}
	for k, v := range src.Annotations {
		if k != "kubectl.kubernetes.io/last-applied-configuration" && k != "deployment.kubernetes.io/revision" {
			m.Annotations[k] = v
		}
	}
	m.Labels[LabelManagedBy] = ManagedByOrch
	m.Labels[LabelBurstApp] = b.App
	m.Annotations[AnnotationSource] = fmt.Sprintf("%s/%s/%s", b.SourceName, src.Namespace, src.Name)
	return m
}

// plan reads the source cluster and builds the objects to create in the
// target: Deployments, Services (renamed to the replica host) and the
// ConfigMaps and Secrets the pods reference. Server-set fields are dropped.
func (b *Burst) plan(ctx context.Context) (deps []*appsv1.Deployment, svcs []*corev1.Service, cms []*corev1.ConfigMap, secrets []*corev1.Secret, err error) {
	list, err := b.Source.AppsV1().Deployments(b.Namespace).List(ctx, metav1.ListOptions{LabelSelector: b.selector()})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list deployments %s in %s: %w", b.selector(), b.Namespace, err)
	}
	if len(list.Items) == 0 {
		return nil, nil, nil, nil, fmt.Errorf("no deployment with label %s in namespace %s of %s", b.selector(), b.Namespace, b.SourceName)
	}
	cmNames, secretNames := map[string]bool{}, map[string]bool{}
	for i := range list.Items {
		src := list.Items[i].DeepCopy()
		d := &appsv1.Deployment{ObjectMeta: b.copyMeta(src.ObjectMeta, src.Name), Spec: src.Spec}
		deps = append(deps, d)
		referenced(&d.Spec.Template.Spec, cmNames, secretNames)
	}
	svcList, err := b.Source.CoreV1().Services(b.Namespace).List(ctx, metav1.ListOptions{LabelSelector: b.selector()})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("list services: %w", err)
	}
	for i := range svcList.Items {
		src := svcList.Items[i].DeepCopy()
		s := &corev1.Service{ObjectMeta: b.copyMeta(src.ObjectMeta, src.Name+b.Suffix), Spec: corev1.ServiceSpec{
			Selector: src.Spec.Selector, Type: corev1.ServiceTypeClusterIP, SessionAffinity: src.Spec.SessionAffinity,
		}}
		for _, p := range src.Spec.Ports {
			p.NodePort = 0
			s.Spec.Ports = append(s.Spec.Ports, p)
		}
		svcs = append(svcs, s)
	}
	for _, name := range slices.Sorted(maps.Keys(cmNames)) {
		src, err := b.Source.CoreV1().ConfigMaps(b.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("configmap %s referenced by %s: %w", name, b.App, err)
		}
		cms = append(cms, &corev1.ConfigMap{ObjectMeta: b.copyMeta(src.ObjectMeta, src.Name), Data: src.Data, BinaryData: src.BinaryData})
	}
	for _, name := range slices.Sorted(maps.Keys(secretNames)) {
		src, err := b.Source.CoreV1().Secrets(b.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("secret %s referenced by %s: %w", name, b.App, err)
		}
		secrets = append(secrets, &corev1.Secret{ObjectMeta: b.copyMeta(src.ObjectMeta, src.Name), Data: src.Data, Type: src.Type})
	}
	return deps, svcs, cms, secrets, nil
}

// referenced collects the ConfigMaps and Secrets a pod spec uses.
func referenced(spec *corev1.PodSpec, cms, secrets map[string]bool) {
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			cms[v.ConfigMap.Name] = true
		}
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					cms[s.ConfigMap.Name] = true
				}
				if s.Secret != nil {
					secrets[s.Secret.Name] = true
				}
			}
		}
	}
	containers := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range containers {
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil {
				cms[ef.ConfigMapRef.Name] = true
			}
			if ef.SecretRef != nil {
				secrets[ef.SecretRef.Name] = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				cms[e.ValueFrom.ConfigMapKeyRef.Name] = true
			}
			if e.ValueFrom.SecretKeyRef != nil {
				secrets[e.ValueFrom.SecretKeyRef.Name] = true
			}
		}
	}
	for _, s := range spec.ImagePullSecrets {
		secrets[s.Name] = true
	}
}

// redactSecrets are copies of secrets for showing: their keys, never their
// data (a dry run's output lands in events, the state file and terminals).
func redactSecrets(secrets []*corev1.Secret) []*corev1.Secret {
	out := make([]*corev1.Secret, len(secrets))
	for i, sec := range secrets {
		c := sec.DeepCopy()
		c.Data, c.StringData = nil, map[string]string{}
		for k := range sec.Data {
			c.StringData[k] = "(redacted)"
		}
		for k := range sec.StringData {
			c.StringData[k] = "(redacted)"
		}
		out[i] = c
	}
	return out
}

func describe(kind, ns, name string) string { return fmt.Sprintf("%s %s/%s", kind, ns, name) }

// Run bursts the app: copies into the target (created or updated), waits
// until every replica runs, then splits the traffic. Running it twice
// leaves one copy.
func (b *Burst) Run(ctx context.Context) error {
	if err := b.validate(); err != nil {
		return err
	}
	b.logf("burst triggered for %s in %s", b.selector(), b.Namespace)
	deps, svcs, cms, secrets, err := b.plan(ctx)
	if err != nil {
		return err
	}
	if b.DryRun {
		for _, obj := range []any{deps, svcs, cms, redactSecrets(secrets)} {
			data, _ := json.Marshal(obj)
			b.logf("would create or update in the target: %s", data)
		}
		if b.Traffic == TrafficVirtualService && len(svcs) > 0 {
			data, _ := json.Marshal(b.virtualService(svcs[0]).Object)
			b.logf("would apply traffic split in %s: %s", b.SourceName, data)
		}
		return nil
	}
	if err := b.ensureNamespace(ctx); err != nil {
		return err
	}
	if b.Replication == ReplicationResourceSyncRule {
		names := map[string][]string{}
		for _, d := range deps {
			names["Deployment"] = append(names["Deployment"], d.Name)
		}
		for _, cm := range cms {
			names["ConfigMap"] = append(names["ConfigMap"], cm.Name)
		}
		for _, sec := range secrets {
			names["Secret"] = append(names["Secret"], sec.Name)
		}
		if err := b.applySyncRules(ctx, names); err != nil {
			return err
		}
	} else if err := b.copyObjects(ctx, deps, cms, secrets); err != nil {
		return err
	}
	for _, s := range svcs {
		if err := apply(ctx, b.Target.CoreV1().Services(b.Namespace), s, func(old, new *corev1.Service) {
			new.ResourceVersion = old.ResourceVersion
			new.Spec.ClusterIP, new.Spec.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		}); err != nil {
			return err
		}
	}
	b.logf("%d deployments, %d services, %d configmaps, %d secrets replicated into the target (%s)", len(deps), len(svcs), len(cms), len(secrets), b.Replication)
	if err := b.waitRunning(ctx, deps); err != nil {
		return err
	}
	if len(svcs) == 0 || b.Traffic == TrafficNone {
		return nil
	}
	host, port := strings.TrimSuffix(svcs[0].Name, b.Suffix), 80
	if len(svcs[0].Spec.Ports) > 0 {
		port = int(svcs[0].Spec.Ports[0].Port)
	}
	switch b.Traffic {
	case TrafficVirtualService:
		vs := b.virtualService(svcs[0])
		if err := applyUnstructured(ctx, b.SourceDynamic.Resource(VirtualServices).Namespace(b.Namespace), vs); err != nil {
			return fmt.Errorf("traffic split for %s: %w", b.App, err)
		}
	case TrafficGraphQL:
		if err := b.Mesh.SplitTraffic(ctx, b.Namespace, host, svcs[0].Name, port, b.Weight); err != nil {
			return fmt.Errorf("traffic split for %s: %w", b.App, err)
		}
	}
	b.logf("traffic split for %s: %d%% to %s, %d%% to %s (%s)", b.App, 100-b.Weight, host, b.Weight, svcs[0].Name, b.Traffic)
	return nil
}

// copyObjects writes orch's own copies into the target.
func (b *Burst) copyObjects(ctx context.Context, deps []*appsv1.Deployment, cms []*corev1.ConfigMap, secrets []*corev1.Secret) error {
	for _, cm := range cms {
		if err := apply(ctx, b.Target.CoreV1().ConfigMaps(b.Namespace), cm, func(old, new *corev1.ConfigMap) { new.ResourceVersion = old.ResourceVersion }); err != nil {
			return err
		}
	}
	for _, s := range secrets {
		if err := apply(ctx, b.Target.CoreV1().Secrets(b.Namespace), s, func(old, new *corev1.Secret) { new.ResourceVersion = old.ResourceVersion }); err != nil {
			return err
		}
	}
	// Deployments in parallel: 20 apps should not take 20 times one.
	var wg sync.WaitGroup
	errs := make([]error, len(deps))
	for i, d := range deps {
		wg.Add(1)
		go func(i int, d *appsv1.Deployment) {
			defer wg.Done()
			errs[i] = apply(ctx, b.Target.AppsV1().Deployments(b.Namespace), d, func(old, new *appsv1.Deployment) { new.ResourceVersion = old.ResourceVersion })
		}(i, d)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// namespaceLabel marks a namespace orch created, so reconcile removes it.
const namespaceLabel = "orch.io/created-for-burst"

func (b *Burst) ensureNamespace(ctx context.Context) error {
	_, err := b.Target.CoreV1().Namespaces().Get(ctx, b.Namespace, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("namespace %s in the target: %w", b.Namespace, err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: b.Namespace, Labels: map[string]string{LabelManagedBy: ManagedByOrch, namespaceLabel: b.App}}}
	if _, err := b.Target.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s in the target: %w", b.Namespace, err)
	}
	b.logf("created namespace %s in the target", b.Namespace)
	return nil
}

// client is the typed client surface apply needs.
type client[T any] interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (T, error)
	Create(ctx context.Context, obj T, opts metav1.CreateOptions) (T, error)
	Update(ctx context.Context, obj T, opts metav1.UpdateOptions) (T, error)
}

type object interface {
	comparable
	GetName() string
	GetNamespace() string
	GetLabels() map[string]string
}

// apply creates obj or updates the existing one, but only an object orch
// created: another owner's object of the same name is not overwritten.
func apply[T object](ctx context.Context, c client[T], obj T, keep func(old, new T)) error {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*v1.")
	// The target's controllers update these objects too (a Deployment's
	// status): a conflict between our read and our write reads again.
	return retry.RetryOnConflict(conflictBackoff, func() error {
		old, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := c.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("create %s: %w", describe(kind, obj.GetNamespace(), obj.GetName()), err)
			}
			return nil
		case err != nil:
			return fmt.Errorf("get %s: %w", describe(kind, obj.GetNamespace(), obj.GetName()), err)
		}
		if old.GetLabels()[LabelManagedBy] != ManagedByOrch {
			return fmt.Errorf("%s exists in the target and is not orch's copy; refusing to overwrite it", describe(kind, obj.GetNamespace(), obj.GetName()))
		}
		keep(old, obj)
		if _, err := c.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update %s: %w", describe(kind, obj.GetNamespace(), obj.GetName()), err)
		}
		return nil
	})
}

func applyUnstructured(ctx context.Context, c dynamic.ResourceInterface, obj *unstructured.Unstructured) error {
	return retry.RetryOnConflict(conflictBackoff, func() error {
		old, err := c.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = c.Create(ctx, obj, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		obj.SetResourceVersion(old.GetResourceVersion())
		_, err = c.Update(ctx, obj, metav1.UpdateOptions{})
		return err
	})
}

// virtualService splits the app's host between the original and the replica.
func (b *Burst) virtualService(replica *corev1.Service) *unstructured.Unstructured {
	var port int64 = 80
	if len(replica.Spec.Ports) > 0 {
		port = int64(replica.Spec.Ports[0].Port)
	}
	host := strings.TrimSuffix(replica.Name, b.Suffix)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata": map[string]any{
			"name": "orch-burst-" + b.App, "namespace": b.Namespace,
			"labels": map[string]any{LabelManagedBy: ManagedByOrch, LabelBurstApp: b.App},
		},
		"spec": map[string]any{
			"hosts": []any{host},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": host, "port": map[string]any{"number": port}}, "weight": int64(100 - b.Weight)},
				map[string]any{"destination": map[string]any{"host": replica.Name, "port": map[string]any{"number": port}}, "weight": int64(b.Weight)},
			}}},
		},
	}}
}

// waitRunning watches the target's pods until every copied Deployment has
// its replicas Running, or fails at the timeout with the pods' states.
func (b *Burst) waitRunning(ctx context.Context, deps []*appsv1.Deployment) error {
	want := 0
	selectors := make([]labels.Selector, 0, len(deps))
	for _, d := range deps {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return fmt.Errorf("deployment %s selector: %w", d.Name, err)
		}
		selectors = append(selectors, sel)
		r := int32(1)
		if d.Spec.Replicas != nil {
			r = *d.Spec.Replicas
		}
		want += int(r)
	}
	b.logf("waiting for %d pods to be running", want)
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	pods := b.Target.CoreV1().Pods(b.Namespace)
	var last []corev1.Pod
	count := func(items []corev1.Pod) int {
		n := 0
		for _, p := range items {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			for _, sel := range selectors {
				if sel.Matches(labels.Set(p.Labels)) {
					n++
					break
				}
			}
		}
		return n
	}
	for {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: b.selector()})
		if err != nil {
			return b.timeoutError(ctx, err, last)
		}
		last = list.Items
		if count(last) >= want {
			b.logf("%d pods running in the target", want)
			return nil
		}
		w, err := pods.Watch(ctx, metav1.ListOptions{LabelSelector: b.selector(), ResourceVersion: list.ResourceVersion})
		if err != nil {
			return b.timeoutError(ctx, err, last)
		}
		state := map[string]corev1.Pod{}
		for _, p := range last {
			state[p.Name] = p
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				delete(state, p.Name)
			} else {
				state[p.Name] = *p
			}
			last = last[:0]
			for _, p := range state {
				last = append(last, p)
			}
			if count(last) >= want {
				w.Stop()
				b.logf("%d pods running in the target", want)
				return nil
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			return b.timeoutError(ctx, ctx.Err(), last)
		}
		// The watch closed early: list again.
	}
}

func (b *Burst) timeoutError(ctx context.Context, err error, pods []corev1.Pod) error {
	var states []string
	for _, p := range pods {
		s := string(p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Reason != "" {
				s += " (" + c.Reason + ": " + c.Message + ")"
				break
			}
		}
		states = append(states, p.Name+": "+s)
	}
	sort.Strings(states)
	if len(states) == 0 {
		states = []string{"no pods"}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("burst %s: pods not running after %s: %s", b.App, b.Timeout, strings.Join(states, "; "))
	}
	return fmt.Errorf("burst %s: waiting for pods: %w (pods: %s)", b.App, err, strings.Join(states, "; "))
}

// Reconcile removes the traffic split and deletes orch's copies (and a
// namespace orch created) from the target. Nothing to remove is success.
func (b *Burst) Reconcile(ctx context.Context) error {
	if err := b.validate(); err != nil {
		return err
	}
	sel := metav1.ListOptions{LabelSelector: fmt.Sprintf("%s=%s,%s=%s", LabelManagedBy, ManagedByOrch, LabelBurstApp, b.App)}
	vsName := "orch-burst-" + b.App
	if b.DryRun {
		b.logf("would delete VirtualService %s/%s in %s and the objects labelled %s in the target", b.Namespace, vsName, b.SourceName, sel.LabelSelector)
		return nil
	}
	switch b.Traffic {
	case TrafficVirtualService:
		err := b.SourceDynamic.Resource(VirtualServices).Namespace(b.Namespace).Delete(ctx, vsName, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("remove traffic split %s: %w", vsName, err)
		}
		b.logf("traffic split for %s removed", b.App)
	case TrafficGraphQL:
		if err := b.Mesh.RemoveSplit(ctx, b.Namespace, b.App); err != nil {
			return fmt.Errorf("remove traffic split for %s: %w", b.App, err)
		}
		b.logf("traffic split for %s removed", b.App)
	}
	// The rules live on the source: remove them (and their copies) even when
	// the target namespace is already gone.
	if err := b.deleteSyncRules(ctx); err != nil {
		return err
	}
	ns, err := b.Target.CoreV1().Namespaces().Get(ctx, b.Namespace, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		b.logf("nothing to reconcile in the target")
		return nil
	}
	if err != nil {
		return fmt.Errorf("namespace %s in the target: %w", b.Namespace, err)
	}
	bg := metav1.DeletePropagationBackground
	del := metav1.DeleteOptions{PropagationPolicy: &bg}
	core := b.Target.CoreV1()
	steps := []struct {
		kind string
		fn   func() error
	}{
		{"deployments", func() error { return b.Target.AppsV1().Deployments(b.Namespace).DeleteCollection(ctx, del, sel) }},
		{"services", func() error {
			list, err := core.Services(b.Namespace).List(ctx, sel)
			if err != nil {
				return err
			}
			for _, s := range list.Items {
				if err := core.Services(b.Namespace).Delete(ctx, s.Name, del); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
			return nil
		}},
		{"configmaps", func() error { return core.ConfigMaps(b.Namespace).DeleteCollection(ctx, del, sel) }},
		{"secrets", func() error { return core.Secrets(b.Namespace).DeleteCollection(ctx, del, sel) }},
	}
	for _, st := range steps {
		if err := st.fn(); err != nil {
			return fmt.Errorf("reconcile %s: delete %s: %w", b.App, st.kind, err)
		}
	}
	// ReplicaSets and pods go with their Deployment (background propagation).
	b.logf("deleted orch's copies of %s from the target", b.App)
	if ns.Labels[namespaceLabel] == b.App {
		if err := core.Namespaces().Delete(ctx, b.Namespace, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", b.Namespace, err)
		}
		b.logf("deleted namespace %s, which burst had created", b.Namespace)
	}
	return nil
}
