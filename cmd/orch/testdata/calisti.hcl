# web's rps polled from Calisti by a blueprint's own source (not serve's
# --mesh-url), with a token from a sensitive input.
imports = ["webapp.hcl"]
input "mesh_url" {}
input "mesh_token" { sensitive = true }

source "mesh" {
  kind         = "calisti"
  url          = input.mesh_url
  node         = node.web
  interval     = "1s"
  bearer_token = input.mesh_token
}

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" { default = "+1" }
}

policy "web_rps" {
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.web]
  properties = {
    service_selector   = "\\.rps\\."
    scale_threshold    = 70
    moving_window_size = "2s"
    cooldown_time      = "30s"
  }
  trigger "scale" { workflow = workflow.scale }
}
