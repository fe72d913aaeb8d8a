relationship_type "app_db" {
  derived_from = "orch.ConectedTo"
}
node "db" {}
node "app" {
  relationship {
    type            = "app_bd"
    target          = node.db
    connection_type = "all_to_one"
  }
}
