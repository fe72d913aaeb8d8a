node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "maintenance" {
  precondition {
    target        = node.db
    condition     = self.status == "started"
    error_message = "the database must be started"
  }
  step "drain" {
    target         = node.web
    call_operation = "drain"
  }
}
