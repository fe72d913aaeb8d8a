node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "maintenance" {
  step "drain" {
    target         = node.web
    call_operation = "drain"
    on_success     = [step.backup]
  }
  step "backup" {
    target         = node.db
    call_operation = "backup"
    on_failure     = [step.drain]
  }
}
