package workflows_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/workflows"
)

// opTime is what each operation of the install benchmark takes.
const opTime = 2 * time.Millisecond

// wideBlueprint is layers of nodes, each node with instances of its own and
// connected to one node of the layer before (every instance to every
// instance), each with create, configure and start.
func wideBlueprint(layers, width, instances int) string {
	var b strings.Builder
	b.WriteString(`node_type "bench.Node" {
  operation "create" { implementation = "bench.op" }
  operation "configure" { implementation = "bench.op" }
  operation "start" { implementation = "bench.op" }
}
`)
	for l := range layers {
		for w := range width {
			fmt.Fprintf(&b, "node \"n%d_%d\" {\n  type = \"bench.Node\"\n  instances { default = %d }\n", l, w, instances)
			if l > 0 {
				fmt.Fprintf(&b, "  connected_to = [node.n%d_%d]\n", l-1, w)
			}
			b.WriteString("}\n")
		}
	}
	return b.String()
}

// BenchmarkInstall1000Instances installs 100 nodes of 10 instances (10
// layers of 10 nodes, each layer connected to the one before) with an
// operation that takes opTime, and reports the wall time against the ideal:
// the depth's chain of operations when parallelism is unbounded, each layer
// in rounds of `parallel` instances when it is bounded. overhead/instance
// is what the engine and the state file add per instance.
func BenchmarkInstall1000Instances(b *testing.B) {
	const layers, width, instances = 10, 10, 10
	src := wideBlueprint(layers, width, instances)
	for _, parallel := range []int{0, 16} {
		b.Run(fmt.Sprintf("parallel=%d", parallel), func(b *testing.B) {
			dir := b.TempDir()
			path := filepath.Join(dir, "wide.hcl")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				b.Fatal(err)
			}
			reg := plugins.NewRegistry()
			if err := reg.RegisterOperation("bench.op", plugins.OperationFunc(func(ctx context.Context, _ *plugins.OperationContext) error {
				time.Sleep(opTime)
				return nil
			})); err != nil {
				b.Fatal(err)
			}
			ideal := time.Duration(layers*3) * opTime
			if parallel > 0 {
				rounds := (width*instances + parallel - 1) / parallel
				ideal = time.Duration(layers*rounds*3) * opTime
			}
			var total time.Duration
			for i := range b.N {
				store, err := orchestrator.Open(filepath.Join(dir, fmt.Sprintf("state-%d.db", i)), orchestrator.OpenOptions{})
				if err != nil {
					b.Fatal(err)
				}
				svc := orchestrator.NewService(store, reg, nil)
				svc.Engine.Parallel = parallel
				start := time.Now()
				_, x, err := svc.Deploy(context.Background(), orchestrator.DeployRequest{Paths: []string{path}, ID: "wide"})
				if err != nil {
					b.Fatal(err)
				}
				if x, err = svc.Engine.Wait(context.Background(), x.ID); err != nil || x.Status != workflows.Succeeded {
					b.Fatalf("install: %v %s %s", err, x.Status, x.Error)
				}
				total += time.Since(start)
				d, err := store.Deployment(context.Background(), "wide")
				if err != nil || len(d.Instances) != layers*width*instances {
					b.Fatalf("%d instances, %v", len(d.Instances), err)
				}
				_ = svc.Engine.Close(context.Background())
				_ = store.Close()
			}
			wall := total / time.Duration(b.N)
			b.ReportMetric(wall.Seconds()*1000, "wall-ms")
			b.ReportMetric(ideal.Seconds()*1000, "ideal-ms")
			b.ReportMetric(float64(wall)/float64(ideal), "wall/ideal")
			b.ReportMetric(float64(wall-ideal)/float64(time.Microsecond)/float64(layers*width*instances), "overhead-µs/instance")
		})
	}
}
