node "db" {}
node "app" {
  properties = { db_host = node.db.attributes.ip }
}
