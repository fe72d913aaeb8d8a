# Story 1: scale a microservice by increment (Cloudify's kube_scale). The
# workflow runs kubectl on the master over SSH, as the original did, with
# the host key verified against known_hosts; a second workflow does the same
# through client-go. Inputs come from the test environment's env file:
#
#   source ~/.local/state/orch/testenv/env
#   orch deploy examples/scale/blueprint.hcl -d scale \
#     -i ssh_port=$ORCH_SSH_PORT -i ssh_user=$ORCH_SSH_USER \
#     -i ssh_keyfilename=$ORCH_SSH_KEY -i known_hosts=$ORCH_SSH_KNOWN_HOSTS
#   orch workflow run kube_scale -d scale -p amount=+1
#   orch workflow run kube_scale_api -d scale -p amount=-1

input "ssh_host" { default = "127.0.0.1" }
input "ssh_port" {
  type    = number
  default = 22
}
input "ssh_user" {}
input "ssh_keyfilename" {}
input "known_hosts" { default = "" }
input "kubeconfig" { default = "" }
input "context" { default = "primary" }
input "namespace" { default = "default" }
input "service" { default = "bookings" }

node "kubernetes" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = input.context }
}

node "master" {
  type = "kubernetes.master"
  properties = {
    host            = input.ssh_host
    port            = input.ssh_port
    ssh_user        = input.ssh_user
    ssh_keyfilename = input.ssh_keyfilename
    known_hosts     = input.known_hosts
  }
}

node "bookings" {
  type         = "kubernetes.app"
  contained_in = node.kubernetes
  properties   = { namespace = input.namespace, app = input.service }
}

# The seed's parameters: master, ssh_user, ssh_keyfilename, name, amount.
workflow "kube_scale" {
  uses        = "kubernetes.scale"
  description = "Scale a Deployment by kubectl on the master, over SSH."
  parameter "master" { default = node.master }
  parameter "ssh_user" { default = node.master.properties.ssh_user }
  parameter "ssh_keyfilename" { default = node.master.properties.ssh_keyfilename }
  parameter "name" { default = node.bookings.properties.app }
  parameter "namespace" { default = node.bookings.properties.namespace }
  parameter "amount" {
    type        = string
    default     = "+0"
    description = "\"2\" sets the replicas, \"+1\" / \"-1\" change them."
  }
  parameter "min" {
    type    = number
    default = 1
  }
  parameter "max" {
    type    = number
    default = 10
  }
}

workflow "kube_scale_api" {
  uses        = "kubernetes.scale"
  description = "The same through client-go's scale subresource."
  parameter "cluster" { default = node.kubernetes }
  parameter "name" { default = node.bookings.properties.app }
  parameter "namespace" { default = node.bookings.properties.namespace }
  parameter "amount" {
    type    = string
    default = "+0"
  }
  parameter "min" {
    type    = number
    default = 1
  }
  parameter "max" {
    type    = number
    default = 10
  }
}

# scale.clj's rule on the bookings service's cpu (published by Diamond, or by
# `orch metrics publish -d scale --node bookings --name cpu --path total`):
# scale up while fewer than 5 hosts report and their mean is above 70; scale
# down (scale.clj's ">" direction) while more than 0 hosts report and the mean
# is below 30. Each policy cools down on its own, and the cooldowns survive a
# restart of orch serve.
input "up_threshold" {
  type    = number
  default = 70
}
input "down_threshold" {
  type    = number
  default = 30
}

policy "bookings_cpu_up" {
  type    = "orch.scale_threshold"
  targets = [node.bookings]
  properties = {
    service_selector = "\\.cpu\\."
    scale_threshold  = input.up_threshold
    scale_limit      = 5
    scale_direction  = "<"
    cooldown_time    = "30s"
  }
  trigger "scale" {
    workflow   = workflow.kube_scale
    parameters = { amount = "+1" }
  }
}

policy "bookings_cpu_down" {
  type    = "orch.scale_threshold"
  targets = [node.bookings]
  properties = {
    service_selector = "\\.cpu\\."
    scale_threshold  = input.down_threshold
    scale_limit      = 0
    scale_direction  = ">"
    cooldown_time    = "30s"
  }
  trigger "scale" {
    workflow   = workflow.kube_scale
    parameters = { amount = "-1" }
  }
}
