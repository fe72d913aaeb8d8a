imports = ["common.hcl"]
policy "bookings_rps" {
  type       = "orch.rps_burst"
  targets    = [node.web]
  properties = { burst_value = 100, reconcile_value = 60, throttle_delay = "2 minutes" }
  trigger "burst" { workflow = workflow.kube_scale }
}
