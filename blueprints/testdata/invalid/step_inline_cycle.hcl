node_type "app" {
  operation "drain" { implementation = "script" }
  operation "backup" { implementation = "script" }
}
node "web" { type = "app" }
node "db" { type = "app" }
workflow "a" {
  step "b" { inline = workflow.b }
}
workflow "b" {
  step "a" { inline = workflow.a }
}
