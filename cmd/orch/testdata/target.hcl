# web kept at a load of 100 per host, as an HPA would: orch.target_value
# fires with the ratio, and kubernetes.scale sets ceil(current x ratio)
# from the replicas it reads on the cluster.
imports = ["webapp.hcl"]

workflow "scale" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = "web" }
  parameter "namespace" { default = input.namespace }
  parameter "amount" {}
}

policy "web_target" {
  initial_delay = "0s"
  type          = "orch.target_value"
  targets       = [node.web]
  properties = {
    metric                   = "load"
    target                   = 100
    window                   = "2s"
    scale_down_stabilization = "3s"
    cooldown_time            = "3s"
  }
  trigger "scale_up" {
    workflow   = workflow.scale
    parameters = { amount = "*${values.ratio}" }
  }
  trigger "scale_down" {
    workflow   = workflow.scale
    parameters = { amount = "*${values.ratio}" }
  }
}
