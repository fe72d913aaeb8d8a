workflow "scale" {
  uses = "script.workflw"
}
