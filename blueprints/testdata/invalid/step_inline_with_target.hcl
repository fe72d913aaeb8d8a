node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "other" {
  step "drain" {
    target         = node.web
    call_operation = "drain"
  }
}
workflow "maintenance" {
  step "run" {
    target = node.web
    inline = workflow.other
  }
}
