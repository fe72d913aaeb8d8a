input "replicas" { default = 2 }
node "web" {
  properties = { count = input.replica }
}
