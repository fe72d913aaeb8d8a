# The replica failover tests: each deployment scales its own Deployment
# (input.app) on the primary cluster by one when its cpu breaches 70, with
# a cooldown, and its workflow first records its run in a journal
# ("ran EXECUTION DEPLOYMENT"), so every run of every firing is counted.
imports = ["webapp.hcl"]

input "journal" {}
input "cooldown" { default = "10s" }

node_type "recorder" {
  property "path" { type = string }
  operation "record" {
    implementation = "script"
    inputs         = { command = ["./record.sh"], JOURNAL = self.properties.path }
  }
}

node "journal" {
  type       = "recorder"
  properties = { path = input.journal }
}

workflow "grow" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.primary }
  parameter "name" { default = input.app }
  parameter "namespace" { default = input.namespace }
  parameter "amount" { default = "+1" }
}

workflow "scale_up" {
  description = "Record the run, then scale the app by one."
  step "record" {
    target         = node.journal
    call_operation = "record"
    on_success     = [step.grow]
  }
  step "grow" { inline = workflow.grow }
}

policy "cpu" {
  type          = "orch.scale_threshold"
  targets       = [node.web]
  initial_delay = "0s"
  properties = {
    service_selector   = "\\.cpu\\."
    scale_threshold    = 70
    moving_window_size = "1s"
    cooldown_time      = input.cooldown
  }
  trigger "scale" { workflow = workflow.scale_up }
}
