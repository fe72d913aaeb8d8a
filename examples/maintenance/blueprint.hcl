# Maintenance written in the blueprint: a workflow of steps (TOSCA's
# imperative workflows) over a web tier and its database on Kubernetes.
# `maintenance` drains the web tier (inlining the kubernetes.scale workflow),
# backs the database up, and brings the web tier back; if the backup fails it
# notifies instead and leaves the web tier drained. `grow` inlines the scale
# and then records it. Both refuse to start unless the database runs.
#
#   orch deploy examples/maintenance/blueprint.hcl -d maint -i kubeconfig=$ORCH_KUBECONFIG
#   orch workflow run maintenance -d maint --dry-run
#   orch workflow run maintenance -d maint
#   orch workflow run maintenance -d maint -p backup_dir=/dev/null/backups  # the failure path
#   orch workflow run grow -d maint -p by=+1

input "kubeconfig" { default = "" }
input "context" { default = "primary" }
input "namespace" { default = "maintenance" }
input "backup_dir" {
  default     = "/tmp/orch-maintenance"
  description = "Where backups go (a file per backup), and the notifications file."
}

node "cluster" {
  type       = "kubernetes.cluster"
  properties = { kubeconfig = input.kubeconfig, context = input.context }
}

node "web" {
  type         = "kubernetes.app"
  contained_in = node.cluster
  properties = {
    namespace = input.namespace
    app       = "web"
    manifests = [{
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "web", labels = { app = "web" } }
      spec = {
        replicas = 2
        selector = { matchLabels = { app = "web" } }
        template = {
          metadata = { labels = { app = "web" } }
          spec     = { containers = [{ name = "web", image = "registry.local/web:1" }] }
        }
      }
    }]
  }
}

# The database: a Kubernetes app with two operations of its own, run by
# ops.sh (the script plugin).
node_type "maintenance.Database" {
  derived_from = "kubernetes.app"
  operation "backup" {
    implementation = "script"
    inputs         = { command = ["./ops.sh", "backup"], BACKUP_DIR = input.backup_dir }
  }
  operation "notify" {
    implementation = "script"
    inputs         = { command = ["./ops.sh", "notify"], BACKUP_DIR = input.backup_dir }
  }
}

node "db" {
  type         = "maintenance.Database"
  contained_in = node.cluster
  properties = {
    namespace = input.namespace
    app       = "db"
    manifests = [{
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = { name = "db", labels = { app = "db" } }
      spec = {
        replicas = 1
        selector = { matchLabels = { app = "db" } }
        template = {
          metadata = { labels = { app = "db" } }
          spec     = { containers = [{ name = "db", image = "registry.local/db:1" }] }
        }
      }
    }]
  }
}

# kube_scale on the web tier, through client-go: the steps inline it.
workflow "scale_web" {
  uses = "kubernetes.scale"
  parameter "cluster" { default = node.cluster }
  parameter "name" { default = node.web.properties.app }
  parameter "namespace" { default = node.web.properties.namespace }
  parameter "amount" {
    type    = string
    default = "+0"
  }
  parameter "min" {
    type    = number
    default = 0
  }
  parameter "max" {
    type    = number
    default = 10
  }
}

workflow "maintenance" {
  description = "Drain the web tier, back up the database, bring the web tier back; if the backup fails, notify."
  parameter "replicas" {
    type        = string
    default     = "2"
    description = "The web tier's replicas after the maintenance."
  }
  parameter "backup_dir" {
    type    = string
    default = input.backup_dir
  }

  precondition {
    target        = node.db
    condition     = self.state == "started"
    error_message = "the database must be running to be backed up"
  }

  step "drain" {
    inline     = workflow.scale_web
    parameters = { amount = "0" }
    on_success = [step.backup]
  }
  step "backup" {
    target         = node.db
    call_operation = "backup"
    inputs         = { BACKUP_DIR = param.backup_dir }
    on_success     = [step.restore]
    on_failure     = [step.notify]
  }
  step "restore" {
    inline     = workflow.scale_web
    parameters = { amount = param.replicas }
  }
  step "notify" {
    target         = node.db
    call_operation = "notify"
    inputs         = { MESSAGE = "backup to ${param.backup_dir} failed; the web tier is left drained" }
  }
}

workflow "grow" {
  description = "Burst the web tier by an amount, then record it beside the backups."
  parameter "by" {
    type    = string
    default = "+1"
  }
  precondition {
    target        = node.db
    condition     = self.state == "started"
    error_message = "the database must be running"
  }
  step "scale" {
    inline     = workflow.scale_web
    parameters = { amount = param.by }
    on_success = [step.record]
  }
  step "record" {
    target         = node.db
    call_operation = "notify"
    inputs         = { MESSAGE = "web tier scaled by ${param.by}" }
  }
}
