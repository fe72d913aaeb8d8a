policy_type "threshold" {
  parameter "limit" { type = number }
}
