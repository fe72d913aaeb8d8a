node "database" {}
node "web" {
  properties = { db = node.databse.name }
}
