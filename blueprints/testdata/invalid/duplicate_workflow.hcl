workflow "scale" { uses = "script.workflow" }
workflow "scale" { uses = "script.workflow" }
