node_type "web" {
  property "port" { type = number }
  property "port" { type = string }
}
