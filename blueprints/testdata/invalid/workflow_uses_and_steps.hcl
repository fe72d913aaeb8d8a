node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "maintenance" {
  uses = "script.workflow"
  step "drain" {
    target         = node.web
    call_operation = "drain"
  }
}
