package main

import (
	"context"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/orchestrator/api"
)

// backend is where a command acts (api.Backend): a running serve's API, or
// the state file.
type backend = api.Backend

// backend connects to the running serve, or acts on the state file.
func (g *globals) backend(ctx context.Context) (backend, error) {
	reg, err := registry()
	if err != nil {
		return nil, err
	}
	local := &api.Local{
		Open:     func() (*orchestrator.Service, func(), error) { return g.service(true) },
		OpenRead: g.readStore,
		Registry: reg,
		Log:      g.logger(),
	}
	return api.Connect(ctx, g.storeName(), local, g.printEvent)
}

// withBackend runs fn on the backend and closes it.
func (g *globals) withBackend(ctx context.Context, fn func(backend) error) error {
	b, err := g.backend(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(b)
}
