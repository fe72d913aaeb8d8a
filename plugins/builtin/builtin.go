// Package builtin is the set of plugins orch ships (script, kubernetes),
// registered together: what orch validate checks a blueprint against is
// what orch serve runs it with.
package builtin

import (
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/plugins/kubernetes"
	"github.com/orchhq/orch/plugins/script"
)

// Registry returns a registry of orch's plugins.
func Registry() (*plugins.Registry, error) {
	r := plugins.NewRegistry()
	if err := r.Add(script.Plugin{}, kubernetes.New()); err != nil {
		return nil, err
	}
	return r, nil
}
