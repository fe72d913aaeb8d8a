# Two policies reading the metric the selector input picks (cpu from the
# broker, or rps polled from the mesh): "down" scales web down on low values
# and holds on missing data (the default); "up" scales api up on high values,
# and also while its data is missing (on_missing_data = "scale_up"), once
# per cooldown.
imports = ["webapp.hcl"]
input "selector" {}

node "api" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = input.namespace, app = "api" }
}

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" {}
  parameter "namespace" { default = input.namespace }
  parameter "amount" {}
}

policy "down" {
  type    = "orch.scale_threshold"
  targets = [node.web]
  properties = {
    service_selector   = input.selector
    scale_threshold    = 20
    scale_limit        = 0
    scale_direction    = ">"
    moving_window_size = "2s"
    cooldown_time      = "4s"
  }
  trigger "scale" {
    workflow   = workflow.scale
    parameters = { name = "web", amount = "-1" }
  }
}

policy "up" {
  type            = "orch.scale_threshold"
  targets         = [node.api]
  on_missing_data = "scale_up"
  properties = {
    service_selector   = input.selector
    scale_threshold    = 70
    moving_window_size = "2s"
    cooldown_time      = "4s"
  }
  trigger "scale" {
    workflow   = workflow.scale
    parameters = { name = "api", amount = "+1" }
  }
}
