policy_type "threshold" {
  condition "high" { when = mean(window("cpu", "30s")) > 90 }
}
node "web" {}
policy "p" {
  type    = policy_type.threshold
  targets = [node.wbe]
}
