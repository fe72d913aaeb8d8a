node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "grow" {
  uses = "script.workflow"
  parameter "delta" { type = number }
}
workflow "maintenance" {
  step "grow" {
    inline = workflow.grow
  }
}
