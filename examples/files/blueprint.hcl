# A blueprint that needs no cluster: every node is a file on this machine,
# created by the script plugin on install and removed on uninstall. The
# config file lives in the directory (contained_in), the app needs the config
# (depends_on), so install runs dir -> config -> app, and uninstall the reverse.
#
#   orch deploy examples/files/blueprint.hcl -i dir=/tmp/orch-files
#   orch deployments show blueprint
#   orch undeploy blueprint

imports = ["types.hcl"]

input "dir" {
  type        = string
  default     = "/tmp/orch-files"
  description = "Directory the files are created in."
}

input "greeting" {
  type    = string
  default = "hello"
}

input "journal" {
  type        = string
  default     = ""
  description = "If set, every operation appends a line to this file (tests read the order)."
}

node "dir" {
  type       = "directory"
  properties = { path = input.dir, journal = input.journal }
}

node "config" {
  type         = "file"
  contained_in = node.dir
  properties = {
    path    = "${node.dir.properties.path}/app.conf"
    content = "greeting = ${upper(input.greeting)}"
    journal = input.journal
  }
}

node "app" {
  type       = "file"
  depends_on = [node.config]
  properties = {
    path    = "${input.dir}/app.txt"
    content = format("reads %s", node.config.properties.path)
    journal = input.journal
  }
}

node "cache" {
  type         = "file"
  contained_in = node.dir
  properties = {
    path    = "${input.dir}/cache.txt"
    content = "independent of config: installed in parallel with it"
    journal = input.journal
  }
}

output "config_path" {
  value = node.config.properties.path
}
