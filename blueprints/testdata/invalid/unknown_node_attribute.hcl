node "web" {
  typ = "orch.Root"
}
