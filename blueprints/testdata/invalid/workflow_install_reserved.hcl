workflow "install" {
  uses = "script.workflow"
}
