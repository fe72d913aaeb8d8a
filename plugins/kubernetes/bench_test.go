package kubernetes_test

import (
	"context"
	"os/exec"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/orchhq/orch/internal/testenv"
	k8s "github.com/orchhq/orch/plugins/kubernetes"
)

// The kube_scale benchmarks run against the real primary cluster. Compare
// each with its baseline in the same run (target: at most 1.2x).
//
//	go test ./plugins/kubernetes -run XXX -bench Scale

// BenchmarkScaleClientGoBare: a bare client-go scale (get + update of the
// scale subresource), the baseline.
func BenchmarkScaleClientGoBare(b *testing.B) {
	e := testenv.Get(b)
	ns := fixture(b, e, "bench")
	cs := e.Clientset(b, testenv.Primary)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		// The controller updates the object too: a correct bare client
		// retries on conflict, as every client must.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			sc, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "bench", metav1.GetOptions{})
			if err != nil {
				return err
			}
			sc.Spec.Replicas = int32(1 + i%2)
			_, err = cs.AppsV1().Deployments(ns).UpdateScale(ctx, "bench", sc, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScaleClientGo: orch's kube_scale through client-go.
func BenchmarkScaleClientGo(b *testing.B) {
	e := testenv.Get(b)
	ns := fixture(b, e, "bench")
	s := k8s.ClientScaler{Client: e.Clientset(b, testenv.Primary)}
	benchScaler(b, s, ns)
}

func benchScaler(b *testing.B, s k8s.Scaler, ns string) {
	ctx := context.Background()
	up, _ := k8s.ParseAmount("+1")
	down, _ := k8s.ParseAmount("-1")
	for i := 0; b.Loop(); i++ {
		a := up
		if i%2 == 1 {
			a = down
		}
		if _, _, err := s.Scale(ctx, ns, "bench", a, k8s.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScaleSSHBare: `ssh host kubectl scale`, a new ssh process and
// connection each time, the way the original kube_scale did it: the baseline.
func BenchmarkScaleSSHBare(b *testing.B) {
	e := testenv.Get(b)
	ns := fixture(b, e, "bench")
	for i := 0; b.Loop(); i++ {
		out, err := exec.Command("ssh", "-i", e.SSH.KeyFile, "-o", "UserKnownHostsFile="+e.SSH.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", strconv.Itoa(e.SSH.Port),
			e.SSH.User+"@"+e.SSH.Host, "kubectl", "scale", "deployment/bench", "--namespace", ns,
			"--replicas="+strconv.Itoa(1+i%2)).CombinedOutput()
		if err != nil {
			b.Fatalf("%v: %s", err, out)
		}
	}
}

// BenchmarkScaleSSH: orch's kube_scale over ssh: a kept-open connection, a
// session per command, a get and a scale with a resourceVersion precondition.
func BenchmarkScaleSSH(b *testing.B) {
	e := testenv.Get(b)
	ns := fixture(b, e, "bench")
	runner := k8s.NewSSH(sshTarget(e))
	defer runner.Close()
	benchScaler(b, k8s.KubectlScaler{Runner: runner}, ns)
}

// BenchmarkBurst1 and BenchmarkBurst20: burst one app's Deployment, or 20
// Deployments of an app, into the peer and wait until every pod runs
// (target: 20 at most 3x one, i.e. in parallel). Reconcile between rounds
// is not timed.
func BenchmarkBurst1(b *testing.B)  { benchBurst(b, 1) }
func BenchmarkBurst20(b *testing.B) { benchBurst(b, 20) }

func benchBurst(b *testing.B, n int) {
	e := testenv.Get(b)
	ns := sourceApp(b, e.Clientset(b, testenv.Primary), "load", n, nil)
	burst := newBurst(b, e, "load", ns)
	burst.Log = nil
	peer := e.Clientset(b, testenv.Peer)
	ctx := context.Background()
	// The namespace exists in the peer beforehand, so reconcile keeps it
	// and rounds do not wait for a namespace to terminate.
	if _, err := peer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = peer.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := burst.Run(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := burst.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
		// Wait for the copies' pods to go before the next round.
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := peer.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=load"})
			return err == nil && len(pods.Items) == 0, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkBareCreate1 and BenchmarkBareCreate20 are the baseline of the
// burst benchmarks: plain client-go creating the same Deployments in
// parallel in the peer and waiting (polling) until their pods run.
func BenchmarkBareCreate1(b *testing.B)  { benchBareCreate(b, 1) }
func BenchmarkBareCreate20(b *testing.B) { benchBareCreate(b, 20) }

func benchBareCreate(b *testing.B, n int) {
	e := testenv.Get(b)
	primary, peer := e.Clientset(b, testenv.Primary), e.Clientset(b, testenv.Peer)
	ns := sourceApp(b, primary, "bare", n, nil)
	ctx := context.Background()
	if _, err := peer.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = peer.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	src, err := primary.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bare"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		errs := make(chan error, len(src.Items))
		for _, d := range src.Items {
			go func(d appsv1.Deployment) {
				cp := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Labels: d.Labels}, Spec: d.Spec}
				cp.Spec.Template.Spec.Volumes = nil
				cp.Spec.Template.Spec.Containers[0].EnvFrom = nil
				_, err := peer.AppsV1().Deployments(ns).Create(ctx, cp, metav1.CreateOptions{})
				errs <- err
			}(d)
		}
		for range src.Items {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := peer.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bare", FieldSelector: "status.phase=Running"})
			return err == nil && len(pods.Items) == 2*n, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := peer.AppsV1().Deployments(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=bare"}); err != nil {
			b.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := peer.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=bare"})
			return err == nil && len(pods.Items) == 0, nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
