package kubernetes

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/mesh"
)

// Types are the node types this plugin gives blueprints.
const Types = `
node_type "kubernetes.cluster" {
  description = "A Kubernetes cluster, reached through a kubeconfig and context exactly as kubectl reaches it (KUBECONFIG, exec credentials and tokens included)."
  property "kubeconfig" {
    type        = string
    default     = ""
    description = "Path of the kubeconfig; empty: $KUBECONFIG, then ~/.kube/config."
  }
  property "context" {
    type        = string
    default     = ""
    description = "Context in the kubeconfig; empty: the current context."
  }
}

node_type "kubernetes.master" {
  description = "A host (the Kubernetes master, or a proxy) on which kubectl runs over SSH."
  property "host" { type = string }
  property "port" {
    type    = number
    default = 22
  }
  property "ssh_user" {
    type    = string
    default = ""
  }
  property "ssh_keyfilename" {
    type        = string
    default     = ""
    description = "Private key file; empty: the ssh-agent at SSH_AUTH_SOCK."
  }
  property "known_hosts" {
    type        = string
    default     = ""
    description = "known_hosts to verify the host key with; empty: ~/.ssh/known_hosts."
  }
  property "kubectl" {
    type    = string
    default = "kubectl"
  }
}

node_type "kubernetes.app" {
  description = "An application in the cluster it is contained_in: created from manifests on install and deleted on uninstall, or, without manifests, an existing app adopted by its label app=<app>."
  property "namespace" {
    type    = string
    default = "default"
  }
  property "app" { type = string }
  property "manifests" {
    default     = []
    description = "Kubernetes objects (as HCL objects) to apply on install; empty: adopt the existing app."
  }
  operation "create" {
    implementation = "kubernetes.app.create"
    timeout        = "2m"
  }
  operation "delete" {
    implementation = "kubernetes.app.delete"
    timeout        = "2m"
  }
}
`

// Plugin is the Kubernetes plugin. Clients and SSH connections are kept per
// cluster and host for the life of the process.
type Plugin struct {
	mu      sync.Mutex
	clients map[string]kubernetes.Interface
	ssh     map[SSHTarget]*SSH
}

// New returns the plugin.
func New() *Plugin {
	return &Plugin{clients: map[string]kubernetes.Interface{}, ssh: map[SSHTarget]*SSH{}}
}

// Register adds the node types, the app operations and the kubernetes.scale,
// burst, reconcile and route_reflectors workflows.
func (p *Plugin) Register(r *plugins.Registry) error {
	r.RegisterTypes("<builtin>/kubernetes.hcl", []byte(Types))
	r.RegisterFormat(LabelSelectorFormat, func(s string) error {
		if _, err := labels.Parse(s); err != nil {
			return fmt.Errorf("%q is not a label selector: %w", s, err)
		}
		return nil
	})
	if err := r.RegisterWorkflow("kubernetes.scale", plugins.WorkflowFunc(p.scaleWorkflow)); err != nil {
		return err
	}
	if err := r.RegisterOperation(AppCreate, plugins.OperationFunc(p.appCreate)); err != nil {
		return err
	}
	if err := r.RegisterOperation(AppDelete, plugins.OperationFunc(p.appDelete)); err != nil {
		return err
	}
	if err := r.RegisterWorkflow("kubernetes.burst", resumable(p.burstWorkflow)); err != nil {
		return err
	}
	if err := r.RegisterWorkflow("kubernetes.route_reflectors", resumable(p.routeReflectorsWorkflow)); err != nil {
		return err
	}
	return r.RegisterWorkflow("kubernetes.reconcile", resumable(p.reconcileWorkflow))
}

// LabelSelectorFormat is the format of a Kubernetes label selector
// ("zone=a,tier!=db"), for `format = "kubernetes.label_selector"`.
const LabelSelectorFormat = "kubernetes.label_selector"

// resumable marks a level-triggered workflow: running it again after a
// crash converges to the same state, so orch may resume it.
type resumable plugins.WorkflowFunc

func (f resumable) Run(ctx context.Context, wc plugins.WorkflowContext) error { return f(ctx, wc) }
func (resumable) Resumable() bool                                             { return true }

