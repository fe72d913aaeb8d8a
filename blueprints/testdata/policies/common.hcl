# Shared by the policy corpus: a node to target and a workflow to trigger.
node "web" {}
workflow "kube_scale" { uses = "kubernetes.scale" }
