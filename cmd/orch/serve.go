package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
	"github.com/orchhq/orch/plugins/kubernetes"
	"github.com/orchhq/orch/plugins/mesh"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

func newServeCmd(g *globals) *cobra.Command {
	var cfg orchestrator.ManagerConfig
	var apiAddr, tokenFile, meshURL string
	var drain, leaseTTL time.Duration
	var replicaID, tlsCert, tlsKey, advertise string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the manager: metric intake, policy runner, execution engine and HTTP API",
		Long: `Serve a web console at / on the API address (log in with the API token:
see docs/console.md). Consume metrics from RabbitMQ, poll the source blocks of every deployment's
blueprint (Prometheus queries, Calisti's service metrics) and, with
--mesh-url, Calisti for every targeted kubernetes.app; evaluate the policies
of every deployment as metrics arrive, and run the workflows their triggers
name. Executions left started by a crash are
resumed or failed first. Cooldowns and trigger history are kept in the state
file, so a restart neither forgets a cooldown nor fires twice.

While serve runs it holds the state file, and the other orch commands (deploy,
undeploy, workflow run, executions, events, deployments, policies) go through
its HTTP API instead: serve listens on a loopback address only (any other
needs --tls-cert and --tls-key; clients elsewhere set ORCH_API_URL,
ORCH_API_TOKEN and, for a private CA, ORCH_API_CA), and writes
the address and a random token to <state file>.api (mode 0600), where the CLI
finds them. Deployments made through it are evaluated at once. The API also
serves /metrics in the Prometheus text format (bearer token required).

SIGTERM or Ctrl-C stops the intake (unacknowledged messages go back to the
broker), stops the API, and waits --drain-timeout for running executions;
an execution still running then is resumed or failed clearly by the next
start.

With --store etcd://HOST:2379/PREFIX, serve is one replica of several sharing
the store: it registers with a lease (--lease-ttl), owns the deployments that
rendezvous hashing gives it among the live replicas, and evaluates and runs
only those; a replica that dies loses them when its lease expires, and the
others take them up (interrupted executions resumed or failed as after a
crash). Its writes for a deployment are conditioned on owning it; one that
loses its lease (paused or cut off past its TTL) exits with an error, to be
started again by its supervisor. Each
deployment's metrics go to a durable queue of its own (--queue BASE:
BASE.DEPLOYMENT, bound with the deployment's id and DEPLOYMENT.*, the
routing keys of Diamond and collectd), consumed by its owner
only, so none published while it moves is lost. Every replica answers the
whole API: a request about a deployment another replica owns is forwarded to
the owner's API (--advertise-url) with the caller's token, so give every
replica the same --api-token-file; while a deployment has no owner (its
owner died and its lease has not expired) the request waits for the next.`,
		Example: `  orch serve
  orch serve --amqp-url amqp://user:pass@broker:5672/ --queue orch.$(hostname) --dry-run
  orch serve --api-addr 127.0.0.1:8040 --mesh-url https://calisti.example/api/graphql
  curl -H "Authorization: Bearer $(jq -r .token ~/.local/state/orch/state.db.api)" http://127.0.0.1:8040/metrics`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A daemon logs at info: connections, reconnects, malformed input.
			level := slog.LevelInfo
			if g.verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))
			stats := orchestrator.NewServeStats()
			var svc *orchestrator.Service
			var closeFn func()
			var err error
			if orchestrator.IsEtcdURL(g.store) {
				svc, cfg.Replica, closeFn, err = g.replicaService(cmd.Context(), replicaID, leaseTTL, log, workflows.WithEventObserver(stats.ObserveEvent))
				cfg.ReconcileInterval = leaseTTL / 3
				cfg.Heartbeat = max(leaseTTL/2, time.Second)
			} else {
				svc, closeFn, err = g.service(true, workflows.WithEventObserver(stats.ObserveEvent))
			}
			if err != nil {
				return err
			}
			defer closeFn()
			cfg.AMQPURL = amqpURL(cfg.AMQPURL)
			switch {
			case cfg.Queue != "":
			case cfg.Replica != nil:
				cfg.Queue = "orch" // the base of the deployments' queues, the same on every replica
			default:
				host, _ := os.Hostname()
				cfg.Queue = "orch." + host
			}
			if meshURL != "" {
				auth, err := mesh.AuthFromEnv()
				if err != nil {
					return err
				}
				c, err := mesh.New(meshURL, auth)
				if err != nil {
					return err
				}
				cfg.Mesh = orchestrator.MeshSource{Client: c}
				if os.Getenv(mesh.HostsEnv) == "" {
					// A burst's mesh_url may use the credentials on the
					// endpoint serve is configured with, and no other.
					if u, err := url.Parse(meshURL); err == nil {
						os.Setenv(mesh.HostsEnv, u.Host)
					}
				}
			}
			k8s := kubernetes.New()
			cfg.Log, cfg.Nodes, cfg.Services = log, k8s, k8s
			cfg.OnTrigger = func(dep, policy string, t policies.Trigger) {
				what := "queued " + t.Execution
				switch {
				case t.Error != "":
					what = "failed to queue: " + t.Error
				case t.DryRun:
					what = "dry run, not queued"
				}
				fmt.Fprintf(g.stdout, "%s policy %s/%s: %s fired, workflow %s %s\n",
					time.Unix(int64(t.Time), 0).Format("15:04:05"), dep, policy, t.Condition, t.Workflow, what)
			}
			return api.Serve(cmd.Context(), orchestrator.NewManager(svc, cfg, stats), api.ServeConfig{
				Addr: apiAddr, TLSCert: tlsCert, TLSKey: tlsKey, TokenFile: tokenFile, State: g.storeName(), Advertise: advertise, Drain: drain, Out: g.stdout, Log: log})
		},
	}
	cmd.Flags().StringVar(&cfg.AMQPURL, "amqp-url", "", amqpURLHelp)
	cmd.Flags().StringVar(&cfg.Exchange, "exchange", policies.DefaultExchange, "topic exchange of the metrics")
	cmd.Flags().StringVar(&cfg.Queue, "queue", "", "durable queue of this orch instance (default orch.<hostname>); with an etcd --store, the base of one queue per deployment, BASE.DEPLOYMENT, the same on every replica (default orch)")
	cmd.Flags().IntVar(&cfg.Prefetch, "prefetch", 256, "unacknowledged messages the broker may send ahead")
	cmd.Flags().StringVar(&cfg.DeadLetter, "dead-letter-exchange", "", "exchange malformed messages are rejected to (default: dropped, counted and logged)")
	cmd.Flags().BoolVar(&cfg.DryRun, "dry-run", false, "evaluate and record decisions, queue no workflow")
	cmd.Flags().DurationVar(&cfg.Retention, "retention", 30*24*time.Hour, "how long ended executions and their events are kept (pruned at start and hourly); 0: forever")
	cmd.Flags().DurationVar(&cfg.MaxClockSkew, "max-clock-skew", 2*time.Minute, "refuse (as malformed) a metric whose time is further ahead of this host's clock; 0: no limit")
	cmd.Flags().StringVar(&meshURL, "mesh-url", "", "Calisti GraphQL endpoint to poll for the rps and latency_p50 of every kubernetes.app node a policy targets (token from ORCH_CALISTI_TOKEN or ORCH_CALISTI_TOKEN_FILE); a blueprint's source blocks of kind calisti poll on their own")
	cmd.Flags().DurationVar(&cfg.MeshInterval, "mesh-interval", 5*time.Second, "how often to poll --mesh-url")
	cmd.Flags().StringVar(&apiAddr, "api-addr", "127.0.0.1:8040", "address of the HTTP API and the console at / (port 0: any free port): loopback, or any other with --tls-cert and --tls-key")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "PEM certificate of the API (with --tls-key): the API is served over TLS, and may listen beyond loopback")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	cmd.Flags().StringVar(&tokenFile, "api-token-file", "", "file holding the API token (default: a new random token each start)")
	cmd.Flags().DurationVar(&drain, "drain-timeout", 30*time.Second, "how long to wait for running executions on shutdown")
	cmd.Flags().StringVar(&replicaID, "replica-id", "", "this replica's id, with an etcd --store (default HOSTNAME-PID)")
	cmd.Flags().StringVar(&advertise, "advertise-url", "", "with an etcd --store: the URL the other replicas forward requests about this replica's deployments to (default the API's address; the host name for 0.0.0.0)")
	cmd.Flags().DurationVar(&leaseTTL, "lease-ttl", 10*time.Second, "with an etcd --store: how long a replica that stops renewing keeps its deployments")
	return cmd
}

