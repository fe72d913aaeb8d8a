package main

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/orchestrator"
)

func newReplicasCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "replicas",
		Short: "List the replicas of orch serve sharing an etcd store, and the deployments each owns",
		Long: `List the replicas of orch serve registered in the etcd store (--store
etcd://HOST:2379/PREFIX): each one's id, when it started, what is left of its
lease, the API it advertises (where the others forward requests about its
deployments), and the deployments it owns. A deployment no replica owns is
listed as unowned (a replica that died, until its lease expires).`,
		Example: `  orch --store etcd://127.0.0.1:2379/orch replicas
  orch --store etcd://127.0.0.1:2379/orch replicas -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !orchestrator.IsEtcdURL(g.store) {
				return errors.New("replicas share an etcd store: give --store etcd://HOST:2379/PREFIX (or ORCH_STORE)")
			}
			s, err := orchestrator.OpenEtcd(g.store, orchestrator.EtcdOptions{})
			if err != nil {
				return err
			}
			defer s.Close()
			reps, err := s.Replicas(cmd.Context())
			if err != nil {
				return err
			}
			deps, err := s.Deployments(cmd.Context())
			if err != nil {
				return err
			}
			owned := map[string]bool{}
			for _, r := range reps {
				for _, d := range r.Deployments {
					owned[d] = true
				}
			}
			var unowned []string
			for _, d := range deps {
				if !owned[d.ID] {
					unowned = append(unowned, d.ID)
				}
			}
			if g.output == "json" {
				if reps == nil {
					reps = []orchestrator.ReplicaStatus{}
				}
				return g.printJSON(map[string]any{"replicas": reps, "unowned": unowned})
			}
			tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REPLICA\tSTARTED\tLEASE LEFT\tAPI\tDEPLOYMENTS")
			for _, r := range reps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d: %s\n", r.ID, r.Started.Local().Format(time.DateTime), r.LeaseTTL, cmp.Or(r.API, "-"), len(r.Deployments), strings.Join(r.Deployments, ", "))
			}
			if len(unowned) > 0 {
				fmt.Fprintf(tw, "(unowned)\t\t\t\t%d: %s\n", len(unowned), strings.Join(unowned, ", "))
			}
			return tw.Flush()
		},
	}
}
