package testenv

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

func TestRabbitMQPublishConsume(t *testing.T) {
	e := Get(t)
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatalf("dial %s: %v", e.AMQPURL, err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	body := []byte(fmt.Sprintf(`{"metric": %d}`, time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{ContentType: "application/json", Body: body}); err != nil {
		t.Fatal(err)
	}
	if c := <-confirms; !c.Ack {
		t.Fatal("publish not confirmed")
	}
	msgs, err := ch.Consume(q.Name, "", false, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if !bytes.Equal(m.Body, body) {
			t.Errorf("consumed %q, published %q", m.Body, body)
		}
		if err := m.Ack(false); err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("no message consumed")
	}
}

// runningPods waits until exactly n pods of app are Running.
func runningPods(t *testing.T, cs kubernetes.Interface, ns, app string, n int) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err != nil {
			return false, err
		}
		running := 0
		var phases []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				running++
			}
			phases = append(phases, p.Name+"="+string(p.Status.Phase))
		}
		last = strings.Join(phases, ", ")
		return running == n, nil
	})
	if err != nil {
		t.Fatalf("want %d Running pods of %s/%s: %v (pods: %s)", n, ns, app, err, last)
	}
}

func TestDeploymentsRunInBothClusters(t *testing.T) {
	e := Get(t)
	for _, ctx := range []string{Primary, Peer} {
		t.Run(ctx, func(t *testing.T) {
			cs := e.Clientset(t, ctx)
			nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			zones := map[string]bool{}
			for _, n := range nodes.Items {
				zones[n.Labels["topology.kubernetes.io/zone"]] = true
			}
			if ctx == Primary && (len(nodes.Items) < 6 || len(zones) < 3) {
				t.Errorf("primary has %d nodes in %d zones, want at least 6 in 3", len(nodes.Items), len(zones))
			}
			if ctx == Peer && len(nodes.Items) < 2 {
				t.Errorf("peer has %d nodes, want at least 2", len(nodes.Items))
			}
			ns := Namespace(t, cs, "smoke")
			CreateDeployment(t, cs, ns, "web", 2)
			runningPods(t, cs, ns, "web", 2)
		})
	}
}

func sshClient(t *testing.T, e *Env, knownHostsFile string) (*ssh.Client, error) {
	t.Helper()
	key, err := os.ReadFile(e.SSH.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	hostKeys, err := knownhosts.New(knownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Dial("tcp", e.SSH.Addr(), &ssh.ClientConfig{
		User:            e.SSH.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         10 * time.Second,
	})
}

func TestKubectlScaleOverSSH(t *testing.T) {
	e := Get(t)
	cs := e.Clientset(t, Primary)
	ns := Namespace(t, cs, "smoke")
	CreateDeployment(t, cs, ns, "api", 2)
	runningPods(t, cs, ns, "api", 2)

	client, err := sshClient(t, e, e.SSH.KnownHosts)
	if err != nil {
		t.Fatalf("ssh %s: %v", e.SSH.Addr(), err)
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close()
	// ns is generated, "api" constant: nothing here needs quoting.
	out, err := session.CombinedOutput("kubectl scale deployment/api -n " + ns + " --replicas=4")
	if err != nil {
		t.Fatalf("kubectl over ssh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "scaled") {
		t.Errorf("kubectl said %q", out)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(context.Background(), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 4 {
		t.Errorf("replicas = %d after kubectl scale over ssh", *d.Spec.Replicas)
	}
	runningPods(t, cs, ns, "api", 4)
}

func TestSSHHostKeyMismatchIsRefused(t *testing.T) {
	e := Get(t)
	// A known_hosts that names another key for the same address.
	_, other, err := ed25519Key()
	if err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(e.SSH.Addr())}, other)
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(wrong, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := sshClient(t, e, wrong)
	if err == nil {
		client.Close()
		t.Fatal("connected despite a host key mismatch")
	}
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) || len(keyErr.Want) == 0 {
		t.Errorf("want a host key mismatch error, got %v", err)
	}
	// And the right known_hosts connects, so the refusal above is the key's.
	client, err = sshClient(t, e, e.SSH.KnownHosts)
	if err != nil {
		t.Fatalf("with the right known_hosts: %v", err)
	}
	client.Close()
}

var virtualServices = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}

func virtualService(name string, weight any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"hosts": []any{"bookings"},
			"http": []any{map[string]any{"route": []any{
				map[string]any{"destination": map[string]any{"host": "bookings", "port": map[string]any{"number": int64(8080)}}, "weight": weight},
			}}},
		},
	}}
}

func TestMalformedVirtualServiceIsRejected(t *testing.T) {
	e := Get(t)
	cs := e.Clientset(t, Primary)
	ns := Namespace(t, cs, "smoke")
	vs := e.Dynamic(t, Primary).Resource(virtualServices).Namespace(ns)
	if _, err := vs.Create(context.Background(), virtualService("good", int64(75)), metav1.CreateOptions{}); err != nil {
		t.Fatalf("a valid VirtualService was refused: %v", err)
	}
	for name, weight := range map[string]any{"text-weight": "seventy-five", "weight-over-100": int64(175)} {
		_, err := vs.Create(context.Background(), virtualService(name, weight), metav1.CreateOptions{})
		if !apierrors.IsInvalid(err) {
			t.Errorf("%s: want Invalid from the API server, got %v", name, err)
		}
	}
}

func ed25519Key() (ssh.Signer, ssh.PublicKey, error) {
	_, priv, err := ed25519.GenerateKey(crand.Reader)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return signer, signer.PublicKey(), nil
}
