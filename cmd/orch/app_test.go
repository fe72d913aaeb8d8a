package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/orchhq/orch/internal/testenv"
)

const appBlueprint = `
input "kubeconfig" {}
input "namespace" {}

node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}

node "reviews" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties = {
    namespace = input.namespace
    app       = "reviews"
    manifests = [
      {
        apiVersion = "apps/v1"
        kind       = "Deployment"
        metadata   = { name = "reviews", labels = { app = "reviews" } }
        spec = {
          replicas = 2
          selector = { matchLabels = { app = "reviews" } }
          template = {
            metadata = { labels = { app = "reviews" } }
            spec     = { containers = [{ name = "app", image = "registry.local/reviews:1" }] }
          }
        }
      },
      {
        apiVersion = "v1"
        kind       = "Service"
        metadata   = { name = "reviews", labels = { app = "reviews" } }
        spec       = { selector = { app = "reviews" }, ports = [{ port = 9080 }] }
      },
    ]
  }
}
`

// kubernetes.app with manifests: install creates the app (and its
// namespace), uninstall deletes exactly that.
func TestAppFromManifests(t *testing.T) {
	e := testenv.Get(t)
	cs := e.Clientset(t, testenv.Primary)
	ctx := context.Background()
	ns := "app-" + rand.String(6)
	dir := t.TempDir()
	bp := filepath.Join(dir, "app.hcl")
	if err := os.WriteFile(bp, []byte(appBlueprint), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state.db")
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if r := orch(t, state, "deploy", bp, "-d", "reviews", "-i", "kubeconfig="+e.Kubeconfig, "-i", "namespace="+ns); r.code != 0 {
		t.Fatalf("deploy: %s%s", r.stdout, r.stderr)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil || *d.Spec.Replicas != 2 || d.Labels["app.kubernetes.io/managed-by"] != "orch" {
		t.Fatalf("deployment: %v %v", d, err)
	}
	if _, err := cs.CoreV1().Services(ns).Get(ctx, "reviews", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// Install again converges (server-side apply), nothing duplicated.
	if r := orch(t, state, "workflow", "run", "install", "-d", "reviews"); r.code != 0 {
		t.Fatalf("install again: %s%s", r.stdout, r.stderr)
	}
	if r := orch(t, state, "undeploy", "reviews"); r.code != 0 {
		t.Fatalf("undeploy: %s%s", r.stdout, r.stderr)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("namespace %s still there after undeploy", ns)
	}
}

func TestAdoptingAMissingAppFailsClearly(t *testing.T) {
	e := testenv.Get(t)
	dir := t.TempDir()
	bp := filepath.Join(dir, "adopt.hcl")
	// Without manifests the app is adopted: it must exist.
	src := `
input "kubeconfig" {}
node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}
node "ghost" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = "default", app = "ghost-app" }
}
`
	if err := os.WriteFile(bp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := orch(t, filepath.Join(dir, "state.db"), "deploy", bp, "-i", "kubeconfig="+e.Kubeconfig)
	if r.code == 0 || !strings.Contains(r.stdout, "no deployment labelled app=ghost-app") {
		t.Errorf("exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
