# Cloudify's nodecellar, in orch's shape and with no cloud: hosts with the
# nodecellar app on each, connected to a MongoDB on its own host. The database
# publishes its address and port as runtime attributes when it is created; the
# app's relationship operations read them (target.attributes) when they run.
# Every operation is ./op.sh, which records itself in the journal.
#
#   orch deploy examples/nodecellar/blueprint.hcl -d nodecellar
#   orch deployments show nodecellar
#   orch workflow run scale -d nodecellar -p scalable_entity_name=host -p delta=1
#   orch workflow run execute_operation -d nodecellar -p operation=backup -p 'type_names=["nodecellar.Mongo"]'
#   orch undeploy nodecellar

input "journal" {
  default     = "/tmp/nodecellar/journal"
  description = "The file every operation appends a line to."
}

# Every lifecycle operation of every node runs op.sh with its own name.
node_type "nodecellar.Component" {
  operation "create" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "create"], JOURNAL = input.journal }
  }
  operation "configure" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "configure"], JOURNAL = input.journal }
  }
  operation "start" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "start"], JOURNAL = input.journal }
  }
  operation "stop" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "stop"], JOURNAL = input.journal }
  }
  operation "delete" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "delete"], JOURNAL = input.journal }
  }
}

node_type "nodecellar.Host" {
  derived_from = "nodecellar.Component"
}

node_type "nodecellar.Mongo" {
  derived_from = "nodecellar.Component"
  property "port" {
    type    = number
    default = 27017
  }
  operation "create" {
    implementation = "script"
    inputs = {
      command = ["./op.sh", "create"]
      JOURNAL = input.journal
      PUBLISH = "address=127.0.0.1 port=${self.properties.port}"
    }
  }
  # A custom operation: run it with execute_operation.
  operation "backup" {
    implementation = "script"
    inputs         = { command = ["./op.sh", "backup"], JOURNAL = input.journal, DETAIL = "to /var/backups" }
  }
}

# The app connects to the database: before it is configured it learns the
# database's address (runtime attributes of the target), once both run it
# registers, and before it stops it unregisters.
relationship_type "nodecellar.ConnectedToMongo" {
  derived_from = "orch.ConnectedTo"
  operation "preconfigure" {
    implementation = "script"
    inputs = {
      command = ["./op.sh", "preconfigure"]
      JOURNAL = input.journal
      DETAIL  = "${source.id}->${target.id} mongo=${target.attributes.address}:${target.attributes.port}"
    }
  }
  operation "establish" {
    side           = "target"
    implementation = "script"
    inputs         = { command = ["./op.sh", "establish"], JOURNAL = input.journal, DETAIL = "${source.id}->${target.id}" }
  }
  operation "unlink" {
    side           = "target"
    implementation = "script"
    inputs         = { command = ["./op.sh", "unlink"], JOURNAL = input.journal, DETAIL = "${source.id}->${target.id}" }
  }
}

node "mongo_host" {
  type = "nodecellar.Host"
}

node "mongod" {
  type         = "nodecellar.Mongo"
  contained_in = node.mongo_host
}

node "host" {
  type = "nodecellar.Host"
  instances {
    default = 2
    min     = 1
    max     = 3
  }
}

node "nodecellar" {
  type         = "nodecellar.Component"
  contained_in = node.host
  relationship {
    type   = "nodecellar.ConnectedToMongo"
    target = node.mongod
  }
}

output "mongo_url" {
  value       = "mongodb://${node.mongod.attributes.address}:${node.mongod.attributes.port}/nodecellar"
  description = "Where the apps find the database (its runtime attributes)."
}
