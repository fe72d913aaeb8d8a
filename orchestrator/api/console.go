package api

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The console: a page app over the API, embedded (nothing is loaded from
// another host). A login page takes the API token and sets a session
// cookie (HttpOnly, SameSite=Strict); a request that changes anything
// with the cookie must also carry the session's CSRF token in
// csrfHeader, which only the console's own script can read.
//
//go:embed console
var consoleFiles embed.FS

const (
	sessionCookie = "orch_session"
	csrfHeader    = "X-Orch-CSRF"
	// sessionTTL is how long a console login lasts.
	sessionTTL = 12 * time.Hour
	// maxSessions bounds the sessions kept (the oldest go first).
	maxSessions = 1000
)

// sessions are the console's logins, in memory: a restart logs out.
type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

type session struct {
	csrf    string
	expires time.Time
}

func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (ss *sessions) create() (id string, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.m == nil {
		ss.m = map[string]*session{}
	}
	now := time.Now()
	for k, v := range ss.m {
		if now.After(v.expires) {
			delete(ss.m, k)
		}
	}
	for len(ss.m) >= maxSessions {
		var oldest string
		for k, v := range ss.m {
			if oldest == "" || v.expires.Before(ss.m[oldest].expires) {
				oldest = k
			}
		}
		delete(ss.m, oldest)
	}
	id, s = randomToken(), &session{csrf: randomToken(), expires: now.Add(sessionTTL)}
	ss.m[id] = s
	return id, s
}

// get returns the request's live session, or nil.
func (ss *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil || time.Now().After(s.expires) {
		return nil
	}
	return s
}

func (ss *sessions) drop(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		ss.mu.Lock()
		delete(ss.m, c.Value)
		ss.mu.Unlock()
	}
}

// consoleHeaders are set on every console page and asset: nothing from
// another origin, no framing, no referrer.
func consoleHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
}

var loginPage = template.Must(template.ParseFS(consoleFiles, "console/login.html"))

// consoleRoutes adds the console's pages to mux: the login page and its
// stylesheet are all that answers without a session.
func (s *Server) consoleRoutes(mux *routeMux) {
	assets, _ := fs.Sub(consoleFiles, "console")
	showLogin := func(w http.ResponseWriter, status int, failed bool) {
		consoleHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		_ = loginPage.Execute(w, struct{ Failed bool }{failed})
	}
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) { showLogin(w, http.StatusOK, false) })
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 4096)
		if !sameOrigin(r) {
			http.Error(w, "cross-site login refused", http.StatusForbidden)
			return
		}
		token := r.PostFormValue("token")
		if s.Token == "" || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.Token)) != 1 {
			showLogin(w, http.StatusUnauthorized, true)
			return
		}
		id, _ := s.sessions.create()
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil,
			SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL.Seconds())})
		http.Redirect(w, r, "/", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /console/login.css", func(w http.ResponseWriter, r *http.Request) {
		consoleHeaders(w)
		http.ServeFileFS(w, r, assets, "login.css")
	})
	// Behind a session (s.auth sends a browser without one to /login).
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		s.sessions.drop(r)
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: -1})
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		consoleHeaders(w)
		http.ServeFileFS(w, r, assets, "index.html")
	})
	mux.HandleFunc("GET /console/{file}", func(w http.ResponseWriter, r *http.Request) {
		consoleHeaders(w)
		switch f := r.PathValue("file"); f {
		case "app.js", "app.css":
			http.ServeFileFS(w, r, assets, f)
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /console/session", func(w http.ResponseWriter, r *http.Request) {
		// Bearer callers have no session and need no CSRF token.
		csrf := ""
		if sess := s.sessions.get(r); sess != nil {
			csrf = sess.csrf
		}
		consoleHeaders(w)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"csrf":"` + csrf + `"}`))
	})
}

// sameOrigin reports whether a browser says the request comes from this
// origin (a request without the Fetch Metadata or Origin headers is not a
// browser's cross-site one).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		host := strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://")
		return host == r.Host
	}
	return true
}

// publicRoute is what answers without the token or a session: the login
// page and its stylesheet, which hold no data.
func publicRoute(r *http.Request) bool {
	return r.URL.Path == "/login" || r.Method == http.MethodGet && r.URL.Path == "/console/login.css"
}

// browserPage reports whether an unauthenticated request is a browser
// asking for a page (sent to the login page, not answered 401 JSON).
func browserPage(r *http.Request) bool {
	return r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}
