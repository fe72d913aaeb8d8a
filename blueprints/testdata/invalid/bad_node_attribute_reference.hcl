node "database" {}
node "web" {
  properties = { x = node.database.propertys }
}
