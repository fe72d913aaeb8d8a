# Three policies on the web node's cpu, one of them of a type written here:
# the replay test runs a stream through them under orch serve --dry-run and
# through orch policies replay, and compares the decisions.
imports = ["webapp.hcl"]

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" { default = "+1" }
}

policy_type "spike" {
  description = "The highest sample of the last few seconds above a limit."
  parameter "limit" { type = number }
  parameter "cooldown_time" { default = "2s" }
  condition "spike" {
    direction = "up"
    when      = max(window("cpu", "3s")) > param.limit
  }
}

policy "cpu_up" {
  type          = "orch.scale_threshold"
  targets       = [node.web]
  initial_delay = "0s"
  properties    = { service_selector = "\\.cpu\\.", scale_threshold = 70, moving_window_size = "2s", cooldown_time = "3s" }
  trigger "scale" { workflow = workflow.scale }
}

policy "cpu_ewma" {
  type          = "orch.ewma_threshold"
  targets       = [node.web]
  initial_delay = "0s"
  properties    = { metric = "cpu", window = "5s", alpha = 0.5, scale_up_above = 80, scale_down_below = 20 }
  trigger "scale_up" { workflow = workflow.scale }
  trigger "scale_down" {
    workflow   = workflow.scale
    parameters = { amount = "-1" }
  }
}

policy "cpu_spike" {
  type          = policy_type.spike
  targets       = [node.web]
  initial_delay = "0s"
  properties    = { limit = 90 }
  trigger "spike" { workflow = workflow.scale }
}
