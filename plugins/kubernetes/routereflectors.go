package kubernetes

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/calico"
)

// routeReflectorsWorkflow chooses the cluster's BGP route reflectors and
// applies them (calico.Cluster.Apply). Parameters, as Calico's autoscaler:
// cluster (a kubernetes.cluster node), min, max, ratio, zone_label,
// incompatible_labels (list), route_reflector_cluster_id, topology
// ("single" or "multi"), and label, node_selector, mesh_config.
// routeReflectorParams are the route-reflector workflow's parameters.
type routeReflectorParams struct {
	Cluster            *clusterRef `param:"cluster"`
	Min                int         `param:"min"`
	Max                int         `param:"max"`
	Ratio              float64     `param:"ratio"`
	ZoneLabel          string      `param:"zone_label"`
	IncompatibleLabels []string    `param:"incompatible_labels"`
	ClusterID          string      `param:"route_reflector_cluster_id"`
	Topology           string      `param:"topology"`
	Label              string      `param:"label"`
	NodeSelector       string      `param:"node_selector"`
	MeshConfig         string      `param:"mesh_config"`
}

func (p *Plugin) routeReflectorsWorkflow(ctx context.Context, wc plugins.WorkflowContext) error {
	var rp routeReflectorParams
	if err := wc.Decode(&rp); err != nil {
		return fmt.Errorf("route reflectors: %w", err)
	}
	if rp.Cluster == nil {
		return fmt.Errorf("route reflectors: parameter cluster (a kubernetes.cluster node) is required")
	}
	cfg := calico.Config{ZoneLabel: rp.ZoneLabel, Label: rp.Label, Topology: rp.Topology, ClusterID: rp.ClusterID,
		Min: rp.Min, Max: rp.Max, Ratio: rp.Ratio, IncompatibleLabels: rp.IncompatibleLabels}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("route reflectors: %w", err)
	}
	kube, err := p.Client(rp.Cluster.Kubeconfig, rp.Cluster.Context)
	if err != nil {
		return err
	}
	dyn, err := p.Dynamic(rp.Cluster.Kubeconfig, rp.Cluster.Context)
	if err != nil {
		return err
	}
	cl := calico.Cluster{Kube: kube, Dynamic: dyn, NodeSelector: rp.NodeSelector, MeshConfig: rp.MeshConfig}
	res, err := cl.Apply(ctx, cfg, wc.DryRun())
	if res != nil {
		explainTopology(wc, res)
	}
	if err != nil {
		return fmt.Errorf("route reflectors: %w", err)
	}
	return nil
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
