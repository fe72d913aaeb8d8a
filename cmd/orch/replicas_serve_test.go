package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
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
	tokenFile := sharedToken(t, tmp)
	var serves []*serveProc
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "replicas")
	for i := range 3 {
		serves = append(serves, startServe(t, state, "--store", store, "--replica-id", fmt.Sprintf("r%d", i), "--lease-ttl", "2s",
			"--api-token-file", tokenFile, "--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue))
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

// Every replica answers for every deployment: through a replica that does
// not own a deployment, its policies are listed, paused and resumed on
// its owner (the pause shows there), a workflow running on the owner is
// cancelled, and the lists hold every deployment once. While a
// deployment's owner is dead and its lease not yet expired, a request
// about it waits for the next owner instead of failing.
func TestServeReplicasAnswerForDeploymentsOthersOwn(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-forward")
	tmp := t.TempDir()
	state := filepath.Join(tmp, "unused.db")
	tokenFile := sharedToken(t, tmp)
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := string(b)
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "forward")
	serves := map[string]*serveProc{}
	for _, id := range []string{"r0", "r1"} {
		serves[id] = startServe(t, state, "--store", store, "--replica-id", id, "--lease-ttl", "2s", "--api-token-file", tokenFile,
			"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	}
	defer func() {
		for id, sv := range serves {
			if id != "r0" {
				sv.stop(t)
			}
		}
	}()
	const n = 4
	for i := range n {
		if r := orch(t, state, "--store", store, "deploy", "testdata/replicas.hcl", "-d", fmt.Sprintf("d%d", i)); r.code != 0 {
			t.Fatalf("deploy d%d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	// The replicas, their APIs and who owns what.
	type listed struct {
		Replicas []orchestrator.ReplicaStatus `json:"replicas"`
		Unowned  []string                     `json:"unowned"`
	}
	owner, apiOf := map[string]string{}, map[string]string{}
	testenv.WaitFor(t, "every deployment owned, both replicas advertised", 20*time.Second, func() bool {
		var l listed
		r := orch(t, state, "--store", store, "-o", "json", "replicas")
		if json.Unmarshal([]byte(r.stdout), &l) != nil {
			return false
		}
		clear(owner)
		for _, rep := range l.Replicas {
			apiOf[rep.ID] = rep.API
			for _, d := range rep.Deployments {
				owner[d] = rep.ID
			}
		}
		return len(owner) == n && len(l.Unowned) == 0 && apiOf["r0"] != "" && apiOf["r1"] != ""
	})
	other := map[string]string{"r0": "r1", "r1": "r0"}
	via := func(replica string, args ...string) result {
		t.Helper()
		return orchWith(t, []string{"ORCH_API_URL=" + apiOf[replica], "ORCH_API_TOKEN=" + token}, state, args...)
	}
	client := func(replica string) *api.Client { return api.NewClient(apiOf[replica], token) }
	paused := func(replica, dep string) bool {
		t.Helper()
		ps, err := client(replica).Policies(context.Background(), dep)
		if err != nil || len(ps) != 1 || ps[0].Name != "load" {
			t.Fatalf("policies of %s through %s: %v %+v", dep, replica, err, ps)
		}
		return ps[0].Paused != nil
	}
	for i := range n {
		dep := fmt.Sprintf("d%d", i)
		o := owner[dep]
		x := other[o]
		if r := via(x, "policies", "pause", "load", "-d", dep, "--reason", "through "+x); r.code != 0 {
			t.Fatalf("pause %s/load through %s (owner %s): exit %d\n%s%s", dep, x, o, r.code, r.stdout, r.stderr)
		}
		if !paused(o, dep) {
			t.Errorf("%s/load paused through %s is not paused on its owner %s", dep, x, o)
		}
		if r := via(x, "policies", "show", "load", "-d", dep); !strings.Contains(r.stdout, "through "+x) {
			t.Errorf("policies show %s/load through %s lacks the pause's reason:\n%s%s", dep, x, r.stdout, r.stderr)
		}
		if r := via(x, "policies", "resume", "load", "-d", dep); r.code != 0 {
			t.Fatalf("resume %s/load through %s: exit %d\n%s%s", dep, x, r.code, r.stdout, r.stderr)
		}
		if paused(o, dep) {
			t.Errorf("%s/load resumed through %s is still paused on its owner %s", dep, x, o)
		}
	}
	for _, rep := range []string{"r0", "r1"} {
		ps, err := client(rep).Policies(context.Background(), "")
		if err != nil {
			t.Fatalf("all policies through %s: %v", rep, err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Deployment+"/"+p.Name)
		}
		if want := "d0/load d1/load d2/load d3/load"; strings.Join(got, " ") != want {
			t.Errorf("all policies through %s: %v, want %s", rep, got, want)
		}
		deps, err := client(rep).Deployments(context.Background())
		if err != nil || len(deps) != n {
			t.Errorf("deployments through %s: %d, %v", rep, len(deps), err)
		}
	}
	// No such deployment: answered at once, not waited for.
	if _, err := client("r0").SetPause(context.Background(), "nope", "load", &policies.Pause{}); err == nil || !strings.Contains(err.Error(), "nope has no policies") {
		t.Errorf("pausing a policy of no deployment: %v", err)
	}
	if _, err := client("r0").Deployment(context.Background(), "nope"); !errors.Is(err, orchestrator.ErrNotFound) {
		t.Errorf("a deployment that does not exist: %v, want not found", err)
	}

	// A workflow running on d0's owner, cancelled through the other.
	o := owner["d0"]
	x, err := client(o).Submit(context.Background(), workflows.Request{Deployment: "d0", Workflow: "hold"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the hold workflow started", 20*time.Second, func() bool {
		got, err := client(o).Execution(context.Background(), x.ID)
		return err == nil && got.Status == workflows.Started
	})
	if r := via(other[o], "executions", "cancel", x.ID); r.code != 0 {
		t.Fatalf("cancel %s (running on %s) through %s: exit %d\n%s%s", x.ID, o, other[o], r.code, r.stdout, r.stderr)
	}
	testenv.WaitFor(t, "the cancelled workflow ended", 20*time.Second, func() bool {
		got, err := client(other[o]).Execution(context.Background(), x.ID)
		return err == nil && got.Status == workflows.Cancelled
	})

	// r0 dies: a pause of one of its deployments through r1 waits for r1
	// to take it up.
	var ofR0 string
	for d, rep := range owner {
		if rep == "r0" {
			ofR0 = d
		}
	}
	if ofR0 == "" {
		t.Fatalf("r0 owns none of %v", owner)
	}
	_ = serves["r0"].cmd.Process.Signal(syscall.SIGKILL)
	_ = serves["r0"].cmd.Wait()
	if r := via("r1", "policies", "pause", "load", "-d", ofR0); r.code != 0 {
		t.Fatalf("pause %s/load through r1 while its owner r0 is dead: exit %d\n%s%s", ofR0, r.code, r.stdout, r.stderr)
	}
	if !paused("r1", ofR0) {
		t.Errorf("%s/load paused during the failover is not paused on r1", ofR0)
	}
}

// sharedToken writes a new API token to a file in dir, for every replica's
// --api-token-file.
func sharedToken(t *testing.T, dir string) string {
	t.Helper()
	token, err := api.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// A CLI on a store that replicas share queues what it runs for them; when
// the last replica dies meanwhile, it stops waiting and says so (the
// execution waits, pending, for the next owner) instead of waiting forever.
func TestTheCLIStopsWaitingWhenNoReplicaIsLeft(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-noreplica")
	tmp := t.TempDir()
	state := filepath.Join(tmp, "unused.db")
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "noreplica")
	sv := startServe(t, state, "--store", store, "--replica-id", "only", "--lease-ttl", "2s",
		"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	if r := orch(t, state, "--store", store, "deploy", "testdata/replicas.hcl", "-d", "lone"); r.code != 0 {
		sv.stop(t)
		t.Fatalf("deploy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	_ = sv.cmd.Process.Signal(syscall.SIGKILL)
	_ = sv.cmd.Wait()
	// Its registration lingers until its lease expires: the CLI queues the
	// workflow for it, then finds nobody left.
	r := orch(t, state, "--store", store, "workflow", "run", "hold", "-d", "lone")
	if r.code == 0 || !strings.Contains(r.stderr, "no replica of orch serve is left to run it") || !strings.Contains(r.stderr, "waits, pending") {
		t.Fatalf("workflow run with no replica left: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	admin, err := orchestrator.OpenEtcd(store, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	xs, err := admin.Executions(context.Background(), "lone")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range xs {
		got = append(got, x.Workflow+" "+string(x.Status))
	}
	if !slices.Contains(got, "hold pending") {
		t.Errorf("the workflow is not left pending: %v", got)
	}
}

// The owner of a deployment killed in the middle of its undeploy: the
// next owner resumes the uninstall, deletes the deployment once it
// succeeded, and deletes its metric queue.
func TestAnUndeployWhoseOwnerDiesIsFinishedByTheNext(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-undeploy")
	tmp := t.TempDir()
	state := filepath.Join(tmp, "unused.db")
	journal := filepath.Join(tmp, "journal")
	tokenFile := sharedToken(t, tmp)
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "undeploy")
	serves := map[string]*serveProc{}
	for _, id := range []string{"r0", "r1"} {
		serves[id] = startServe(t, state, "--store", store, "--replica-id", id, "--lease-ttl", "2s", "--api-token-file", tokenFile,
			"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue)
	}
	defer func() {
		for _, sv := range serves {
			_ = sv.cmd.Process.Kill()
			_ = sv.cmd.Wait()
		}
	}()
	if r := orch(t, state, "--store", store, "deploy", "testdata/undeploy.hcl", "-d", "u", "-i", "journal="+journal); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	admin, err := orchestrator.OpenEtcd(store, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	owner := func() string {
		owners, _ := replicaOwners(t, admin)
		return owners["u"]
	}
	testenv.WaitFor(t, "u owned and installed", 20*time.Second, func() bool {
		xs, err := admin.Executions(context.Background(), "u")
		return owner() != "" && err == nil && len(xs) == 1 && xs[0].Status == workflows.Succeeded
	})
	first := owner()
	hold := journal + ".hold"
	if err := os.WriteFile(hold, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ep, err := api.ReadEndpoint(api.EndpointPath(store))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.NewClient(ep.URL, ep.Token).StartUndeploy(context.Background(), "u"); err != nil {
		t.Fatalf("undeploy: %v", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(journal); strings.Contains(string(b), "ran ") {
			break
		}
		if time.Now().After(deadline) {
			xs, _ := admin.Executions(context.Background(), "u")
			for _, x := range xs {
				t.Logf("%s %s %s", x.Workflow, x.Status, x.Error)
				evs, _ := admin.Events(context.Background(), x.ID, 0)
				for _, ev := range evs {
					t.Logf("  %s %s %s", ev.Type, ev.Instance, ev.Message)
				}
			}
			t.Fatalf("the delete did not run:\n%s\n%s", serves["r0"].output(), serves["r1"].output())
		}
	}
	_ = serves[first].cmd.Process.Signal(syscall.SIGKILL)
	_ = serves[first].cmd.Wait()
	delete(serves, first)
	testenv.WaitFor(t, "u owned by the other replica", 20*time.Second, func() bool { o := owner(); return o != "" && o != first })
	if err := os.Remove(hold); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "u deleted by its next owner", 30*time.Second, func() bool {
		_, err := admin.Deployment(context.Background(), "u")
		return errors.Is(err, orchestrator.ErrNotFound)
	})
	testenv.WaitFor(t, "u's metric queue deleted", 20*time.Second, func() bool {
		conn, err := amqp.Dial(e.AMQPURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(policies.DeploymentQueue(queue, "u"), true, false, false, false, nil)
		return err != nil // NOT_FOUND closes the channel
	})
}

// Replicas serving their API over TLS forward to each other over TLS,
// trusting their certificate; an advertised URL in clear text is refused.
func TestServeReplicasForwardOverTLS(t *testing.T) {
	e := testenv.Get(t)
	store := e.EtcdStore(t, "orch-forward-tls")
	tmp := t.TempDir()
	state := filepath.Join(tmp, "unused.db")
	tokenFile := sharedToken(t, tmp)
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := selfSigned(t, tmp)
	exchange, queue := testenv.AMQPNames(t, e.AMQPURL, "forwardtls")
	args := []string{"--store", store, "--lease-ttl", "2s", "--api-token-file", tokenFile, "--tls-cert", cert, "--tls-key", key,
		"--amqp-url", e.AMQPURL, "--exchange", exchange, "--queue", queue}
	if r := orch(t, state, append([]string{"serve", "--api-addr", "127.0.0.1:0", "--replica-id", "clear", "--advertise-url", "http://127.0.0.1:1"}, args...)...); r.code == 0 ||
		!strings.Contains(r.stderr, "served over TLS: want https://") {
		t.Errorf("a replica over TLS advertising http://: exit %d\n%s", r.code, r.stderr)
	}
	for _, id := range []string{"r0", "r1"} {
		sv := startServe(t, state, append([]string{"--replica-id", id}, args...)...)
		defer sv.stop(t)
	}
	const n = 4
	for i := range n {
		if r := orch(t, state, "--store", store, "deploy", "testdata/replicas.hcl", "-d", fmt.Sprintf("t%d", i)); r.code != 0 {
			t.Fatalf("deploy t%d: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
	}
	admin, err := orchestrator.OpenEtcd(store, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var owner, apiOf map[string]string
	testenv.WaitFor(t, "every deployment owned, both replicas advertised", 20*time.Second, func() bool {
		owner, apiOf = replicaOwners(t, admin)
		return len(owner) == n && strings.HasPrefix(apiOf["r0"], "https://") && strings.HasPrefix(apiOf["r1"], "https://")
	})
	other := map[string]string{"r0": "r1", "r1": "r0"}
	for dep, o := range owner {
		x := other[o]
		r := orchWith(t, []string{"ORCH_API_URL=" + apiOf[x], "ORCH_API_TOKEN=" + string(b), "ORCH_API_CA=" + cert}, state,
			"policies", "pause", "load", "-d", dep, "--reason", "over TLS")
		if r.code != 0 {
			t.Errorf("pause %s/load through %s (owner %s) over TLS: exit %d\n%s%s", dep, x, o, r.code, r.stdout, r.stderr)
		}
	}
	ps, err := func() ([]policies.PolicyStatus, error) {
		c := api.NewClient(apiOf["r0"], string(b))
		if err := c.WithCA(cert); err != nil {
			return nil, err
		}
		return c.Policies(context.Background(), "")
	}()
	if err != nil || len(ps) != n {
		t.Fatalf("all policies through r0 over TLS: %d, %v", len(ps), err)
	}
	for _, p := range ps {
		if p.Paused == nil || p.Paused.Reason != "over TLS" {
			t.Errorf("%s/%s not paused through the other replica: %+v", p.Deployment, p.Name, p.Paused)
		}
	}
}
