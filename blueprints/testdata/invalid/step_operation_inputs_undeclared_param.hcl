node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "maintenance" {
  parameter "reason" { default = "upgrade" }
  step "drain" {
    target         = node.web
    call_operation = "drain"
    inputs         = { REASON = param.reson }
  }
}
