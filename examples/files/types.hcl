# Node types of the files example, imported by blueprint.hcl. The script
# plugin runs the command without a shell of ours; values reach the script
# only as environment variables, never spliced into a command line.

node_type "directory" {
  description = "A directory, created on install and removed (with what is left in it) on uninstall."
  property "path" { type = string }
  property "journal" {
    type    = string
    default = ""
  }
  operation "create" {
    implementation = "script"
    inputs = {
      command = ["./file.sh", "mkdir"]
      TARGET  = self.properties.path
      JOURNAL = self.properties.journal
    }
    timeout = "30s"
  }
  operation "delete" {
    implementation = "script"
    inputs = {
      command = ["./file.sh", "rmdir"]
      TARGET  = self.properties.path
      JOURNAL = self.properties.journal
    }
  }
}

node_type "file" {
  description = "A file with some content."
  property "path" { type = string }
  property "content" {
    type    = string
    default = ""
  }
  property "journal" {
    type    = string
    default = ""
  }
  operation "create" {
    implementation = "script"
    inputs = {
      command = ["./file.sh", "write"]
      TARGET  = self.properties.path
      CONTENT = self.properties.content
      JOURNAL = self.properties.journal
    }
    timeout = "30s"
  }
  operation "delete" {
    implementation = "script"
    inputs = {
      command = ["./file.sh", "remove"]
      TARGET  = self.properties.path
      JOURNAL = self.properties.journal
    }
  }
}
