node "web" {
  instances { max = 5 }
}

policy_type "busy" {
  condition "high" { when = mean(window("cpu", "30s")) > 80 }
}

policy "grow" {
  type    = policy_type.busy
  targets = [node.web]
  trigger "high" {
    workflow   = workflow.scale
    parameters = { scalable_entity_name = "web", delt = 1 }
  }
}
