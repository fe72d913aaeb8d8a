package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Broker is a RabbitMQ node of a test's own, on its own port and data
// directory, so the test can stop and start it (a real broker restart)
// without disturbing the shared broker other tests use.
type Broker struct {
	URL  string
	addr string
	name string
	dir  string
	env  []string
	// running is false after Stop: the cleanup does not stop it again
	// (rabbitmqctl stop waits for a node that is not there).
	running bool
}

var brokerSeq atomic.Int64

// PrivateBroker starts a RabbitMQ node for the test with the machine's
// rabbitmq-server (make env-up installs it) and stops it at the end.
func PrivateBroker(t testing.TB) *Broker {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("rabbitmq-server missing: make env-up installs it")
	}
	port, dist := freePort(t), freePort(t)
	name := fmt.Sprintf("orchtest%d_%d@localhost", os.Getpid(), brokerSeq.Add(1))
	dir, err := os.MkdirTemp("", "orch-broker-")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users = none\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// rabbitmq-server run as root drops to the rabbitmq user.
	if u, err := user.Lookup("rabbitmq"); err == nil && os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chown(p, uid, gid) })
	}
	b := &Broker{URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port), addr: fmt.Sprintf("127.0.0.1:%d", port), name: name, dir: dir,
		env: append(os.Environ(),
			"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
			"RABBITMQ_NODENAME="+name,
			"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "plugins"),
		)}
	t.Cleanup(func() {
		if b.running {
			b.stop()
		}
		os.RemoveAll(dir)
	})
	b.Start(t)
	return b
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *Broker) ctl(args ...string) *exec.Cmd {
	cmd := exec.Command("rabbitmqctl", append([]string{"-n", b.name}, args...)...)
	cmd.Env = b.env
	return cmd
}

// Start starts the node (again) and waits until it accepts connections.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	cmd := exec.Command("rabbitmq-server", "-detached")
	cmd.Env = b.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("start broker %s: %v\n%s", b.name, err, out)
	}
	if out, err := b.ctl("wait", filepath.Join(b.dir, "pid"), "--timeout", "60").CombinedOutput(); err != nil {
		t.Fatalf("broker %s did not start: %v\n%s\nlogs in %s", b.name, err, out, filepath.Join(b.dir, "log"))
	}
	WaitFor(t, "broker "+b.name+" accepting connections", 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	b.running = true
}

// Stop stops the node; durable queues and exchanges survive a Start.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if out, err := b.stop(); err != nil {
		t.Fatalf("stop broker %s: %v\n%s", b.name, err, out)
	}
	b.running = false
}

func (b *Broker) stop() ([]byte, error) {
	return b.ctl("stop", filepath.Join(b.dir, "pid")).CombinedOutput()
}

// AMQPNames returns an exchange and a queue of the test's own (prefix plus
// a random id), deleted from the broker at url when the test ends.
func AMQPNames(t testing.TB, url, prefix string) (exchange, queue string) {
	t.Helper()
	id := rand.String(6)
	exchange, queue = prefix+"-monitoring-"+id, "orch-"+prefix+"-"+id
	t.Cleanup(func() { DeleteAMQP(url, exchange, queue) })
	return exchange, queue
}

// DeleteAMQP deletes a queue and an exchange, if they exist.
func DeleteAMQP(url, exchange, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
		_ = ch.ExchangeDelete(exchange, false, false)
	}
}
