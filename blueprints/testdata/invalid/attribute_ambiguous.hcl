node "host" {
  instances { default = 2 }
}
node "app" {
  contained_in = node.host
}
node "lb" {
  operation "configure" {
    implementation = "script"
    inputs         = { command = ["true"], BACKEND = node.app.attributes.address }
  }
}
