package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
)

// orch on the test environment's etcd (--store etcd://...): deploy, a
// workflow through a running serve's API (found by the store's endpoint
// file), undeploy; nothing written to a state file.
func TestTheFilesExampleOnEtcd(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-cli")
	s, err := orchestrator.OpenEtcd(store, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	tmp := t.TempDir()
	state, dir := filepath.Join(tmp, "unused.db"), filepath.Join(tmp, "files")
	run := func(args ...string) result {
		t.Helper()
		r := orch(t, state, append([]string{"--store", store}, args...)...)
		if r.code != 0 {
			t.Fatalf("orch %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r
	}
	run("deploy", "../../examples/files/blueprint.hcl", "-d", "files", "-i", "dir="+dir, "-i", "journal="+filepath.Join(tmp, "journal"))
	if _, err := os.Stat(filepath.Join(dir, "app.conf")); err != nil {
		t.Fatalf("install did not run: %v", err)
	}
	if d, err := s.Deployment(context.Background(), "files"); err != nil || len(d.Instances) == 0 {
		t.Fatalf("the deployment in etcd: %v %v", d, err)
	}

	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "etcdstore")
	serve := startServe(t, state, "--store", store, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	if _, err := os.Stat(api.EndpointPath(store)); err != nil {
		t.Errorf("serve on etcd wrote no endpoint file: %v", err)
	}
	if r := run("workflow", "run", "stop", "-d", "files"); !strings.Contains(r.stdout, "stop succeeded") {
		t.Errorf("stop through serve: %s", r.stdout)
	}
	if r := run("executions", "list", "-d", "files"); strings.Count(r.stdout, "succeeded") != 2 {
		t.Errorf("executions in etcd:\n%s", r.stdout)
	}
	serve.stop(t)

	run("undeploy", "files")
	if _, err := os.Stat(filepath.Join(dir, "app.conf")); !os.IsNotExist(err) {
		t.Errorf("uninstall did not run: %v", err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("a state file was written: %v", err)
	}
}
