package kubernetes

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
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
    minimum = 1
    maximum = 65535
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
    format  = "kubernetes.namespace"
  }
  property "app" {
    type        = string
    format      = "kubernetes.label_value"
    description = "The app: the label app=<app> of its objects."
  }
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
	r.RegisterMeshServiceType(AppType) // MeshService
	r.RegisterFormat("kubernetes.namespace", func(s string) error {
		if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
			return fmt.Errorf("%q is not a Kubernetes namespace: %s", s, strings.Join(errs, "; "))
		}
		return nil
	})
	r.RegisterFormat("kubernetes.label_value", func(s string) error {
		if errs := validation.IsValidLabelValue(s); len(errs) > 0 || s == "" {
			return fmt.Errorf("%q is not a Kubernetes label value (63 characters at most: letters, digits, '-', '_', '.', starting and ending with a letter or digit)", s)
		}
		return nil
	})
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

// The node types the plugin brings that others ask about.
const (
	ClusterType = "kubernetes.cluster"
	AppType     = "kubernetes.app"
)

// LabelSelectorFormat is the format of a Kubernetes label selector
// ("zone=a,tier!=db"), for `format = "kubernetes.label_selector"`.
const LabelSelectorFormat = "kubernetes.label_selector"

// resumable marks a level-triggered workflow: running it again after a
// crash converges to the same state, so orch may resume it.
type resumable plugins.WorkflowFunc

func (f resumable) Run(ctx context.Context, wc plugins.WorkflowContext) error { return f(ctx, wc) }
func (resumable) Resumable() bool                                             { return true }

// clusterRef is a kubernetes.cluster node given as a parameter.
type clusterRef struct {
	Kubeconfig string `param:"kubeconfig"`
	Context    string `param:"context"`
}

// burstParams are burst's and reconcile's parameters.
type burstParams struct {
	App         string        `param:"app"`
	Namespace   string        `param:"namespace"`
	From        *clusterRef   `param:"from"`
	To          *clusterRef   `param:"to"`
	Weight      int           `param:"weight"`
	Suffix      string        `param:"replica_suffix"`
	Timeout     time.Duration `param:"timeout"`
	Traffic     Traffic       `param:"traffic"`
	Replication Replication   `param:"replication"`
	MeshURL     string        `param:"mesh_url"`
}

