package mesh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/plugins/mesh/meshtest"
)

// The seed's mutation, exactly as written there.
const seedMutation = `mutation {
  applyHTTPRoute(input: { selector: { namespace: "smm-demo", hosts: ["bookings"] },
  rule: { route: [ { destination: { host: "bookings", port: { number: 8080 } }, weight: 75 },
  { destination: { host: "bookings-repl", port: { number: 8080 } }, weight: 25 } ] } })
}`

func post(t *testing.T, url, token, query string) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSchemaAcceptsTheSeedMutationAndRejectsMalformedOnes(t *testing.T) {
	s := meshtest.New("tok")
	defer s.Close()
	if out := post(t, s.URL, "tok", seedMutation); out["errors"] != nil {
		t.Fatalf("the seed's mutation does not validate: %v", out["errors"])
	}
	bad := map[string]string{
		"text weight":      strings.Replace(seedMutation, "weight: 75", `weight: "high"`, 1),
		"unknown field":    strings.Replace(seedMutation, "weight: 75", "wieght: 75", 1),
		"missing host":     strings.Replace(seedMutation, `host: "bookings", `, "", 1),
		"unknown mutation": strings.Replace(seedMutation, "applyHTTPRoute", "applyRoute", 1),
	}
	for name, q := range bad {
		if out := post(t, s.URL, "tok", q); out["errors"] == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if s.Rejected() != len(bad) || len(s.Accepted()) != 1 {
		t.Errorf("accepted %d, rejected %d", len(s.Accepted()), s.Rejected())
	}
}

func TestSplitTrafficCarriesTheWeights(t *testing.T) {
	s := meshtest.New("s3cret-token")
	defer s.Close()
	c := mustNew(t, s.URL, mesh.Auth{Token: "s3cret-token"})
	ctx := context.Background()
	for _, w := range []int{25, 40} {
		if err := c.SplitTraffic(ctx, "smm-demo", "bookings", "bookings-repl", 8080, w); err != nil {
			t.Fatal(err)
		}
		got := s.Accepted()
		req := got[len(got)-1]
		if req.Field != "applyHTTPRoute" {
			t.Fatalf("field %s", req.Field)
		}
		in := req.Variables["input"].(map[string]any)
		route := in["rule"].(map[string]any)["route"].([]any)
		desc := func(i int) string {
			r := route[i].(map[string]any)
			d := r["destination"].(map[string]any)
			return fmt.Sprintf("%v:%v@%v", d["host"], d["port"].(map[string]any)["number"], r["weight"])
		}
		want := fmt.Sprintf("bookings:8080@%d bookings-repl:8080@%d", 100-w, w)
		if got := desc(0) + " " + desc(1); got != want {
			t.Errorf("routes = %s, want %s", got, want)
		}
		if hosts := in["selector"].(map[string]any)["hosts"].([]any); len(hosts) != 1 || hosts[0] != "bookings" {
			t.Errorf("selector hosts = %v", hosts)
		}
	}
	if err := c.RemoveSplit(ctx, "smm-demo", "bookings"); err != nil {
		t.Fatal(err)
	}
	if err := c.SplitTraffic(ctx, "smm-demo", "bookings", "bookings-repl", 8080, 120); err == nil {
		t.Error("weight 120 accepted")
	}
}

func TestAuthIsRequiredAndNeverShown(t *testing.T) {
	s := meshtest.New("right-token")
	defer s.Close()
	err := mustNew(t, s.URL, mesh.Auth{Token: "wrong-token"}).SplitTraffic(context.Background(), "ns", "a", "a-repl", 80, 10)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-token") {
		t.Errorf("the token leaked into an error: %v", err)
	}
	if got := fmt.Sprint(mesh.Auth{Token: "right-token"}); strings.Contains(got, "right-token") {
		t.Errorf("Auth prints its token: %s", got)
	}
	t.Setenv("ORCH_CALISTI_TOKEN", "from-env")
	if a, err := mesh.AuthFromEnv(); err != nil || a.Token != "from-env" {
		t.Errorf("AuthFromEnv = %v, %v", a, err)
	}
}

func TestServiceMetrics(t *testing.T) {
	s := meshtest.New("")
	defer s.Close()
	s.Metrics["smm-demo/bookings"] = mesh.Metrics{RPS: 104.5, LatencyP50: 0.012}
	c := mustNew(t, s.URL, mesh.Auth{})
	ctx := context.Background()
	m, err := c.ServiceMetrics(ctx, "smm-demo", "bookings", 5)
	if err != nil || m.RPS != 104.5 || m.LatencyP50 != 0.012 {
		t.Errorf("metrics = %+v, %v", m, err)
	}
	if _, err := c.ServiceMetrics(ctx, "smm-demo", "nothing", 5); !errors.Is(err, mesh.ErrNoMetrics) {
		t.Errorf("a service without metrics: %v (must be an error, never a zero)", err)
	}
	s.Fail = true
	if _, err := c.ServiceMetrics(ctx, "smm-demo", "bookings", 5); err == nil {
		t.Error("a failing server gave no error")
	}
}

func mustNew(t *testing.T, url string, auth mesh.Auth) *mesh.Client {
	t.Helper()
	c, err := mesh.New(url, auth)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The Calisti credentials go to the configured endpoint only: over https
// (or http to loopback), never to the host a redirect names.
func TestCredentialsGoOnlyToTheEndpoint(t *testing.T) {
	for _, bad := range []string{"http://calisti.example/api/graphql", "ftp://x/y", "not a url"} {
		if _, err := mesh.New(bad, mesh.Auth{Token: "t0ken"}); err == nil {
			t.Errorf("%s accepted with credentials", bad)
		}
	}
	if _, err := mesh.New("http://calisti.example/api/graphql", mesh.Auth{}); err != nil {
		t.Errorf("plain http without credentials: %v", err)
	}
	// A second server on another port (another host:port) sees what a
	// redirect would send it.
	var leaked atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") + r.Header.Get("Cookie"))
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	c := mustNew(t, redirecting.URL, mesh.Auth{Token: "t0ken", Cookie: "session=abc"})
	_, err := c.ServiceMetrics(context.Background(), "ns", "svc", 5)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a redirect to another host: %v", err)
	}
	if v, _ := leaked.Load().(string); v != "" {
		t.Errorf("the other host got the credentials: %q", v)
	}
}

// With an allow-list (ORCH_CALISTI_HOSTS), the credentials go to the
// hosts on it only.
func TestCredentialsGoOnlyToAllowedHosts(t *testing.T) {
	auth := mesh.Auth{Token: "t0ken", Hosts: []string{"calisti.example", "127.0.0.1:9000"}}
	for endpoint, ok := range map[string]bool{
		"https://calisti.example/api/graphql":  true,
		"https://evil.example/api/graphql":     false,
		"http://127.0.0.1:9000/api/graphql":    true,
		"http://127.0.0.1:9001/api/graphql":    false,
		"https://calisti.example:8443/graphql": true,
	} {
		_, err := mesh.New(endpoint, auth)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed %v", endpoint, err, ok)
		}
	}
	t.Setenv("ORCH_CALISTI_TOKEN", "t0ken")
	t.Setenv(mesh.HostsEnv, " a.example, b.example:8443 ")
	if a, err := mesh.AuthFromEnv(); err != nil || strings.Join(a.Hosts, ",") != "a.example,b.example:8443" {
		t.Errorf("AuthFromEnv hosts %v, %v", a.Hosts, err)
	}
}
