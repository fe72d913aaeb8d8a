node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "maintenance" {
  step "reinstall" {
    target   = node.web
    delegate = "reinstall"
  }
}
