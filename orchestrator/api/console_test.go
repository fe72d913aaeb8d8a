package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/orchestrator"
)

// consoleFixture is a fixture with a deployment "secretdep" and an
// execution of it, so that a route that leaked data would show them.
func consoleFixture(t *testing.T) (*fixture, string) {
	t.Helper()
	f := newFixture(t)
	bp := filepath.Join(f.dir, "secretdep.hcl")
	if err := os.WriteFile(bp, []byte(policyBlueprint), 0o600); err != nil {
		t.Fatal(err)
	}
	_, x, err := f.client.Deploy(context.Background(), orchestrator.DeployRequest{Paths: []string{bp}, ID: "secretdep"})
	if err != nil {
		t.Fatal(err)
	}
	f.wait(t, x)
	return f, x.ID
}

// request sends a request with the given cookies and headers.
func request(t *testing.T, c *http.Client, method, u string, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func noRedirects() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Every route the API and the console register, asked without the token
// or a session (none, a wrong bearer, a forged cookie, as a browser and
// not), answers 401 or sends to the login page, and shows nothing of the
// deployment; only the login page and its stylesheet answer, with no data.
func TestEveryConsoleAndAPIRouteGivesNothingWithoutTheTokenOrSession(t *testing.T) {
	f, execution := consoleFixture(t)
	srv := &Server{Manager: f.mgr, Token: "test-token-0123456789"}
	srv.Handler()
	if len(srv.patterns) < 20 {
		t.Fatalf("%d routes registered: %v", len(srv.patterns), srv.patterns)
	}
	fill := strings.NewReplacer("{id}", "secretdep", "{deployment}", "secretdep", "{file}", "app.js", "{$}", "")
	c := noRedirects()
	for _, pattern := range srv.patterns {
		method, path, _ := strings.Cut(pattern, " ")
		path = fill.Replace(path)
		if strings.HasPrefix(path, "/v1/executions/") {
			path = strings.Replace(path, "secretdep", execution, 1)
		}
		for name, header := range map[string]map[string]string{
			"nothing":                       {},
			"a wrong bearer":                {"Authorization": "Bearer nope"},
			"a forged cookie, as a browser": {"Cookie": sessionCookie + "=0123456789abcdef", "Accept": "text/html"},
		} {
			resp, body := request(t, c, method, f.url+path, strings.NewReader(`{}`), header)
			public := path == "/login" || path == "/console/login.css"
			switch {
			case public && method == http.MethodGet:
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s with %s: %d", pattern, name, resp.StatusCode)
				}
			case public: // POST /login with no token
				if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Set-Cookie") != "" {
					t.Errorf("%s with %s: %d, cookie %q", pattern, name, resp.StatusCode, resp.Header.Get("Set-Cookie"))
				}
			case resp.StatusCode == http.StatusSeeOther:
				if loc := resp.Header.Get("Location"); loc != "/login" || method != http.MethodGet || header["Accept"] == "" {
					t.Errorf("%s with %s: sent to %q", pattern, name, loc)
				}
			case resp.StatusCode != http.StatusUnauthorized:
				t.Errorf("%s with %s: %d, want 401", pattern, name, resp.StatusCode)
			}
			if strings.Contains(body, "secretdep") || strings.Contains(body, execution) || strings.Contains(body, "web_cpu") {
				t.Errorf("%s with %s shows data:\n%s", pattern, name, body)
			}
		}
	}
}

// The login page takes the token and sets a session cookie (HttpOnly,
// SameSite=Strict); a wrong token sets none. With the cookie, reads work;
// a change needs the session's CSRF token and this origin; logging out
// ends the session.
func TestConsoleSessionsAreStrictAndChangesNeedTheirCSRFToken(t *testing.T) {
	f, _ := consoleFixture(t)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	form := func(token string) io.Reader { return strings.NewReader(url.Values{"token": {token}}.Encode()) }
	formType := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}

	resp, body := request(t, noRedirects(), http.MethodPost, f.url+"/login", form("wrong"), formType)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Set-Cookie") != "" || !strings.Contains(body, "Wrong token") {
		t.Fatalf("a wrong token: %d, cookie %q:\n%s", resp.StatusCode, resp.Header.Get("Set-Cookie"), body)
	}
	resp, _ = request(t, noRedirects(), http.MethodPost, f.url+"/login", form("test-token-0123456789"), formType)
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") {
		t.Fatalf("the right token: %d, cookie %q", resp.StatusCode, cookie)
	}
	if resp, _ := request(t, noRedirects(), http.MethodPost, f.url+"/login", form("test-token-0123456789"),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site login: %d, want 403", resp.StatusCode)
	}
	// Log in through the jar.
	if resp, _ := request(t, c, http.MethodPost, f.url+"/login", form("test-token-0123456789"), formType); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if resp, body := request(t, c, http.MethodGet, f.url+"/v1/deployments", nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "secretdep") {
		t.Fatalf("reading with the session: %d %s", resp.StatusCode, body)
	}
	if resp, body := request(t, c, http.MethodGet, f.url+"/", nil, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "/console/app.js") ||
		!strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("the console page: %d %q\n%s", resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body)
	}
	_, sess := request(t, c, http.MethodGet, f.url+"/console/session", nil, nil)
	var s struct{ CSRF string }
	if err := json.Unmarshal([]byte(sess), &s); err != nil || len(s.CSRF) != 64 {
		t.Fatalf("session: %q %v", sess, err)
	}
	run := `{"Deployment":"secretdep","Workflow":"scale"}`
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"without the CSRF token", map[string]string{}, http.StatusForbidden},
		{"with a wrong one", map[string]string{csrfHeader: strings.Repeat("0", 64)}, http.StatusForbidden},
		{"from another site", map[string]string{csrfHeader: s.CSRF, "Origin": "https://evil.example"}, http.StatusForbidden},
		{"with it, from this origin", map[string]string{csrfHeader: s.CSRF, "Origin": f.url}, http.StatusOK},
	} {
		if resp, body := request(t, c, http.MethodPost, f.url+"/v1/executions", strings.NewReader(run), tc.header); resp.StatusCode != tc.want {
			t.Errorf("running a workflow %s: %d, want %d\n%s", tc.name, resp.StatusCode, tc.want, body)
		}
	}
	if got := f.rec.count(); got > 2 {
		t.Errorf("%d runs recorded", got)
	}
	u, _ := url.Parse(f.url)
	var jarCookie string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == sessionCookie {
			jarCookie = sessionCookie + "=" + ck.Value
		}
	}
	if resp, _ := request(t, c, http.MethodPost, f.url+"/logout", nil, map[string]string{csrfHeader: s.CSRF}); resp.StatusCode != http.StatusOK {
		t.Errorf("logout: %d", resp.StatusCode)
	}
	// The logged-out session reads nothing more; another one still does.
	if resp, _ := request(t, noRedirects(), http.MethodGet, f.url+"/v1/deployments", nil, map[string]string{"Cookie": jarCookie}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a logged-out session reads: %d", resp.StatusCode)
	}
	first := strings.SplitN(cookie, ";", 2)[0]
	if resp, _ := request(t, noRedirects(), http.MethodGet, f.url+"/v1/deployments", nil, map[string]string{"Cookie": first}); resp.StatusCode != http.StatusOK {
		t.Errorf("another session after a logout: %d", resp.StatusCode)
	}
}
