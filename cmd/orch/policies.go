package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchhq/orch/policies"
)

func newPoliciesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policies",
		Aliases: []string{"policy"},
		Short:   "Show policies: window values, conditions, cooldowns and triggers",
		Long: `Show the policies of deployments. While orch serve runs, the values come from
its live windows: each condition evaluated now, the window reductions it read,
the cooldown left and the recent triggers. Without orch serve, the state file
still tells the cooldowns and trigger history, but no window values.`,
	}
	var dep string
	list := &cobra.Command{
		Use:   "list [-d DEPLOYMENT]",
		Short: "List policies, one line per condition",
		Example: `  orch policies list
  orch policies list -d bookings -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				ps, live, err := b.Policies(cmd.Context(), dep)
				if err != nil {
					return err
				}
				if g.output == "json" {
					if ps == nil {
						ps = []policies.PolicyStatus{}
					}
					return g.printJSON(ps)
				}
				if !live {
					fmt.Fprintln(g.stderr, "orch serve is not running: no window values, only what the state file keeps")
				}
				tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "DEPLOYMENT\tPOLICY\tTYPE\tCONDITION\tNOW\tVALUES\tCOOLDOWN\tLAST TRIGGER\tPAUSED")
				for _, p := range ps {
					paused := "-"
					if p.Paused != nil {
						paused = truncate(pausedText(p.Paused), 40)
					}
					for _, c := range p.Conditions {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Deployment, p.Name, p.Type, c.Name,
							conditionNow(c, live), truncate(formatValues(c.Values), 48), cooldownLeft(c), lastTrigger(p, c.Name), paused)
					}
				}
				return tw.Flush()
			})
		},
	}
	list.Flags().StringVarP(&dep, "deployment", "d", "", "only this deployment's policies")
	var showDep string
	var plot bool
	show := &cobra.Command{
		Use:   "show NAME -d DEPLOYMENT",
		Short: "Show a policy: its conditions now, cooldowns, last decision and triggers",
		Long: `Show a policy: each condition evaluated now with the window values it read,
the cooldowns, the last decision and the recent triggers. --plot draws the
window values of the last minutes (one point a second, kept by orch serve)
against the policy's numeric parameters, with its decisions marked.`,
		Example: `  orch policies show bookings_rps -d bookings
  orch policies show bookings_rps -d bookings --plot
  orch policies show bookings_cpu_up -d scale -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				ps, live, err := b.Policies(cmd.Context(), showDep)
				if err != nil {
					return err
				}
				var names []string
				for _, p := range ps {
					if p.Name == args[0] {
						if g.output == "json" {
							return g.printJSON(p)
						}
						writePolicy(g.stdout, p, live)
						if plot {
							fmt.Fprintln(g.stdout)
							plotPolicy(g.stdout, p, p.Decisions)
						}
						return nil
					}
					names = append(names, p.Name)
				}
				return fmt.Errorf("deployment %s has no policy %q (it has: %s)", showDep, args[0], strings.Join(names, ", "))
			})
		},
	}
	show.Flags().StringVarP(&showDep, "deployment", "d", "", "deployment id (required)")
	show.Flags().BoolVar(&plot, "plot", false, "plot the window values against the thresholds, decisions marked")
	_ = show.MarkFlagRequired("deployment")
	var explainDep string
	var last int
	var follow bool
	explain := &cobra.Command{
		Use:   "explain NAME -d DEPLOYMENT [-n N]",
		Short: "Explain a policy: its state now and its last decisions, with their reasons",
		Long: `Show a policy as policies show does, then its last decisions: every time a
condition held, whether it fired (and the execution it queued) or what held
it back: a cooldown (and how long was left), a pause, the start-up grace or
missing data. The log is kept in the state file, bounded per policy (100
decisions, 24 hours). --follow then prints new decisions as they are made
(checking every second) until interrupted.`,
		Example: `  orch policies explain bookings_rps -d bookings
  orch policies explain bookings_cpu_up -d scale -n 50 -o json
  orch policies explain bookings_rps -d bookings --follow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withBackend(cmd.Context(), func(b backend) error {
				ps, live, err := b.Policies(cmd.Context(), explainDep)
				if err != nil {
					return err
				}
				var names []string
				for _, p := range ps {
					if p.Name != args[0] {
						names = append(names, p.Name)
						continue
					}
					if last > 0 && len(p.Decisions) > last {
						p.Decisions = p.Decisions[len(p.Decisions)-last:]
					}
					if g.output == "json" && !follow {
						return g.printJSON(p)
					}
					if g.output != "json" {
						writePolicy(g.stdout, p, live)
						writeDecisions(g.stdout, p.Decisions)
					}
					if follow {
						return followDecisions(cmd.Context(), g, b, explainDep, args[0], p.Decisions)
					}
					return nil
				}
				return fmt.Errorf("deployment %s has no policy %q (it has: %s)", explainDep, args[0], strings.Join(names, ", "))
			})
		},
	}
	explain.Flags().BoolVarP(&follow, "follow", "f", false, "then print new decisions as they are made (one JSON object a line with -o json)")
	explain.Flags().StringVarP(&explainDep, "deployment", "d", "", "deployment id (required)")
	explain.Flags().IntVarP(&last, "last", "n", 20, "how many decisions to show")
	_ = explain.MarkFlagRequired("deployment")
	cmd.AddCommand(list, show, explain, newPauseCmd(g, true), newPauseCmd(g, false), newReplayCmd(g))
	return cmd
}

