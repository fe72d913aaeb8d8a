relationship_type "app_db" {
  derived_from = "orch.ConnectedTo"
  operation "establish" {
    side           = "targt"
    implementation = "script"
    inputs         = { command = ["true"] }
  }
}
node "db" {}
node "app" {
  relationship {
    type   = "app_db"
    target = node.db
  }
}
