package orchestrator

import (
	"context"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
)

// partition is a TCP proxy to etcd that can drop everything both ways
// while keeping the connections open: a network partition, not a refused
// connection.
type partition struct {
	l      net.Listener
	target string
	cut    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newPartition(t *testing.T, target string) *partition {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &partition{l: l, target: target}
	go p.accept()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	return p
}

func (p *partition) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// pipe copies from src to dst, dropping what it reads while cut.
func (p *partition) pipe(src, dst net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// A replica cut off from etcd (its packets dropped, its connections left
// open) stops acting for its deployments within its lease's TTL: it owns
// nothing past the TTL since its last renewal, hears that its lease is
// lost soon after, and another replica takes its deployments.
func TestAReplicaCutOffFromEtcdStopsActingWithinItsTTL(t *testing.T) {
	storeURL := testenv.Get(t).EtcdStore(t, "orch-partition")
	u, err := url.Parse(storeURL)
	must(t, err)
	p := newPartition(t, u.Host)
	cutURL := *u
	cutURL.Host = p.l.Addr().String()
	admin, err := OpenEtcd(storeURL, EtcdOptions{})
	must(t, err)
	defer admin.Close()
	ctx := context.Background()
	deps := []string{"d0", "d1", "d2"}
	for _, d := range deps {
		must(t, admin.CreateDeployment(ctx, record("bp"), &Deployment{ID: d, Blueprint: "bp"}))
	}
	const ttl = 2 * time.Second
	a := startReplica(t, cutURL.String(), "a", ttl)
	testenv.WaitFor(t, "a owns every deployment", 20*time.Second, func() bool { return slices.Equal(a.Owned(), deps) })
	time.Sleep(300 * time.Millisecond) // a renewal or two through the proxy
	p.cut.Store(true)
	cut := time.Now()
	b := startReplica(t, storeURL, "b", ttl)

	testenv.WaitFor(t, "a stops owning", 10*time.Second, func() bool {
		for _, d := range deps {
			if a.Owns(d) {
				return false
			}
		}
		return true
	})
	stopped := time.Since(cut)
	// The TTL runs from the last renewal, before the cut; the margin is
	// the polling's.
	if stopped > ttl+500*time.Millisecond {
		t.Errorf("a, cut off, acted for its deployments %s after the cut; its TTL is %s", stopped, ttl)
	}
	select {
	case <-a.Lost():
	case <-time.After(ttl + 5*time.Second):
		t.Errorf("a, cut off, did not hear that its lease was lost within %s", ttl+5*time.Second)
	}
	testenv.WaitFor(t, "b owns every deployment", 20*time.Second, func() bool { return slices.Equal(b.Owned(), deps) })
	t.Logf("cut off from etcd: stopped acting after %s (TTL %s); b owns everything after %s", stopped.Round(10*time.Millisecond), ttl, time.Since(cut).Round(10*time.Millisecond))
}
