package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
)

// fakeReplicas stands for this serve's membership: it serves what serves
// says; Owner answers owners in turn (the last one from then on).
type fakeReplicas struct {
	mu     sync.Mutex
	serves map[string]bool
	owners []orchestrator.ReplicaInfo // {} for "nobody"
	asked  int
	peers  []orchestrator.ReplicaStatus
}

func (f *fakeReplicas) ID() string { return "self" }

func (f *fakeReplicas) Serves(dep string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.serves[dep]
}

func (f *fakeReplicas) Owner(context.Context, string) (orchestrator.ReplicaInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.owners[min(f.asked, len(f.owners)-1)]
	f.asked++
	return o, o.ID != "", nil
}

func (f *fakeReplicas) Peers(context.Context) ([]orchestrator.ReplicaStatus, error) {
	return f.peers, nil
}

// peer is another replica's API: it answers with answer and records what
// it was asked.
type peer struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []*http.Request
}

func newPeer(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *peer {
	p := &peer{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.got = append(p.got, r.Clone(context.Background()))
		p.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *peer) requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.got...)
}

// forwardFixture is a serve whose API forwards through fake replicas,
// with deployment "d1" stored (and "nope" not).
func forwardFixture(t *testing.T, reps *fakeReplicas) (*Client, string) {
	t.Helper()
	f := newFixture(t)
	bp := filepath.Join(f.dir, "web.hcl")
	if err := os.WriteFile(bp, []byte(policyBlueprint), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.mgr.Deploy(context.Background(), orchestrator.DeployRequest{Paths: []string{bp}, ID: "d1"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&Server{Manager: f.mgr, Token: "test-token-0123456789", Replicas: reps, OwnerWait: 300 * time.Millisecond}).Handler())
	t.Cleanup(srv.Close)
	return NewClient(srv.URL, "test-token-0123456789"), srv.URL
}

func TestForwardingToTheOwner(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `["policy-of-the-owner"]`)
	}
	moving := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(movingHeader, "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"moving","code":"moving"}`)
	}
	refused := func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"missing or wrong API token","code":"unauthorized"}`)
	}
	tests := []struct {
		name string
		// owners answer in turn; "A" and "B" are peers answering with
		// their handler, "" nobody.
		owners     []string
		a, b       func(http.ResponseWriter, *http.Request)
		dep        string
		forwarded  bool // the request comes from another replica
		wantStatus int
		wantCode   string
		wantBody   string
		wantAtA    int
		wantAtB    int
	}{
		{name: "another replica owns it: forwarded, its answer copied", owners: []string{"A"}, a: ok, dep: "d1",
			wantStatus: 200, wantBody: "policy-of-the-owner", wantAtA: 1},
		{name: "the owner answers that it moved: looked up again, sent to the next", owners: []string{"A", "B"}, a: moving, b: ok, dep: "d1",
			wantStatus: 200, wantBody: "policy-of-the-owner", wantAtA: 1, wantAtB: 1},
		{name: "the owner refuses the token: said so, naming the token file", owners: []string{"A"}, a: refused, dep: "d1",
			wantStatus: http.StatusBadGateway, wantCode: "unauthorized", wantBody: "--api-token-file", wantAtA: 1},
		{name: "nobody owns it: waits, then 503 to try again", owners: []string{""}, dep: "d1",
			wantStatus: http.StatusServiceUnavailable, wantCode: "unavailable", wantBody: "no replica answers for it now"},
		{name: "forwarded here, not ours: 503 moving, never forwarded again", owners: []string{"A"}, a: ok, dep: "d1", forwarded: true,
			wantStatus: http.StatusServiceUnavailable, wantCode: "moving"},
		{name: "no such deployment: answered here at once", owners: []string{""}, dep: "nope",
			wantStatus: 200, wantBody: "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peers := map[string]*peer{}
			for id, h := range map[string]func(http.ResponseWriter, *http.Request){"A": tt.a, "B": tt.b} {
				if h != nil {
					peers[id] = newPeer(t, h)
				}
			}
			reps := &fakeReplicas{serves: map[string]bool{}}
			for _, o := range tt.owners {
				info := orchestrator.ReplicaInfo{ID: o}
				if p := peers[o]; p != nil {
					info.API = p.srv.URL
				}
				reps.owners = append(reps.owners, info)
			}
			_, url := forwardFixture(t, reps)
			req, _ := http.NewRequest(http.MethodGet, url+"/v1/policies?deployment="+tt.dep, nil)
			req.Header.Set("Authorization", "Bearer test-token-0123456789")
			if tt.forwarded {
				req.Header.Set(forwardedBy, "other")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantCode != "" {
				var e Error
				if json.Unmarshal(body, &e) != nil || e.Code != tt.wantCode {
					t.Errorf("code %q, want %q: %s", e.Code, tt.wantCode, body)
				}
			}
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
				t.Errorf("a 503 without Retry-After")
			}
			for id, want := range map[string]int{"A": tt.wantAtA, "B": tt.wantAtB} {
				var got []*http.Request
				if p := peers[id]; p != nil {
					got = p.requests()
				}
				if len(got) != want {
					t.Errorf("replica %s asked %d times, want %d", id, len(got), want)
				}
				for _, r := range got {
					if r.Header.Get(forwardedBy) != "self" || r.Header.Get("Authorization") != "Bearer test-token-0123456789" {
						t.Errorf("forwarded without the replica's name or the caller's token: %v", r.Header)
					}
				}
			}
		})
	}
}

// A list gathered from the replicas fails, naming the replica, when one
// that owns deployments does not answer (rather than coming back short).
func TestAListNamesTheReplicaThatDidNotAnswer(t *testing.T) {
	down := newPeer(t, func(w http.ResponseWriter, r *http.Request) {})
	url := down.srv.URL
	down.srv.Close()
	reps := &fakeReplicas{serves: map[string]bool{"d1": true}, owners: []orchestrator.ReplicaInfo{{}},
		peers: []orchestrator.ReplicaStatus{
			{ReplicaInfo: orchestrator.ReplicaInfo{ID: "self"}, Deployments: []string{"d1"}},
			{ReplicaInfo: orchestrator.ReplicaInfo{ID: "gone", API: url}, Deployments: []string{"d2", "d3"}},
		}}
	c, _ := forwardFixture(t, reps)
	_, err := c.Policies(context.Background(), "")
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || !strings.Contains(e.Message, "replica gone, owner of 2 deployment(s), did not answer") {
		t.Errorf("all policies with a replica down: %v", err)
	}
}

// A change the owner may have carried out before its answer was lost is
// not sent again: the caller hears that it may have been.
func TestAChangeIsNotForwardedTwice(t *testing.T) {
	hangUp := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	})
	reps := &fakeReplicas{serves: map[string]bool{}, owners: []orchestrator.ReplicaInfo{{ID: "A", API: hangUp.srv.URL}}}
	c, _ := forwardFixture(t, reps)
	_, err := c.SetPause(context.Background(), "d1", "web_cpu", &policies.Pause{Reason: "x"})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || !strings.Contains(e.Message, "may have been carried out") {
		t.Errorf("pause whose answer was lost: %v", err)
	}
	if n := len(hangUp.requests()); n != 1 {
		t.Errorf("the owner was asked %d times, want once", n)
	}
}
