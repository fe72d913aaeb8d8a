node "web" {
  operation "create" {
    implementation = "script"
    max_retries    = -1
  }
}
