node "web" {}
policy_type "threshold" {
  condition "high" { when = node.web.name == "web" }
}
