# The replicas API test: a workflow that runs until it is cancelled (to
# cancel it through a replica that does not run it) and a policy (to list,
# pause and resume through a replica that does not evaluate it). No
# cluster: the workflow's operation sleeps on this machine.
node_type "sleeper" {
  operation "hold" {
    implementation = "script"
    inputs         = { command = ["sleep", "120"] }
  }
}

node "app" { type = "sleeper" }

workflow "hold" {
  description = "Sleep on the app node until cancelled."
  step "hold" {
    target         = node.app
    call_operation = "hold"
  }
}

policy_type "hot" {
  description = "The app's load above a limit."
  parameter "limit" { default = 90 }
  condition "hot" {
    direction = "up"
    when      = max(window("load", "5s")) > param.limit
  }
}

policy "load" {
  type    = policy_type.hot
  targets = [node.app]
  trigger "hot" { workflow = workflow.hold }
}