// burstRequest decodes burst/reconcile parameters: app, namespace, from and
// to (kubernetes.cluster nodes), weight, replica_suffix, timeout, traffic,
// mesh_url, replication.
func (p *Plugin) burstRequest(wc plugins.WorkflowContext) (*Burst, error) {
	params := wc.Parameters()
	b := &Burst{App: str(params, "app"), Namespace: str(params, "namespace"), Suffix: str(params, "replica_suffix"),
		Traffic: str(params, "traffic"), Replication: str(params, "replication"), DryRun: wc.DryRun(), Log: func(msg string) { wc.Event("info", msg) }}
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	weight := int32(25)
	if _, ok := params["weight"]; ok {
		w, err := num(params, "weight")
		if err != nil {
			return nil, err
		}
		weight = w
	}
	b.Weight = int(weight)
	if t := str(params, "timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("timeout %q: want a duration such as \"60s\"", t)
		}
		b.Timeout = d
	}
	from, ok := nodeProps(params["from"])
	if !ok {
		return nil, fmt.Errorf("parameter from (the source cluster node) is required")
	}
	to, ok := nodeProps(params["to"])
	if !ok {
		return nil, fmt.Errorf("parameter to (the target cluster node) is required")
	}
	var err error
	if b.Source, err = p.Client(str(from, "kubeconfig"), str(from, "context")); err != nil {
		return nil, err
	}
	if b.Target, err = p.Client(str(to, "kubeconfig"), str(to, "context")); err != nil {
		return nil, err
	}
	if b.SourceDynamic, err = p.Dynamic(str(from, "kubeconfig"), str(from, "context")); err != nil {
		return nil, err
	}
	if url := str(params, "mesh_url"); url != "" {
		auth, err := mesh.AuthFromEnv()
		if err != nil {
			return nil, err
		}
		b.Mesh = mesh.New(url, auth)
		if b.Traffic == "" {
			b.Traffic = "graphql"
		}
	}
	b.SourceName = str(from, "context")
	if b.SourceName == "" {
		b.SourceName = "source"
	}
	return b, nil
}

func (p *Plugin) burstWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	b, err := p.burstRequest(wc)
	if err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	return b.Run(ctx)
}

func (p *Plugin) reconcileWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	b, err := p.burstRequest(wc)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	return b.Reconcile(ctx)
}

// Dynamic returns a dynamic client of a cluster.
func (p *Plugin) Dynamic(kubeconfig, kubeContext string) (dynamic.Interface, error) {
	cfg, err := RESTConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	return dynamic.NewForConfig(cfg)
}

// RESTConfig loads a kubeconfig and context as kubectl does: an empty path
// follows $KUBECONFIG and ~/.kube/config; an empty context is the current one.
func RESTConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %q context %q: %w", kubeconfig, kubeContext, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// Client returns the (shared) client of a cluster.
func (p *Plugin) Client(kubeconfig, kubeContext string) (kubernetes.Interface, error) {
	key := kubeconfig + "\x00" + kubeContext
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[key]; ok {
		return c, nil
	}
	cfg, err := RESTConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	p.clients[key] = c
	return c, nil
}

// SSH returns the (shared) runner of a host.
func (p *Plugin) SSH(t SSHTarget) *SSH {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.ssh[t]; ok {
		return s
	}
	s := NewSSH(t)
	p.ssh[t] = s
	return s
}

// Close closes the SSH connections.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.ssh {
		s.Close()
	}
	p.ssh = map[SSHTarget]*SSH{}
	return nil
}

// nodeProps reads the properties of a node-valued parameter ({name, type,
// properties}); a plain string is returned as the "host" property.
func nodeProps(v any) (map[string]any, bool) {
	switch n := v.(type) {
	case map[string]any:
		if props, ok := n["properties"].(map[string]any); ok {
			return props, true
		}
		return n, true
	case string:
		if n != "" {
			return map[string]any{"host": n}, true
		}
	}
	return nil, false
}

