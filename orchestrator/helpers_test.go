package orchestrator

import "github.com/orchhq/orch/plugins"

func registryForBench() *plugins.Registry { return plugins.NewRegistry() }
