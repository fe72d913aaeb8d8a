node "web" {
  operation "create" {
    implementation = "scrpit"
  }
}