func str(m map[string]any, k string) string {
	if s, ok := m[k].(string); ok {
		return s
	}
	if v, ok := m[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func num(m map[string]any, k string) (int32, error) {
	switch v := m[k].(type) {
	case nil:
		return 0, nil
	case int64:
		return int32(v), nil
	case float64:
		return int32(v), nil
	case string:
		if v == "" {
			return 0, nil
		}
		var n int32
		if _, err := fmt.Sscan(v, &n); err != nil {
			return 0, fmt.Errorf("%s %q is not a number", k, v)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: not a number", k)
}

// ScaleRequest is kube_scale's parameters, decoded.
type ScaleRequest struct {
	Namespace, Name string
	Amount          Amount
	Limits          Limits
	Transport       string // "client-go" or "ssh"
	scaler          Scaler
}

// scaleRequest decodes the workflow parameters: the seed's master,
// ssh_user, ssh_keyfilename, name, amount, plus namespace, min, max and
// either cluster (client-go) or master (ssh).
func (p *Plugin) scaleRequest(params map[string]any) (*ScaleRequest, error) {
	r := &ScaleRequest{Namespace: str(params, "namespace"), Name: str(params, "name")}
	if r.Namespace == "" {
		r.Namespace = "default"
	}
	amount := str(params, "amount")
	if amount == "" {
		amount = "+0"
	}
	var err error
	if r.Amount, err = ParseAmount(amount); err != nil {
		return nil, err
	}
	if r.Limits.Min, err = num(params, "min"); err != nil {
		return nil, err
	}
	if r.Limits.Max, err = num(params, "max"); err != nil {
		return nil, err
	}
	if r.Limits.Max > 0 && r.Limits.Min > r.Limits.Max {
		return nil, fmt.Errorf("min %d is above max %d", r.Limits.Min, r.Limits.Max)
	}
	if err := ValidateTarget(r.Namespace, r.Name); err != nil {
		return nil, err
	}
	if master, ok := nodeProps(params["master"]); ok {
		t := SSHTarget{Host: str(master, "host"), User: str(params, "ssh_user"), KeyFile: str(params, "ssh_keyfilename"), KnownHosts: str(params, "known_hosts")}
		if t.User == "" {
			t.User = str(master, "ssh_user")
		}
		if t.KeyFile == "" {
			t.KeyFile = str(master, "ssh_keyfilename")
		}
		if t.KnownHosts == "" {
			t.KnownHosts = str(master, "known_hosts")
		}
		port, err := num(master, "port")
		if err != nil {
			return nil, err
		}
		t.Port = int(port)
		kubectl := str(master, "kubectl")
		r.Transport, r.scaler = "ssh", KubectlScaler{Runner: p.SSH(t), Kubectl: kubectl}
		return r, nil
	}
	cluster, ok := nodeProps(params["cluster"])
	if !ok {
		return nil, fmt.Errorf("kube_scale needs either a master (kubectl over ssh) or a cluster (client-go) parameter")
	}
	client, err := p.Client(str(cluster, "kubeconfig"), str(cluster, "context"))
	if err != nil {
		return nil, err
	}
	r.Transport, r.scaler = "client-go", ClientScaler{Client: client}
	return r, nil
}

func (p *Plugin) scaleWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	r, err := p.scaleRequest(wc.Parameters())
	if err != nil {
		return fmt.Errorf("kube_scale: %w", err)
	}
	if wc.DryRun() {
		wc.Event("info", fmt.Sprintf("would scale deployment %s/%s by %s (min %d, max %d) via %s", r.Namespace, r.Name, r.Amount, r.Limits.Min, r.Limits.Max, r.Transport))
		return nil
	}
	wc.Event("info", fmt.Sprintf("scaling deployment %s/%s by %s via %s", r.Namespace, r.Name, r.Amount, r.Transport))
	from, to, err := r.scaler.Scale(ctx, r.Namespace, r.Name, r.Amount, r.Limits)
	if err != nil {
		return err
	}
	if from == to {
		wc.Event("info", fmt.Sprintf("deployment %s/%s stays at %d replicas", r.Namespace, r.Name, from))
	} else {
		wc.Event("info", fmt.Sprintf("scaled deployment %s/%s from %d to %d replicas", r.Namespace, r.Name, from, to))
	}
	return nil
}
