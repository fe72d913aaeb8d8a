node_type "db" {
  property "port" { type = number }
}
node "database" {
  type = "db"
}
