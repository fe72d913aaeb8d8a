# web's load, polled from a Prometheus server (input.prom_url) by a
# `source` block: "up" scales web up on high values, "down" scales it down
# on low ones and holds on missing data (the default).
imports = ["webapp.hcl"]
input "prom_url" {}

source "load" {
  kind     = "prometheus"
  url      = input.prom_url
  query    = "max by (instance) (orch_test_load)"
  metric   = "load"
  node     = node.web
  interval = "1s"
}

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" {}
}

policy "up" {
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.web]
  properties = {
    service_selector   = "\\.load\\."
    scale_threshold    = 70
    moving_window_size = "2s"
    cooldown_time      = "4s"
  }
  trigger "scale" {
    workflow   = workflow.scale
    parameters = { amount = "+1" }
  }
}

policy "down" {
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.web]
  properties = {
    service_selector   = "\\.load\\."
    scale_threshold    = 20
    scale_limit        = 0
    scale_direction    = ">"
    moving_window_size = "2s"
    cooldown_time      = "4s"
  }
  trigger "scale" {
    workflow   = workflow.scale
    parameters = { amount = "-1" }
  }
}
