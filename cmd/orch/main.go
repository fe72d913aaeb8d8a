// Command orch is the CLI of orch: validate and deploy blueprints, run
// workflows, and look at deployments, executions and events.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/builtin"
	"github.com/orchhq/orch/workflows"
)

// exitError carries an exit code without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

type globals struct {
	state       string
	store       string // --store: a bbolt path or an etcd URL ("": the state file)
	lockTimeout time.Duration
	output      string
	verbose     bool
	stdout      io.Writer
	stderr      io.Writer
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var de *orchestrator.DiagnosticsError
	if errors.As(err, &de) {
		fmt.Fprintln(stderr, de.Error())
		return 1
	}
	fmt.Fprintln(stderr, "Error:", err)
	return 1
}

func defaultStatePath() string {
	if p := os.Getenv("ORCH_STATE"); p != "" {
		return p
	}
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "orch-state.db"
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "orch", "state.db")
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "orch",
		Short: "Event-driven workflows for Kubernetes, declared in HCL",
		Long: `orch deploys HCL blueprints (nodes, workflows, policy types and policies),
runs their workflows (install, uninstall, kube_scale, burst, ...) and keeps
every execution and its events in a bbolt state file (or, for replicas of
orch serve, in etcd: --store etcd://HOST:2379/PREFIX).`,
		Example: `  orch validate examples/files/blueprint.hcl
  orch deploy examples/files/blueprint.hcl -d files -i greeting=hi
  orch executions list -d files
  orch undeploy files`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.state, "state", defaultStatePath(), "state file (env ORCH_STATE)")
	root.PersistentFlags().StringVar(&g.store, "store", os.Getenv("ORCH_STORE"), "where state lives: a bbolt file (as --state), or etcd://HOST:2379[,HOST:2379]/PREFIX (env ORCH_STORE)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if g.store != "" && !orchestrator.IsEtcdURL(g.store) {
			if strings.Contains(g.store, "://") {
				return fmt.Errorf("--store %q: give a bbolt file path or etcd://HOST:PORT/PREFIX", g.store)
			}
			g.state = g.store
		}
		return nil
	}
	root.PersistentFlags().DurationVar(&g.lockTimeout, "lock-timeout", 2*time.Second, "how long to wait for a state file held by another orch process")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "debug logs on stderr")
	root.AddCommand(
		newValidateCmd(g),
		newDeployCmd(g),
		newUndeployCmd(g),
		newDeploymentsCmd(g),
		newWorkflowCmd(g),
		newExecutionsCmd(g),
		newEventsCmd(g),
		newMetricsCmd(g),
		newServeCmd(g),
		newPoliciesCmd(g),
		newReplicasCmd(g),
	)
	return root
}

func (g *globals) logger() *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
}

func registry() (*plugins.Registry, error) { return builtin.Registry() }

// service opens the state file and builds the service. progress prints
// events as they happen.
func (g *globals) service(progress bool, opts ...workflows.Option) (*orchestrator.Service, func(), error) {
	reg, err := registry()
	if err != nil {
		return nil, nil, err
	}
	store, err := g.openStore(false)
	if err != nil {
		return nil, nil, err
	}
	if progress {
		opts = append(opts, workflows.WithEventObserver(g.printEvent))
	}
	// On an etcd store that replicas of serve share, this process runs
	// nothing itself: what it queues, the deployment's owner runs, and
	// their executions are theirs to recover.
	shared := false
	if es, ok := store.(*orchestrator.EtcdStore); ok {
		reps, err := es.Replicas(context.Background())
		if err != nil {
			store.Close()
			return nil, nil, err
		}
		if shared = len(reps) > 0; shared {
			opts = append(opts, workflows.WithOwner(ownsNothing{}))
		}
	}
	svc := orchestrator.NewService(store, reg, g.logger(), opts...)
	if !shared {
		if err := svc.Engine.Recover(context.Background()); err != nil {
			store.Close()
			return nil, nil, err
		}
	}
	closeFn := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Engine.Close(ctx); err != nil {
			fmt.Fprintln(g.stderr, "Warning:", err)
		}
		store.Close()
	}
	return svc, closeFn, nil
}

// ownsNothing is a CLI process's ownership when replicas of serve share the
// store: it runs no execution.
type ownsNothing struct{}

func (ownsNothing) Owns(string) bool { return false }

// storeName names the store commands act on: the etcd URL, or the state
// file.
func (g *globals) storeName() string {
	if orchestrator.IsEtcdURL(g.store) {
		return g.store
	}
	return g.state
}

// readStore opens the state file for reading.
func (g *globals) readStore() (orchestrator.StateStore, error) { return g.openStore(true) }

// openStore opens the store --store names: etcd (etcd://HOST:PORT[,HOST:PORT]/PREFIX),
// or a bbolt file (the default: --state).
func (g *globals) openStore(readOnly bool) (orchestrator.StateStore, error) {
	if orchestrator.IsEtcdURL(g.store) {
		return orchestrator.OpenEtcd(g.store, orchestrator.EtcdOptions{})
	}
	return orchestrator.Open(g.state, orchestrator.OpenOptions{LockTimeout: g.lockTimeout, ReadOnly: readOnly})
}

// withReadStore runs fn with the state file open for reading.
func (g *globals) withReadStore(fn func(orchestrator.StateStore) error) error {
	store, err := g.readStore()
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

func (g *globals) printEvent(ev workflows.Event) {
	if g.output == "json" {
		_ = json.NewEncoder(g.stdout).Encode(ev)
		return
	}
	fmt.Fprintln(g.stdout, formatEvent(ev))
}

func formatEvent(ev workflows.Event) string {
	where := ""
	if ev.Node != "" {
		where = ev.Node
		if ev.Instance != "" {
			where = ev.Instance
		}
		if ev.Operation != "" {
			where += "." + ev.Operation
		}
		where = " [" + where + "]"
	}
	return fmt.Sprintf("%s %-7s%s %s", ev.Time.Local().Format("15:04:05.000"), ev.Level, where, ev.Message)
}

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// waitExecution waits for an execution, printing its progress; Ctrl-C
// cancels it. The exit code is non-zero unless it succeeded.
func (g *globals) waitExecution(ctx context.Context, b backend, x *workflows.Execution) error {
	waitCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
			fmt.Fprintln(g.stderr, "Interrupted: cancelling execution", x.ID)
			if _, err := b.Cancel(context.Background(), x.ID); err != nil {
				fmt.Fprintln(g.stderr, "Warning:", err)
			}
		case <-waitCtx.Done():
		}
	}()
	end, err := b.Wait(waitCtx, x)
	if err != nil {
		return err
	}
	if g.output != "json" {
		fmt.Fprintf(g.stdout, "Execution %s (%s on %s): %s\n", end.ID, end.Workflow, end.Deployment, end.Status)
	}
	if end.Status != workflows.Succeeded {
		return exitError{code: 1}
	}
	return nil
}
