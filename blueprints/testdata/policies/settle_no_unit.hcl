node "cluster" {
  type = "kubernetes.cluster"
}
workflow "rr" { uses = "kubernetes.route_reflectors" }
policy "nodes" {
  type       = "orch.node_changes"
  targets    = [node.cluster]
  properties = { settle = "2" }
  trigger "changed" { workflow = workflow.rr }
}
