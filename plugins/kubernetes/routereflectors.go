package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/calico"
)

// routeReflectorsWorkflow chooses the cluster's BGP route reflectors and
// applies them (calico.Cluster.Apply). Parameters, as Calico's autoscaler:
// cluster (a kubernetes.cluster node), min, max, ratio, zone_label,
// incompatible_labels (list), route_reflector_cluster_id, topology
// ("single" or "multi"), and label, node_selector, mesh_config.
func (p *Plugin) routeReflectorsWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	params := wc.Parameters()
	cluster, ok := nodeProps(params["cluster"])
	if !ok {
		return fmt.Errorf("route reflectors: parameter cluster (a kubernetes.cluster node) is required")
	}
	cfg, err := routeReflectorConfig(params)
	if err != nil {
		return fmt.Errorf("route reflectors: %w", err)
	}
	kube, err := p.Client(str(cluster, "kubeconfig"), str(cluster, "context"))
	if err != nil {
		return err
	}
	dyn, err := p.Dynamic(str(cluster, "kubeconfig"), str(cluster, "context"))
	if err != nil {
		return err
	}
	cl := calico.Cluster{Kube: kube, Dynamic: dyn, NodeSelector: str(params, "node_selector"), MeshConfig: str(params, "mesh_config")}
	res, err := cl.Apply(ctx, cfg, wc.DryRun())
	if res != nil {
		explainTopology(wc, res)
	}
	if err != nil {
		return fmt.Errorf("route reflectors: %w", err)
	}
	return nil
}

func routeReflectorConfig(params map[string]any) (calico.Config, error) {
	c := calico.Config{ZoneLabel: str(params, "zone_label"), Label: str(params, "label"),
		Topology: str(params, "topology"), ClusterID: str(params, "route_reflector_cluster_id")}
	lo, err := num(params, "min")
	if err != nil {
		return c, err
	}
	hi, err := num(params, "max")
	if err != nil {
		return c, err
	}
	c.Min, c.Max = int(lo), int(hi)
	switch v := params["ratio"].(type) {
	case nil:
	case float64:
		c.Ratio = v
	case int64:
		c.Ratio = float64(v)
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("ratio %q: want a number", v)
		}
		c.Ratio = f
	default:
		return c, fmt.Errorf("ratio %v: want a number", v)
	}
	switch v := params["incompatible_labels"].(type) {
	case nil:
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return c, fmt.Errorf("incompatible_labels: want a list of strings")
			}
			c.IncompatibleLabels = append(c.IncompatibleLabels, s)
		}
	case string:
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.IncompatibleLabels = append(c.IncompatibleLabels, s)
			}
		}
	default:
		return c, fmt.Errorf("incompatible_labels: want a list of strings")
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// explainTopology records an event for every change (or, in a dry run,
// every change it would make).
func explainTopology(wc plugins.WorkflowContext, res *calico.Result) {
	would := ""
	if wc.DryRun() {
		would = "would "
	}
	t := res.Topology
	wc.Event("info", fmt.Sprintf("%d eligible node(s) want %d route reflector(s): %s", t.Eligible, t.Expected, strings.Join(t.Reflectors, ", ")))
	for _, name := range slices.Sorted(maps.Keys(res.Change.Label)) {
		wc.Event("info", fmt.Sprintf("%smark %s as a route reflector (cluster ID %s)", would, name, res.Change.Label[name]))
	}
	for _, name := range res.Change.Unlabel {
		why := t.Ineligible[name]
		if why == "" {
			why = "no longer needed"
		}
		wc.Event("info", fmt.Sprintf("%sremove the route-reflector role from %s (%s)", would, name, why))
	}
	for _, name := range res.PeersWritten {
		wc.Event("info", fmt.Sprintf("%swrite BGPPeer %s", would, name))
	}
	for _, name := range res.PeersDeleted {
		wc.Event("info", fmt.Sprintf("%sdelete BGPPeer %s", would, name))
	}
	if res.MeshChanged {
		wc.Event("info", fmt.Sprintf("%sset nodeToNodeMeshEnabled to %v", would, res.Mesh))
	}
	if res.Change.Empty() && len(res.PeersWritten)+len(res.PeersDeleted) == 0 && !res.MeshChanged {
		wc.Event("info", "the topology is as it should be; nothing to change")
	}
}
