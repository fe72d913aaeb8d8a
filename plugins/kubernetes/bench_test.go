package kubernetes_test

import (
	"context"
	"os/exec"
	"strconv"
	"testing"

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
