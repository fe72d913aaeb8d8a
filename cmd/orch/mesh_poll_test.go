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
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/mesh/meshtest"
)

// Story 2 with rps polled from Calisti's GraphQL API instead of the broker:
// high rps bursts bookings; while the source fails, its metrics are missing
// and nothing reconciles; low rps then reconciles.
func TestServePollsMeshMetrics(t *testing.T) {
	e := testenv.Get(t)
	primary, peer := e.Clientset(t, testenv.Primary), e.Clientset(t, testenv.Peer)
	ctx := context.Background()
	ns := bookingsApp(t, primary, "meshpoll")
	state := filepath.Join(t.TempDir(), "state.db")
	deployBurstExample(t, e, state, ns)
	calisti := meshtest.New("mesh-token")
	defer calisti.Close()
	calisti.SetMetrics(ns, "bookings", mesh.Metrics{RPS: 100, LatencyP50: 0.02})
	t.Setenv("ORCH_CALISTI_TOKEN", "mesh-token")
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "test")
	serve := startServe(t, state, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue,
		"--mesh-url", calisti.URL, "--mesh-interval", "250ms")
	defer serve.stop(t)

	vs := e.Dynamic(t, testenv.Primary).Resource(k8s.VirtualServices).Namespace(ns)
	split := func() bool {
		_, err := vs.Get(ctx, "orch-burst-bookings", metav1.GetOptions{})
		return err == nil
	}
	testenv.WaitFor(t, "burst from polled rps", 60*time.Second, split)
	if calisti.Rejected() != 0 {
		t.Errorf("%d requests did not validate against the schema", calisti.Rejected())
	}
	queried := false
	for _, r := range calisti.Accepted() {
		queried = queried || r.Field == "service" && r.Variables["namespace"] == ns && r.Variables["name"] == "bookings"
	}
	if !queried {
		t.Errorf("no service metrics query for %s/bookings: %+v", ns, calisti.Accepted())
	}

	// The source fails for longer than the throttle delay and the sample
	// window: missing data, never a zero, so no reconcile.
	calisti.SetFail(true)
	time.Sleep(9 * time.Second)
	if !split() {
		t.Fatal("reconciled while the metric source was failing")
	}
	if !strings.Contains(serve.output(), "metric source failing") {
		t.Errorf("serve did not say the source fails:\n%s", serve.output())
	}

	calisti.SetMetrics(ns, "bookings", mesh.Metrics{RPS: 5})
	calisti.SetFail(false)
	testenv.WaitFor(t, "reconcile from low polled rps", 60*time.Second, func() bool {
		_, err := peer.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return !split() && apierrors.IsNotFound(err)
	})
	if out := serve.output(); strings.Count(out, "bookings_rps: burst fired") != 1 || strings.Count(out, "bookings_rps: reconcile fired") != 1 {
		t.Errorf("want one burst and one reconcile:\n%s", out)
	}
}