// replicaService opens the etcd store, registers this serve as a replica
// and builds the service over the store fenced by its ownership; it runs
// only the deployments the replica owns, and recovers executions as it
// takes deployments up (not all at open, as one process does).
func (g *globals) replicaService(ctx context.Context, id string, ttl time.Duration, log *slog.Logger, opts ...workflows.Option) (*orchestrator.Service, *orchestrator.Replica, func(), error) {
	reg, err := registry()
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := orchestrator.OpenEtcd(g.store, orchestrator.EtcdOptions{})
	if err != nil {
		return nil, nil, nil, err
	}
	if id == "" {
		host, _ := os.Hostname()
		id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	r, err := orchestrator.JoinReplicas(ctx, store, orchestrator.ReplicaInfo{ID: id}, ttl)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	opts = append(opts, workflows.WithEventObserver(g.printEvent), workflows.WithOwner(r.Starter()))
	svc := orchestrator.NewService(store.Fenced(id), reg, log, opts...)
	closeFn := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := svc.Engine.Close(cctx); err != nil {
			fmt.Fprintln(g.stderr, "Warning:", err)
		}
		_ = r.Leave()
		store.Close()
	}
	log.Info("joined the replicas", "replica", id, "store", g.store, "lease_ttl", ttl)
	return svc, r, closeFn, nil
}
