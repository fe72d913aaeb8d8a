node "app" {
  operation "create" {
    implementation = "script"
    inputs         = { command = ["true"], DB = target.attributes.address }
  }
}
