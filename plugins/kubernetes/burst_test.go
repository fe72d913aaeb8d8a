package kubernetes_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins"
	k8s "github.com/orchhq/orch/plugins/kubernetes"
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/mesh/meshtest"
	"github.com/zclconf/go-cty/cty"
)

// sourceApp creates, in a new namespace of the primary cluster, n
// Deployments labelled app=<app> (2 replicas each, using a ConfigMap and a
// Secret) and a Service for the app.
func sourceApp(t testing.TB, cs kubernetes.Interface, app string, n int, nodeSelector map[string]string) string {
	t.Helper()
	ctx := context.Background()
	ns := "burst-" + rand.String(6)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: app + "-config"}, Data: map[string]string{"MODE": "burst"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: app + "-creds"}, StringData: map[string]string{"token": "t0k3n"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	two := int32(2)
	for i := 0; i < n; i++ {
		name := app
		if n > 1 {
			name = fmt.Sprintf("%s-%d", app, i)
		}
		labels := map[string]string{"app": app, "component": name}
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: &two,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						NodeSelector: nodeSelector,
						Containers: []corev1.Container{{
							Name: "app", Image: "registry.local/" + app + ":1",
							EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}}},
						}},
						Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: app + "-creds"}}}},
					},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Labels: map[string]string{"app": app}},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func newBurst(t testing.TB, e *testenv.Env, app, ns string) *k8s.Burst {
	return &k8s.Burst{
		App: app, Namespace: ns, Weight: 25, Suffix: "-repl", Timeout: 30 * time.Second,
		Source: e.Clientset(t, testenv.Primary), Target: e.Clientset(t, testenv.Peer),
		SourceDynamic: e.Dynamic(t, testenv.Primary), SourceName: testenv.Primary,
		Log: func(msg string) { t.Log(msg) },
	}
}

// peerSnapshot lists what burst may touch in the peer: the namespace ns
// (whether it exists, and its objects) and any namespace labelled as orch's.
// Other tests run in parallel, so the peer's other namespaces are not ours
// to compare.
func peerSnapshot(t *testing.T, cs kubernetes.Interface, ns string) string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err == nil {
		out = append(out, "namespace/"+ns)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	owned, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelManagedBy + "=" + k8s.ManagedByOrch})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range owned.Items {
		if n.Name == ns {
			out = append(out, "orch-namespace/"+n.Name)
		}
	}
	if deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range deps.Items {
			out = append(out, "deployment/"+d.Name)
		}
	}
	if svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range svcs.Items {
			out = append(out, "service/"+s.Name)
		}
	}
	if cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, c := range cms.Items {
			out = append(out, "configmap/"+c.Name)
		}
	}
	if ss, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, s := range ss.Items {
			out = append(out, "secret/"+s.Name)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, last)
	}
}

func TestBurstThenReconcileLeavesThePeerAsBefore(t *testing.T) {
	e := testenv.Get(t)
	primary, peer := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	ns := sourceApp(t, primary, "bookings", 1, nil)
	before := peerSnapshot(t, peer, ns)
	ctx := context.Background()
	b := newBurst(t, e, "bookings", ns)

	for round := 1; round <= 2; round++ { // burst twice: one copy
		if err := b.Run(ctx); err != nil {
			t.Fatalf("burst %d: %v", round, err)
		}
	}
	deps, err := peer.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 1 || deps.Items[0].Labels[k8s.LabelManagedBy] != "orch" || deps.Items[0].ResourceVersion == "" {
		t.Fatalf("peer deployments after two bursts: %+v", deps.Items)
	}
	if src := deps.Items[0].Annotations[k8s.AnnotationSource]; src != "primary/"+ns+"/bookings" {
		t.Errorf("source annotation = %q", src)
	}
	for _, obj := range []string{"service/bookings-repl", "configmap/bookings-config", "secret/bookings-creds"} {
		if !strings.Contains(peerSnapshot(t, peer, ns), obj) {
			t.Errorf("peer lacks %s", obj)
		}
	}
	vs, err := e.Dynamic(t, testenv.Primary).Resource(k8s.VirtualServices).Namespace(ns).Get(ctx, "orch-burst-bookings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	routes, _, _ := unstructuredSlice(vs.Object, "spec", "http")
	route := routes[0].(map[string]any)["route"].([]any)
	got := fmt.Sprintf("%v/%v %v/%v",
		route[0].(map[string]any)["destination"].(map[string]any)["host"], route[0].(map[string]any)["weight"],
		route[1].(map[string]any)["destination"].(map[string]any)["host"], route[1].(map[string]any)["weight"])
	if got != "bookings/75 bookings-repl/25" {
		t.Errorf("virtual service routes = %s", got)
	}

	for round := 1; round <= 2; round++ { // reconcile twice: both succeed
		if err := b.Reconcile(ctx); err != nil {
			t.Fatalf("reconcile %d: %v", round, err)
		}
	}
	if _, err := e.Dynamic(t, testenv.Primary).Resource(k8s.VirtualServices).Namespace(ns).Get(ctx, "orch-burst-bookings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("traffic split still there: %v", err)
	}
	eventually(t, "peer back to its state before the burst", func() (bool, string) {
		now := peerSnapshot(t, peer, ns)
		return now == before, "before:\n" + before + "\nnow:\n" + now
	})
}

func TestReconcileKeepsWhatIsNotOrchs(t *testing.T) {
	e := testenv.Get(t)
	primary, peer := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	ns := sourceApp(t, primary, "search", 1, nil)
	ctx := context.Background()
	// The namespace already exists in the peer, with a config of the same
	// name as the one burst would copy, and another app.
	if _, err := peer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = peer.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if _, err := peer.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "search-config"}, Data: map[string]string{"MODE": "local"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	b := newBurst(t, e, "search", ns)
	err := b.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "not orch's copy") {
		t.Fatalf("burst over another owner's configmap: %v", err)
	}
	cm, err := peer.CoreV1().ConfigMaps(ns).Get(ctx, "search-config", metav1.GetOptions{})
	if err != nil || cm.Data["MODE"] != "local" {
		t.Errorf("another owner's configmap was changed: %v %v", cm.Data, err)
	}
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.CoreV1().ConfigMaps(ns).Get(ctx, "search-config", metav1.GetOptions{}); err != nil {
		t.Errorf("reconcile deleted what is not orch's: %v", err)
	}
	if _, err := peer.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Errorf("reconcile deleted a namespace it did not create: %v", err)
	}
}

