imports = ["common.hcl"]
policy "bookings_rps" {
  type       = "orch.rps_burst"
  targets    = [node.web]
  properties = { burst_value = 100, reconcile_value = 150 }
  trigger "burst" { workflow = workflow.kube_scale }
}
