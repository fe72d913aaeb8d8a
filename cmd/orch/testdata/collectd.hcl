# The collectd test: scale.clj on the cpu collectd reports for the web
# node (cpu.percent.user), one-second window and cooldown.
imports = ["webapp.hcl"]

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" { default = "+1" }
}

policy "cpu" {
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.web]
  properties = {
    service_selector   = "\\.cpu\\.percent\\.user"
    scale_threshold    = 70
    moving_window_size = "1s"
    cooldown_time      = "1s"
  }
  trigger "scale" { workflow = workflow.scale }
}
