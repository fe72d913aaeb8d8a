node_type "db" {
  property "port" { type = number }
}
node "database" {
  type       = "db"
  properties = { port = 1, prot = 2 }
}
