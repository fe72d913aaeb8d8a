policy_type "threshold" {
  condition "high" {}
}