// newPauseCmd is `policies pause` (pause true) or `policies resume`.
func newPauseCmd(g *globals, pause bool) *cobra.Command {
	var dep, reason string
	var all bool
	var forDur time.Duration
	verb, short := "resume", "Resume paused policies"
	long := `Resume a paused policy (or --all of a deployment's): its triggers run again.`
	example := `  orch policies resume bookings_rps -d bookings
  orch policies resume --all -d bookings`
	if pause {
		verb, short = "pause", "Pause policies: they evaluate but run nothing"
		long = `Pause a policy (or --all of a deployment's). A paused policy still evaluates
and records what it would have done (orch policies show: held back by
"paused"), but queues no workflow and starts no cooldown. The pause is kept in
the state file, so a restart of orch serve keeps it; with --for it ends by
itself. Works with or without orch serve running.`
		example = `  orch policies pause bookings_rps -d bookings --for 30m --reason "load test"
  orch policies pause --all -d bookings`
	}
	cmd := &cobra.Command{
		Use:     verb + " [NAME] -d DEPLOYMENT [--all]",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if (name == "") == !all {
				return fmt.Errorf("%s: name one policy, or give --all", verb)
			}
			var p *policies.Pause
			if pause {
				now := time.Now()
				p = &policies.Pause{By: os.Getenv("USER"), Reason: reason, Since: policies.Seconds(now)}
				if forDur < 0 {
					return fmt.Errorf("--for %s: must not be negative", forDur)
				}
				if forDur > 0 {
					p.Until = policies.Seconds(now.Add(forDur))
				}
			}
			return g.withBackend(cmd.Context(), func(b backend) error {
				names, err := b.SetPause(cmd.Context(), dep, name, p)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.printJSON(names)
				}
				for _, n := range names {
					what := "resumed"
					if pause {
						what = "paused"
						if p.Until > 0 {
							what += " until " + eventTime(p.Until)
						}
					}
					fmt.Fprintf(g.stdout, "Policy %s/%s %s\n", dep, n, what)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&dep, "deployment", "d", "", "deployment id (required)")
	_ = cmd.MarkFlagRequired("deployment")
	cmd.Flags().BoolVar(&all, "all", false, "every policy of the deployment")
	if pause {
		cmd.Flags().DurationVar(&forDur, "for", 0, "end the pause by itself after this long (default: until resumed)")
		cmd.Flags().StringVar(&reason, "reason", "", "why, shown by policies list and show")
	}
	return cmd
}

func pausedText(p *policies.Pause) string {
	if p == nil {
		return ""
	}
	s := "paused"
	if p.By != "" {
		s += " by " + p.By
	}
	if p.Until > 0 {
		s += " until " + eventTime(p.Until)
	}
	if p.Reason != "" {
		s += " (" + p.Reason + ")"
	}
	return s
}

func conditionNow(c policies.ConditionStatus, live bool) string {
	switch {
	case !live:
		return "-"
	case !c.Known:
		return "no data"
	case c.Holds:
		return "holds"
	}
	return "no"
}

func cooldownLeft(c policies.ConditionStatus) string {
	if c.CooldownLeft <= 0 {
		return "-"
	}
	return (time.Duration(c.CooldownLeft * float64(time.Second))).Round(time.Second).String() + " left"
}

func formatValues(v map[string]float64) string {
	parts := make([]string, 0, len(v))
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, fmt.Sprintf("%s=%.4g", k, v[k]))
	}
	return strings.Join(parts, " ")
}

func lastTrigger(p policies.PolicyStatus, condition string) string {
	for i := len(p.Triggers) - 1; i >= 0; i-- {
		if t := p.Triggers[i]; t.Condition == condition {
			return formatTrigger(t)
		}
	}
	return "-"
}

func formatTrigger(t policies.Trigger) string {
	s := eventTime(t.Time) + " " + t.Workflow
	switch {
	case t.Error != "":
		s += " (failed to queue: " + t.Error + ")"
	case t.DryRun:
		s += " (dry run)"
	case t.Execution != "":
		s += " -> " + t.Execution
	}
	return s
}

// eventTime formats an event time (Unix seconds) in local time.
func eventTime(t float64) string {
	return time.Unix(0, int64(t*1e9)).Local().Format("2006-01-02 15:04:05")
}