// burstRequest decodes burst/reconcile parameters: app, namespace, from and
// to (kubernetes.cluster nodes), weight, replica_suffix, timeout, traffic,
// mesh_url, replication.
func (p *Plugin) burstRequest(wc plugins.WorkflowContext) (*Burst, error) {
	bp := burstParams{Namespace: "default", Weight: 25}
	if err := wc.Decode(&bp); err != nil {
		return nil, err
	}
	b := &Burst{App: bp.App, Namespace: bp.Namespace, Suffix: bp.Suffix, Weight: bp.Weight, Timeout: bp.Timeout,
		Traffic: bp.Traffic, Replication: bp.Replication, DryRun: wc.DryRun(), Log: func(msg string) { wc.Event("info", msg) }}
	if b.Namespace == "" {
		b.Namespace = "default"
	}
	if bp.From == nil {
		return nil, fmt.Errorf("parameter from (the source cluster node) is required")
	}
	if bp.To == nil {
		return nil, fmt.Errorf("parameter to (the target cluster node) is required")
	}
	var err error
	if b.Source, err = p.Client(bp.From.Kubeconfig, bp.From.Context); err != nil {
		return nil, err
	}
	if b.Target, err = p.Client(bp.To.Kubeconfig, bp.To.Context); err != nil {
		return nil, err
	}
	if b.SourceDynamic, err = p.Dynamic(bp.From.Kubeconfig, bp.From.Context); err != nil {
		return nil, err
	}
	if bp.MeshURL != "" {
		auth, err := mesh.AuthFromEnv()
		if err != nil {
			return nil, err
		}
		if auth.Secret() && len(auth.Hosts) == 0 {
			// A blueprint names this endpoint: the credentials go only to
			// hosts the operator configured.
			return nil, fmt.Errorf("mesh_url %s: the Calisti credentials go only to the hosts listed in %s (orch serve --mesh-url lists its own)", bp.MeshURL, mesh.HostsEnv)
		}
		if b.Mesh, err = mesh.New(bp.MeshURL, auth); err != nil {
			return nil, err
		}
		if b.Traffic == "" {
			b.Traffic = TrafficGraphQL
		}
	}
	b.SourceName = bp.From.Context
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

// masterRef is the Kubernetes master kube_scale reaches over SSH: a
// kubernetes.master node, or its host name as a string.
type masterRef struct {
	Host       string `param:"host"`
	Port       int    `param:"port"`
	User       string `param:"ssh_user"`
	KeyFile    string `param:"ssh_keyfilename"`
	KnownHosts string `param:"known_hosts"`
	Kubectl    string `param:"kubectl"`
}

// DecodeParam takes a node (its properties) or a host name.
func (m *masterRef) DecodeParam(v cty.Value) error {
	if v.Type() == cty.String {
		m.Host = v.AsString()
		return nil
	}
	return plugins.DecodeValue(v, m)
}

// scaleParams are kube_scale's parameters: the seed's master, ssh_user,
// ssh_keyfilename, name, amount, plus namespace, min, max, known_hosts and
// cluster (client-go, when there is no master).
type scaleParams struct {
	Namespace  string      `param:"namespace"`
	Name       string      `param:"name"`
	Amount     string      `param:"amount"`
	Min        int32       `param:"min"`
	Max        int32       `param:"max"`
	Master     *masterRef  `param:"master"`
	SSHUser    string      `param:"ssh_user"`
	SSHKeyFile string      `param:"ssh_keyfilename"`
	KnownHosts string      `param:"known_hosts"`
	Cluster    *clusterRef `param:"cluster"`
}

// ScaleRequest is kube_scale's parameters, decoded.
type ScaleRequest struct {
	Namespace, Name string
	Amount          Amount
	Limits          Limits
	Transport       string // "client-go" or "ssh"
	scaler          Scaler
}

// scaleRequest decodes the workflow parameters, once, into a request.
func (p *Plugin) scaleRequest(wc plugins.WorkflowContext) (*ScaleRequest, error) {
	sp := scaleParams{Namespace: "default", Amount: "+0"}
	if err := wc.Decode(&sp); err != nil {
		return nil, err
	}
	r := &ScaleRequest{Namespace: sp.Namespace, Name: sp.Name, Limits: Limits{Min: sp.Min, Max: sp.Max}}
	if r.Namespace == "" {
		r.Namespace = "default"
	}
	if sp.Amount == "" {
		sp.Amount = "+0"
	}
	var err error
	if r.Amount, err = ParseAmount(sp.Amount); err != nil {
		return nil, err
	}
	if r.Limits.Max > 0 && r.Limits.Min > r.Limits.Max {
		return nil, fmt.Errorf("min %d is above max %d", r.Limits.Min, r.Limits.Max)
	}
	if err := ValidateTarget(r.Namespace, r.Name); err != nil {
		return nil, err
	}
	if m := sp.Master; m != nil && m.Host != "" {
		t := SSHTarget{Host: m.Host, Port: m.Port, User: cmp.Or(sp.SSHUser, m.User), KeyFile: cmp.Or(sp.SSHKeyFile, m.KeyFile),
			KnownHosts: cmp.Or(sp.KnownHosts, m.KnownHosts)}
		r.Transport, r.scaler = "ssh", KubectlScaler{Runner: p.SSH(t), Kubectl: m.Kubectl}
		return r, nil
	}
	if sp.Cluster == nil {
		return nil, fmt.Errorf("kube_scale needs either a master (kubectl over ssh) or a cluster (client-go) parameter")
	}
	client, err := p.Client(sp.Cluster.Kubeconfig, sp.Cluster.Context)
	if err != nil {
		return nil, err
	}
	r.Transport, r.scaler = "client-go", ClientScaler{Client: client}
	return r, nil
}

func (p *Plugin) scaleWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	r, err := p.scaleRequest(wc)
	if err != nil {
		return fmt.Errorf("kube_scale: %w", err)
	}
	if wc.DryRun() {
		wc.Event("info", fmt.Sprintf("would scale deployment %s/%s %s (min %d, max %d) via %s", r.Namespace, r.Name, r.Amount.Describe(), r.Limits.Min, r.Limits.Max, r.Transport))
		return nil
	}
	wc.Event("info", fmt.Sprintf("scaling deployment %s/%s %s via %s", r.Namespace, r.Name, r.Amount.Describe(), r.Transport))
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
