# Story 3: Calico route-reflector topology. As nodes come and go, orch picks
# which nodes act as BGP route reflectors: expected = min(ready, clamp(
# ceil(ready x ratio), min, max)), spread evenly over the zones, keeping
# current reflectors and dropping cordoned or unhealthy ones at once. It marks
# them with the calico-route-reflector label and the cluster ID annotation,
# writes the BGPPeers that peer nodes with their reflectors, and switches the
# node-to-node mesh off once reflectors exist (back on if none is left).
#
#   source ~/.local/state/orch/testenv/env
#   orch deploy examples/route-reflectors/blueprint.hcl -d rr
#   orch workflow run route_reflectors -d rr --dry-run   # what it would change
#   orch workflow run route_reflectors -d rr
#   orch serve                                           # and it follows the nodes

input "kubeconfig" { default = "" }
input "context" { default = "primary" }
input "topology" {
  default     = "multi"
  description = "\"multi\": one cluster ID per zone (224.0.0.N), the seed's; \"single\": one for all."
}
input "ratio" {
  type    = number
  default = 0.005
}
input "node_selector" {
  default     = ""
  description = "Only the nodes this label selector picks (a node pool); empty: every node."
}
input "mesh_config" {
  default     = "default"
  description = "The BGPConfiguration whose nodeToNodeMeshEnabled is switched; \"-\" leaves it alone."
}

node "cluster" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = input.context }
}

workflow "route_reflectors" {
  uses        = "kubernetes.route_reflectors"
  description = "Choose the route reflectors and apply labels, cluster IDs, BGPPeers and the mesh setting."
  parameter "cluster" { default = node.cluster }
  parameter "min" {
    type    = number
    default = 3
  }
  parameter "max" {
    type    = number
    default = 10
  }
  parameter "ratio" {
    type    = number
    default = input.ratio
  }
  parameter "zone_label" { default = "topology.kubernetes.io/zone" }
  parameter "incompatible_labels" {
    default     = []
    description = "Labels that exclude a node: \"key\" (any value) or \"key=value\"."
  }
  parameter "topology" { default = input.topology }
  parameter "route_reflector_cluster_id" { default = "224.0.0.1" }
  parameter "node_selector" { default = input.node_selector }
  parameter "mesh_config" { default = input.mesh_config }
}

# With orch serve running, the topology follows the nodes: serve watches the
# cluster's nodes, and every change (once they have settled for a second)
# and every resync runs route_reflectors, which converges from whatever state
# it finds.
policy "topology" {
  type       = "orch.node_changes"
  targets    = [node.cluster]
  properties = { settle = "1s", resync = "5m", node_selector = input.node_selector }
  trigger "changed" { workflow = workflow.route_reflectors }
}
