# A policy whose trigger scales the web Deployment through client-go, with a
# one-second window and cooldown: the broker-restart test breaches it before
# and after a restart of the broker; the collectd test with collectd's cpu
# values (cpu.percent.user).
imports = ["webapp.hcl"]

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" { default = "+1" }
}

policy "web_cpu" {
  # The tests publish one breach right after serve starts: no start-up grace.
  initial_delay = "0s"
  type          = "orch.scale_threshold"
  targets       = [node.web]
  properties = {
    service_selector   = "\\.cpu\\."
    scale_threshold    = 70
    moving_window_size = "1s"
    cooldown_time      = "1s"
  }
  trigger "scale" { workflow = workflow.scale }
}
