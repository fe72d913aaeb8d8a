# The primary cluster and a Deployment of the test's namespace named by
# input.app: webapp.hcl for tests that deploy one blueprint many times.
input "kubeconfig" {}
input "namespace" {}
input "app" {}

node "primary" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = "primary" }
}

node "web" {
  type         = "kubernetes.app"
  contained_in = node.primary
  properties   = { namespace = input.namespace, app = input.app }
}