func writePolicy(w io.Writer, p policies.PolicyStatus, live bool) {
	fmt.Fprintf(w, "Policy:      %s\nDeployment:  %s\nType:        %s\n", p.Name, p.Deployment, p.Type)
	if len(p.Targets) > 0 {
		fmt.Fprintf(w, "Targets:     %s\n", strings.Join(p.Targets, ", "))
	}
	if live {
		fmt.Fprintf(w, "Evaluated:   %s (live, from orch serve)\n", eventTime(p.Time))
	} else {
		fmt.Fprintln(w, "Evaluated:   - (orch serve is not running: no window values)")
	}
	if p.DryRun {
		fmt.Fprintln(w, "Dry run:     yes (decisions are recorded, no workflow is queued)")
	}
	if p.Paused != nil {
		fmt.Fprintf(w, "Paused:      %s\n", strings.TrimPrefix(pausedText(p.Paused), "paused "))
	}
	if p.Error != "" {
		fmt.Fprintf(w, "Error:       %s\n", p.Error)
	}
	if live && p.GraceUntil > p.Time {
		fmt.Fprintf(w, "Grace:       nothing fires until %s (initial_delay: the windows are filling)\n", eventTime(p.GraceUntil))
	}
	if p.MissingSince > 0 {
		fmt.Fprintf(w, "Data:        missing since %s (on_missing_data = %q)\n", eventTime(p.MissingSince), p.OnMissing)
	}
	fmt.Fprintln(w, "Conditions:")
	for _, c := range p.Conditions {
		line := fmt.Sprintf("  %-12s %-8s", c.Name, conditionNow(c, live))
		if c.Workflow != "" {
			line += "  triggers " + c.Workflow
		}
		if c.CooldownLeft > 0 {
			line += fmt.Sprintf("  cooling down until %s (%s)", eventTime(c.CooldownUntil), cooldownLeft(c))
		}
		fmt.Fprintln(w, line)
		for _, k := range slices.Sorted(maps.Keys(c.Values)) {
			fmt.Fprintf(w, "      %s = %.6g\n", k, c.Values[k])
		}
	}
	if d := p.LastDecision; d != nil {
		what := "fired"
		if !d.Fired {
			what = "held back (" + string(d.Reason) + ")"
		}
		fmt.Fprintf(w, "Last decision: %s %s %s\n", eventTime(d.Time), d.Condition, what)
	}
	if len(p.Triggers) > 0 {
		fmt.Fprintln(w, "Triggers (latest last):")
		from := max(0, len(p.Triggers)-10)
		for _, t := range p.Triggers[from:] {
			fmt.Fprintf(w, "  %s  %s\n", t.Condition, formatTrigger(t))
		}
	}
}

// followDecisions prints the decisions of a policy made after seen, every
// second, until ctx is done.
func followDecisions(ctx context.Context, g *globals, b backend, deployment, policy string, seen []policies.Decision) error {
	var last *policies.Decision
	if n := len(seen); n > 0 {
		last = &seen[n-1]
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ps, _, err := b.Policies(ctx, deployment)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, p := range ps {
			if p.Name != policy {
				continue
			}
			fresh := policies.DecisionsAfter(p.Decisions, last)
			for i := range fresh {
				if g.output == "json" {
					if err := json.NewEncoder(g.stdout).Encode(fresh[i]); err != nil {
						return err
					}
				} else {
					writeDecisionLines(g.stdout, fresh[i:i+1])
				}
			}
			if n := len(fresh); n > 0 {
				last = &fresh[n-1]
			}
		}
	}
}

// writeDecisions explains decisions in plain words, one a line.
func writeDecisions(w io.Writer, ds []policies.Decision) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "Decisions:   none yet (no condition has held)")
		return
	}
	fmt.Fprintln(w, "Decisions (latest last):")
	writeDecisionLines(w, ds)
}

func writeDecisionLines(w io.Writer, ds []policies.Decision) {
	for _, d := range ds {
		var what string
		switch {
		case d.Fired && d.Error != "":
			what = "fired, but " + d.Workflow + " could not be queued: " + d.Error
		case d.Fired && d.Execution != "":
			what = "fired: queued " + d.Workflow + " as execution " + d.Execution
		case d.Fired && d.Workflow != "":
			what = "fired: " + d.Workflow + " recorded (dry run)"
		case d.Fired:
			what = "held (no trigger names this condition)"
		case d.Reason == policies.ReasonCooldown:
			what = fmt.Sprintf("held back by the cooldown, %s left", time.Duration(d.CooldownLeft*float64(time.Second)).Round(time.Second))
		case d.Reason == policies.ReasonPaused:
			what = "held back: the policy is paused"
		case d.Reason == policies.ReasonGrace:
			what = fmt.Sprintf("held back by the start-up grace (initial_delay), %s left", time.Duration(d.GraceLeft*float64(time.Second)).Round(time.Second))
		case d.Reason == policies.ReasonExecutionQueued:
			what = "held back: " + d.Workflow + " already waits to run as execution " + d.Execution
		case d.Reason == policies.ReasonMissingData:
			what = "data missing: holding (on_missing_data = \"hold\"), nothing runs"
		default:
			what = "held back: " + string(d.Reason)
		}
		if d.Missing != "" {
			what += "; data missing: " + d.Missing
		}
		fmt.Fprintf(w, "  %s  %-10s %s", eventTime(d.Time), d.Condition, what)
		if v := formatValues(d.Values.Map()); v != "" {
			fmt.Fprintf(w, "  [%s]", v)
		}
		fmt.Fprintln(w)
	}
}