func TestBurstTimeoutReportsPodStates(t *testing.T) {
	e := testenv.Get(t)
	ns := sourceApp(t, e.Clientset(t, testenv.Primary), "stuck", 1, map[string]string{"no-such-node": "true"})
	b := newBurst(t, e, "stuck", ns)
	b.Timeout = 2 * time.Second
	start := time.Now()
	err := b.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "pods not running after 2s") || !strings.Contains(err.Error(), "Pending") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a 2s timeout took %s", took)
	}
	if err := b.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBurstDryRunTouchesNothing(t *testing.T) {
	e := testenv.Get(t)
	ns := sourceApp(t, e.Clientset(t, testenv.Primary), "dry", 1, nil)
	b := newBurst(t, e, "dry", ns)
	var logs []string
	b.DryRun, b.Log = true, func(msg string) { logs = append(logs, msg) }
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Clientset(t, testenv.Peer).CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry run created the namespace in the peer: %v", err)
	}
	joined := strings.Join(logs, "\n")
	for _, want := range []string{`"name":"dry"`, `"name":"dry-repl"`, `"weight":25`, `"name":"dry-creds"`, `"token":"(redacted)"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("dry run output lacks %s:\n%s", want, joined)
		}
	}
	// The Secret's data never shows, plain or base64.
	if strings.Contains(joined, "t0k3n") || strings.Contains(joined, "dDBrM24") {
		t.Errorf("dry run output shows the Secret's data:\n%s", joined)
	}
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("%s is not an object", f)
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}

func TestBurstSplitsTrafficThroughGraphQL(t *testing.T) {
	e := testenv.Get(t)
	ns := sourceApp(t, e.Clientset(t, testenv.Primary), "ratings", 1, nil)
	server := meshtest.New("mesh-token")
	defer server.Close()
	b := newBurst(t, e, "ratings", ns)
	mc, err := mesh.New(server.URL, mesh.Auth{Token: "mesh-token"})
	if err != nil {
		t.Fatal(err)
	}
	b.Traffic, b.Weight, b.Mesh = "graphql", 30, mc
	ctx := context.Background()
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := server.Accepted()
	if len(got) != 2 || got[0].Field != "applyHTTPRoute" || got[1].Field != "disableHTTPRoute" || server.Rejected() != 0 {
		t.Fatalf("mesh saw %+v (rejected %d)", got, server.Rejected())
	}
	route := got[0].Variables["input"].(map[string]any)["rule"].(map[string]any)["route"].([]any)
	w0, w1 := route[0].(map[string]any)["weight"], route[1].(map[string]any)["weight"]
	if fmt.Sprint(w0, "/", w1) != "70/30" {
		t.Errorf("weights %v/%v, want 70/30", w0, w1)
	}
	if _, err := e.Dynamic(t, testenv.Primary).Resource(k8s.VirtualServices).Namespace(ns).Get(ctx, "orch-burst-ratings", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("graphql traffic also wrote a VirtualService: %v", err)
	}
}

// registryStandIn plays the cluster registry's controller, which cannot run
// here: it follows the ResourceSyncRules on the source and copies the
// objects they match into the target, as the real one would (no orch labels).
func registryStandIn(ctx context.Context, t *testing.T, e *testenv.Env) {
	src, dst := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	rules := e.Dynamic(t, testenv.Primary).Resource(k8s.ResourceSyncRules)
	go func() {
		for ctx.Err() == nil {
			list, err := rules.List(ctx, metav1.ListOptions{})
			if err == nil {
				for _, r := range list.Items {
					kind, _, _ := unstructuredString(r.Object, "spec", "groupVersionKind", "kind")
					ns := r.GetAnnotations()["orch.io/namespace"]
					if kind != "Deployment" {
						continue
					}
					deps, err := src.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + r.GetLabels()[k8s.LabelBurstApp]})
					if err != nil {
						continue
					}
					for _, d := range deps.Items {
						cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Labels: d.Labels}, Spec: d.Spec}
						cp.Spec.Template.Spec.Volumes = nil
						cp.Spec.Template.Spec.Containers[0].EnvFrom = nil
						_, _ = dst.AppsV1().Deployments(ns).Create(ctx, cp, metav1.CreateOptions{})
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

func TestBurstWithResourceSyncRules(t *testing.T) {
	e := testenv.Get(t)
	peer := e.Clientset(t, testenv.Peer)
	ns := sourceApp(t, e.Clientset(t, testenv.Primary), "details", 1, nil)
	before := peerSnapshot(t, peer, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	registryStandIn(ctx, t, e)
	b := newBurst(t, e, "details", ns)
	b.Replication = "resourcesyncrule"
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	rules := e.Dynamic(t, testenv.Primary).Resource(k8s.ResourceSyncRules)
	list, err := rules.List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelBurstApp + "=details"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, r := range list.Items {
		if r.GetAnnotations()["orch.io/namespace"] == ns {
			k, _, _ := unstructuredString(r.Object, "spec", "groupVersionKind", "kind")
			kinds[k] = true
		}
	}
	if !kinds["Deployment"] || !kinds["ConfigMap"] || !kinds["Secret"] {
		t.Errorf("resource sync rules for kinds %v, want Deployment, ConfigMap, Secret", kinds)
	}
	// orch made no copies of its own: the registry stand-in did.
	deps, _ := peer.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: k8s.LabelManagedBy + "=orch"})
	if len(deps.Items) != 0 {
		t.Errorf("orch copied deployments itself in resourcesyncrule mode")
	}
	cancel() // the registry stops syncing before reconcile
	if err := b.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	list, _ = rules.List(context.Background(), metav1.ListOptions{LabelSelector: k8s.LabelBurstApp + "=details"})
	for _, r := range list.Items {
		if r.GetAnnotations()["orch.io/namespace"] == ns {
			t.Errorf("rule %s left on the source", r.GetName())
		}
	}
	eventually(t, "peer back to its state before the burst", func() (bool, string) {
		now := peerSnapshot(t, peer, ns)
		return now == before, "before:\n" + before + "\nnow:\n" + now
	})
}

// burstWC is the workflow context of a burst run by hand.
type burstWC struct {
	values map[string]cty.Value
	events []string
}

func (w *burstWC) Deployment() string           { return "d" }
func (w *burstWC) Execution() string            { return "x" }
func (w *burstWC) Parameters() map[string]any   { return nil }
func (w *burstWC) Values() map[string]cty.Value { return w.values }
func (w *burstWC) Decode(dst any) error         { return plugins.Decode(w.values, dst) }
func (w *burstWC) DryRun() bool                 { return true }
func (w *burstWC) Nodes() []plugins.NodeInfo    { return nil }
func (w *burstWC) Event(level, msg string)      { w.events = append(w.events, msg) }

// A blueprint's mesh_url gets the Calisti credentials only when its host
// is one the operator configured (ORCH_CALISTI_HOSTS, which orch serve
// sets to its --mesh-url's host): a blueprint cannot send the token to a
// host of its choosing.
func TestABlueprintsMeshURLGetsNoCredentialsUnlessConfigured(t *testing.T) {
	e := testenv.Get(t)
	cluster := func(ctxName string) cty.Value {
		return cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(ctxName), "type": cty.StringVal("kubernetes.cluster"),
			"properties": cty.ObjectVal(map[string]cty.Value{"kubeconfig": cty.StringVal(e.Kubeconfig), "context": cty.StringVal(ctxName)})})
	}
	reg := plugins.NewRegistry()
	if err := reg.Add(k8s.New()); err != nil {
		t.Fatal(err)
	}
	burst, _ := reg.Workflow("kubernetes.burst")
	run := func(meshURL string) error {
		wc := &burstWC{values: map[string]cty.Value{"app": cty.StringVal("nothing"), "namespace": cty.StringVal("nowhere"),
			"from": cluster(testenv.Primary), "to": cluster(testenv.Peer), "mesh_url": cty.StringVal(meshURL)}}
		return burst.Run(context.Background(), wc)
	}
	t.Setenv("ORCH_CALISTI_TOKEN", "t0ken")
	t.Setenv(mesh.HostsEnv, "")
	if err := run("https://evil.example/graphql"); err == nil || !strings.Contains(err.Error(), mesh.HostsEnv) {
		t.Errorf("no allow-list: %v", err)
	}
	t.Setenv(mesh.HostsEnv, "calisti.example")
	if err := run("https://evil.example/graphql"); err == nil || !strings.Contains(err.Error(), "is not among") {
		t.Errorf("a host off the allow-list: %v", err)
	}
	if err := run("https://calisti.example/graphql"); err != nil && strings.Contains(err.Error(), "credentials") {
		t.Errorf("the allowed host: %v", err)
	}
}
