package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/orchhq/orch/internal/testenv"
	k8s "github.com/orchhq/orch/plugins/kubernetes"
)

// Story 2 end to end: rps above burst_value for the throttle delay bursts
// bookings into the peer with a traffic split; rps below reconcile_value
// for the delay reconciles it.
func TestStory2ServeBurstsAndReconcilesFromRPS(t *testing.T) {
	e := testenv.Get(t)
	primary, peer := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	ctx := context.Background()
	ns := bookingsApp(t, primary, "story2serve")
	state := filepath.Join(t.TempDir(), "state.db")
	deployBurstExample(t, e, state, ns)
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	defer serve.stop(t)
	// Policies are evaluated as metrics arrive: each phase publishes long
	// enough for the 5s sample window to cross and then hold for the delay.
	rps := func(value, duration string) {
		t.Helper()
		r := orch(t, state+".unused", "metrics", "publish", "--url", e.AMQPURL, "--exchange", exchange, "-d", "bookings",
			"--node", "bookings", "--host", "10.0.0.9", "--name", "rps", "--value", value, "--rate", "4", "--for", duration)
		if r.code != 0 {
			t.Fatalf("publish: %s%s", r.stdout, r.stderr)
		}
	}
	vs := e.Dynamic(t, testenv.Primary).Resource(k8s.VirtualServices).Namespace(ns)

	rps("100", "8s") // above 40 for longer than the 3s delay and the 5s start-up grace
	testenv.WaitFor(t, "burst into the peer", 60*time.Second, func() bool {
		_, err := vs.Get(ctx, "orch-burst-bookings", metav1.GetOptions{})
		return err == nil
	})
	pods, err := peer.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bookings", FieldSelector: "status.phase=Running"})
	if err != nil || len(pods.Items) != 2 {
		t.Fatalf("running copies in the peer: %d, %v", len(pods.Items), err)
	}
	rps("5", "10s") // below 20 (once the window has dropped) for longer than the delay
	testenv.WaitFor(t, "reconcile", 60*time.Second, func() bool {
		_, err := peer.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		_, vsErr := vs.Get(ctx, "orch-burst-bookings", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && apierrors.IsNotFound(vsErr)
	})
	out := serve.output()
	if strings.Count(out, "bookings_rps: burst fired") != 1 || strings.Count(out, "bookings_rps: reconcile fired") != 1 {
		t.Errorf("want one burst and one reconcile:\n%s", out)
	}
}

// deployBurstExample deploys examples/burst as "bookings" for the app in ns,
// with a 3s throttle delay.
func deployBurstExample(t *testing.T, e *testenv.Env, state, ns string) {
	t.Helper()
	if r := orch(t, state, "deploy", "../../examples/burst/blueprint.hcl", "-d", "bookings",
		"-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns, "-i", "throttle_delay=3s"); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
}
