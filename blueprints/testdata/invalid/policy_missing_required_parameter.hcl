policy_type "threshold" {
  parameter "limit" { type = number }
  condition "high" { when = mean(window("cpu", "30s")) > param.limit }
}
policy "p" {
  type = policy_type.threshold
}
