node "web" {
  operation "create" {
    implementation = "script"
    timeout        = "30 s"
  }
}
