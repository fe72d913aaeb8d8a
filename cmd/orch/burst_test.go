package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/orchhq/orch/internal/testenv"
)

// Story 2 through orch: the burst example deployed, burst and reconcile
// run as workflows between the two real clusters.
func TestBurstExampleOnTheClusters(t *testing.T) {
	e := testenv.Get(t)
	primary, peer := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	ctx := context.Background()
	ns := bookingsApp(t, primary, "story2")
	state := filepath.Join(t.TempDir(), "state.db")
	if r := orch(t, state, "deploy", "../../examples/burst/blueprint.hcl", "-d", "bookings", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	r := orch(t, state, "workflow", "run", "burst", "-d", "bookings", "-p", "weight=40")
	if r.code != 0 {
		t.Fatalf("burst: %s%s", r.stdout, r.stderr)
	}
	for _, want := range []string{"burst triggered for app=bookings", "Waiting for 2 pods to be running", "traffic split for bookings: 60% to bookings, 40% to bookings-repl"} {
		if !strings.Contains(strings.ToLower(r.stdout), strings.ToLower(want)) {
			t.Errorf("burst output lacks %q:\n%s", want, r.stdout)
		}
	}
	pods, err := peer.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bookings", FieldSelector: "status.phase=Running"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("running copies in the peer: %d, %v", len(pods.Items), err)
	}
	if r := orch(t, state, "workflow", "run", "reconcile", "-d", "bookings"); r.code != 0 {
		t.Fatalf("reconcile: %s%s", r.stdout, r.stderr)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := peer.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the namespace burst created in the peer is still there after reconcile")
	}
	if r := orch(t, state, "undeploy", "bookings"); r.code != 0 {
		t.Errorf("undeploy: %s%s", r.stdout, r.stderr)
	}
}

// bookingsApp creates, in a new namespace of cs, the bookings app of story 2:
// a 2-replica Deployment and its Service on port 8080.
func bookingsApp(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns := testenv.Namespace(t, cs, prefix)
	testenv.CreateDeployment(t, cs, ns, "bookings", 2)
	labels := map[string]string{"app": "bookings"}
	if _, err := cs.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "bookings", Labels: labels},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 8080, TargetPort: intstr.FromInt32(8080)}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}
