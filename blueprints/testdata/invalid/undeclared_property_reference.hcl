node_type "db" {
  property "port" { type = number }
}
node "database" {
  type       = "db"
  properties = { port = 5432 }
}
node "web" {
  properties = { db_port = node.database.properties.prot }
}
