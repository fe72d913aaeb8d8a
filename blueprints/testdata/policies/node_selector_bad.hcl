node "cluster" {
  type = "kubernetes.cluster"
}
workflow "rr" { uses = "kubernetes.route_reflectors" }
policy "nodes" {
  type       = "orch.node_changes"
  targets    = [node.cluster]
  properties = { settle = "1s", node_selector = "zone in (a" }
  trigger "changed" { workflow = workflow.rr }
}
