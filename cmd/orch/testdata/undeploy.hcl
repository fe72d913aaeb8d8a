# The replicas' undeploy test: a node whose delete records its run and
# waits while the journal's hold file exists (testdata/record.sh), so the
# owner can be killed in the middle of an uninstall.
input "journal" {}

node_type "held" {
  property "path" { type = string }
  operation "delete" {
    implementation = "script"
    inputs         = { command = ["./record.sh"], JOURNAL = self.properties.path }
  }
}

node "app" {
  type       = "held"
  properties = { path = input.journal }
}
