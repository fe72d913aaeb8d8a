package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
)

// Three replicas of orch serve on the test environment's etcd: deployments
// made through the CLI are installed by their owner and owned by exactly
// one replica; a replica killed with SIGKILL loses its deployments to the
// others within its lease, and a workflow of one of them then runs on its
// new owner.
func TestServeReplicasShareDeploymentsAndFailOver(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-serve")
	tmp := t.TempDir()
	state := filepath.Join(tmp, "unused.db")
	cli := func(args ...string) result {
		t.Helper()
		return orch(t, state, append([]string{"--store", store}, args...)...)
	}
	var serves []*serveProc
	for i := range 3 {
		exchange, queue := testenv.AMQPNames(t, e.AMQPURL, fmt.Sprintf("replica%d", i))
		serves = append(serves, startServe(t, state, "--store", store, "--replica-id", fmt.Sprintf("r%d", i), "--lease-ttl", "2s",
			"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue))
	}
	defer func() {
		for _, sv := range serves[1:] {
			sv.stop(t)
		}
	}()
	const n = 6
	for i := range n {
		if r := cli("deploy", "../../examples/files/blueprint.hcl", "-d", fmt.Sprintf("f%d", i), "-i", "dir="+filepath.Join(tmp, fmt.Sprint(i)),
			"-i", "journal="+filepath.Join(tmp, fmt.Sprintf("journal%d", i))); r.code != 0 {
			t.Fatalf("deploy f%d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	type listed struct {
		Replicas []orchestrator.ReplicaStatus `json:"replicas"`
		Unowned  []string                     `json:"unowned"`
	}
	ownership := func() (map[string]string, listed) {
		var l listed
		r := cli("-o", "json", "replicas")
		if err := json.Unmarshal([]byte(r.stdout), &l); err != nil {
			t.Fatalf("replicas: %v\n%s%s", err, r.stdout, r.stderr)
		}
		owner := map[string]string{}
		for _, rep := range l.Replicas {
			for _, d := range rep.Deployments {
				owner[d] = rep.ID
			}
		}
		return owner, l
	}
	testenv.WaitFor(t, "every deployment owned by one replica", 20*time.Second, func() bool {
		owner, l := ownership()
		return len(owner) == n && len(l.Unowned) == 0 && len(l.Replicas) == 3
	})
	owner, _ := ownership()
	var lost []string
	for d, r := range owner {
		if r == "r0" {
			lost = append(lost, d)
		}
	}
	for i := range n {
		x := lastExecutionOf(t, cli, fmt.Sprintf("f%d", i))
		if x != "succeeded" {
			t.Errorf("install of f%d: %s", i, x)
		}
	}

	killed := time.Now()
	_ = serves[0].cmd.Process.Signal(syscall.SIGKILL)
	_ = serves[0].cmd.Wait()
	testenv.WaitFor(t, "r0's deployments owned again", 15*time.Second, func() bool {
		owner, l := ownership()
		if len(owner) != n || len(l.Replicas) != 2 {
			return false
		}
		for _, d := range lost {
			if owner[d] == "r0" || owner[d] == "" {
				return false
			}
		}
		return true
	})
	t.Logf("%d deployments owned again %s after the kill (lease TTL 2s)", len(lost), time.Since(killed).Round(10*time.Millisecond))
	moved := "f0"
	if len(lost) > 0 {
		moved = lost[0]
	}
	if r := cli("workflow", "run", "stop", "-d", moved); r.code != 0 || !strings.Contains(r.stdout, "stop succeeded") {
		t.Errorf("stop on %s after the failover: exit %d\n%s%s", moved, r.code, r.stdout, r.stderr)
	}
	// A live replica's /metrics (the one whose endpoint file the CLI found).
	ep, err := api.ReadEndpoint(api.EndpointPath(store))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ep.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+ep.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"orch_replicas_live 2", "orch_replica_deployments_owned", "orch_replica_ownership_claims_total", "orch_replica_fenced_writes_total 0", "orch_replica_lease_renewal_seconds"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// lastExecutionOf is the status of a deployment's newest execution, once
// it ended (waiting up to 20s).
func lastExecutionOf(t *testing.T, cli func(args ...string) result, dep string) string {
	t.Helper()
	status := ""
	testenv.WaitFor(t, dep+"'s execution ends", 20*time.Second, func() bool {
		r := cli("-o", "json", "executions", "list", "-d", dep)
		var xs []struct {
			Status string `json:"status"`
		}
		if json.Unmarshal([]byte(r.stdout), &xs) != nil || len(xs) == 0 {
			return false
		}
		status = xs[len(xs)-1].Status
		return status == "succeeded" || status == "failed" || status == "cancelled"
	})
	return status
}
