// Package kubernetes is orch's Kubernetes plugin: clients per cluster node
// from kubeconfig and context (as kubectl resolves them), and kube_scale
// through client-go's scale subresource or over SSH with kubectl.
package kubernetes

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Scaler changes the replica count of a Deployment.
type Scaler interface {
	Scale(ctx context.Context, namespace, name string, a Amount, l Limits) (from, to int32, err error)
}

// conflictBackoff retries read-modify-write conflicts: many concurrent
// scalers each get their turn.
var conflictBackoff = wait.Backoff{Steps: 20, Duration: 5 * time.Millisecond, Factor: 1.5, Jitter: 0.5, Cap: 500 * time.Millisecond}

// ClientScaler scales through the scale subresource, retrying on conflict,
// so concurrent changes add up instead of overwriting each other.
type ClientScaler struct {
	Client kubernetes.Interface
}

// Scale implements Scaler.
func (s ClientScaler) Scale(ctx context.Context, namespace, name string, a Amount, l Limits) (int32, int32, error) {
	if err := ValidateTarget(namespace, name); err != nil {
		return 0, 0, err
	}
	var from, to int32
	err := retry.RetryOnConflict(conflictBackoff, func() error {
		deps := s.Client.AppsV1().Deployments(namespace)
		sc, err := deps.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		from = sc.Spec.Replicas
		to = a.Apply(from, l)
		if to == from {
			return nil
		}
		sc.Spec.Replicas = to
		_, err = deps.UpdateScale(ctx, name, sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return from, from, fmt.Errorf("scale deployment %s/%s: %w", namespace, name, err)
	}
	return from, to, nil
}

// ValidateTarget refuses anything that is not a Kubernetes name before any
// request or command is built from it.
func ValidateTarget(namespace, name string) error {
	if errs := validation.IsDNS1123Label(namespace); len(errs) > 0 {
		return fmt.Errorf("namespace %q is not a valid Kubernetes namespace: %s", namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return fmt.Errorf("deployment name %q is not a valid Kubernetes name: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// Runner runs a command on a remote host and returns its output; SSH
// implements it.
type Runner interface {
	Run(ctx context.Context, argv ...string) ([]byte, error)
}

// KubectlScaler scales by running kubectl on the master (over SSH). The
// read-modify-write is safe: the scale carries the resourceVersion it read
// (--resource-version), and a conflict reads again.
type KubectlScaler struct {
	Runner  Runner
	Kubectl string // default "kubectl"
}

// Scale implements Scaler.
func (s KubectlScaler) Scale(ctx context.Context, namespace, name string, a Amount, l Limits) (int32, int32, error) {
	if err := ValidateTarget(namespace, name); err != nil {
		return 0, 0, err
	}
	kubectl := s.Kubectl
	if kubectl == "" {
		kubectl = "kubectl"
	}
	var from, to int32
	err := retry.OnError(conflictBackoff, isConflict, func() error {
		out, err := s.Runner.Run(ctx, kubectl, "get", "deployment", name, "--namespace", namespace,
			"--output", "jsonpath={.spec.replicas} {.metadata.resourceVersion}")
		if err != nil {
			return err
		}
		fields := strings.Fields(string(out))
		if len(fields) != 2 {
			return fmt.Errorf("kubectl get deployment %s/%s: unexpected output %q", namespace, name, out)
		}
		n, err := strconv.ParseInt(fields[0], 10, 32)
		if err != nil {
			return fmt.Errorf("kubectl get deployment %s/%s: replicas %q", namespace, name, fields[0])
		}
		from = int32(n)
		to = a.Apply(from, l)
		if to == from {
			return nil
		}
		_, err = s.Runner.Run(ctx, kubectl, "scale", "deployment/"+name, "--namespace", namespace,
			"--replicas="+strconv.Itoa(int(to)), "--resource-version="+fields[1])
		return err
	})
	if err != nil {
		return from, from, fmt.Errorf("scale deployment %s/%s over ssh: %w", namespace, name, err)
	}
	return from, to, nil
}

func isConflict(err error) bool {
	s := err.Error()
	// kubectl scale --resource-version reports a lost race as "Expected
	// resource version to be X, was Y"; the API server as a Conflict.
	return strings.Contains(s, "Expected resource version") || strings.Contains(s, "the object has been modified") ||
		strings.Contains(s, "Conflict") || strings.Contains(s, "precondition failed")
}

// ShellQuote quotes one argument for a POSIX shell: the remote side of SSH
// always runs the command through the user's shell, so every argument is
// single-quoted, whatever was validated before.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=/.:") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellCommand joins argv into one quoted command line.
func ShellCommand(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}
