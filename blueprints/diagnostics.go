package blueprints

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// CoreTypes is the built-in type file every blueprint sees: the root node
// type. Plugins add theirs through Loader.Builtin.
var CoreTypes = map[string][]byte{
	"<builtin>/core.hcl": []byte(`
node_type "orch.Root" {
  description = "The root of all node types; a node without a type is an orch.Root. Takes any properties."
}

relationship_type "orch.DependsOn" {
  description = "The root of all relationship types: the source is installed after the target."
}

relationship_type "orch.ConnectedTo" {
  derived_from = "orch.DependsOn"
  description  = "The source connects to the target (connected_to); every source instance to every target instance unless connection_type = \"all_to_one\"."
}

# The workflows every deployment has (Cloudify's, with its parameter
# names); orch's engine runs them. A blueprint's own workflow of the same
# name replaces one, but for install and uninstall.
workflow "install" {
  uses        = "orch.install"
  description = "Install every instance: create, configure, start, with their relationship operations."
}

workflow "uninstall" {
  uses        = "orch.uninstall"
  description = "Uninstall every instance, in reverse: unlink, stop, delete."
}

workflow "scale" {
  uses        = "orch.scale"
  description = "Add or remove instances of a node or a group, with their relationships."
  parameter "scalable_entity_name" {
    type        = string
    description = "The node or group to scale."
  }
  parameter "delta" {
    type        = number
    default     = 1
    description = "How many instances to add per host instance (negative: remove)."
  }
  parameter "scale_compute" {
    type        = bool
    default     = false
    description = "Scale the node's outermost host instead, with all it contains."
  }
}

workflow "heal" {
  uses        = "orch.heal"
  description = "Reinstall an instance's host and everything in it, with their relationship operations."
  parameter "node_instance_id" {
    type        = string
    description = "The instance to heal."
  }
}

workflow "execute_operation" {
  uses        = "orch.execute_operation"
  description = "Run an operation on instances."
  parameter "operation" {
    type        = string
    description = "The operation's name."
  }
  parameter "operation_kwargs" {
    type        = any
    default     = {}
    description = "Inputs given to the operation, over its own."
  }
  parameter "node_ids" {
    type        = list(string)
    default     = []
    description = "Only instances of these nodes."
  }
  parameter "node_instance_ids" {
    type        = list(string)
    default     = []
    description = "Only these instances."
  }
  parameter "type_names" {
    type        = list(string)
    default     = []
    description = "Only instances of nodes of these types (or derived from them)."
  }
  parameter "run_by_dependency_order" {
    type        = bool
    default     = false
    description = "Run an instance after those it relates to (else all at once)."
  }
}

workflow "start" {
  uses        = "orch.start"
  description = "Run start on every installed instance, in dependency order."
}

workflow "stop" {
  uses        = "orch.stop"
  description = "Run stop on every started instance, in reverse order."
}

workflow "restart" {
  uses        = "orch.restart"
  description = "Stop, then start, every installed instance."
}

relationship_type "orch.ContainedIn" {
  derived_from = "orch.DependsOn"
  description  = "The source runs in the target, its host (contained_in): it has its instances per instance of its host."
}
`),
}

// WriteDiagnostics prints each diagnostic as `file:line:col: error: summary`,
// then the source line with a marker under the problem, then the detail.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	var buf bytes.Buffer
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		if d.Subject == nil {
			fmt.Fprintf(&buf, "%s: %s\n", sev, d.Summary)
		} else {
			s := d.Subject
			fmt.Fprintf(&buf, "%s:%d:%d: %s: %s\n", s.Filename, s.Start.Line, s.Start.Column, sev, d.Summary)
			if f := files[s.Filename]; f != nil {
				writeSourceLine(&buf, f.Bytes, *s)
			}
		}
		if d.Detail != "" {
			for _, line := range strings.Split(d.Detail, "\n") {
				fmt.Fprintf(&buf, "  %s\n", line)
			}
		}
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func writeSourceLine(buf *bytes.Buffer, src []byte, rng hcl.Range) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 0, 64*1024), len(src)+1)
	for line := 1; sc.Scan(); line++ {
		if line != rng.Start.Line {
			continue
		}
		text := strings.ReplaceAll(sc.Text(), "\t", " ")
		fmt.Fprintf(buf, "%5d | %s\n", line, text)
		start := rng.Start.Column - 1
		if start > len(text) {
			start = len(text)
		}
		width := 1
		if rng.End.Line == rng.Start.Line && rng.End.Column > rng.Start.Column {
			width = rng.End.Column - rng.Start.Column
		}
		if start+width > len(text)+1 {
			width = len(text) + 1 - start
		}
		if width < 1 {
			width = 1
		}
		fmt.Fprintf(buf, "      | %s%s\n", strings.Repeat(" ", start), strings.Repeat("^", width))
		return
	}
}
