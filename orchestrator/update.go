package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/orchhq/orch/workflows"
)

// UpdateRequest asks for a deployment (ID) to be updated to a blueprint
// (Paths) with inputs: those not given keep the deployment's values.
type UpdateRequest struct {
	DeployRequest
	DryRun bool `json:"dry_run,omitempty"`
}

// Update plans a deployment update and, unless it is a dry run or changes
// nothing, submits the execution that carries it out (nil otherwise). The
// plan is a value stored in the execution before anything acts.
func (s *Service) Update(ctx context.Context, req UpdateRequest) (*workflows.Update, *workflows.Execution, error) {
	id := req.ID
	if id == "" {
		return nil, nil, fmt.Errorf("update: name the deployment")
	}
	d, err := s.Store.Deployment(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if unended, err := s.Store.Unended(ctx, id); err != nil {
		return nil, nil, err
	} else if len(unended) > 0 {
		return nil, nil, fmt.Errorf("deployment %s runs execution %s (%s, %s): update it once that has ended (or cancel it)", id, unended[0].ID, unended[0].Workflow, unended[0].Status)
	}
	t, err := s.Target(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	// The deployment's input values, for the inputs the new blueprint
	// still declares and the request does not give.
	req.Previous = map[string]cty.Value{}
	for name, raw := range d.Inputs {
		ty, err := ctyjson.ImpliedType(raw)
		if err != nil {
			continue
		}
		if v, err := ctyjson.Unmarshal(raw, ty); err == nil {
			req.Previous[name] = v
		}
	}
	bp, plan, inputs, abs, err := resolve(s.builtin, s.Catalog, req.DeployRequest)
	if err != nil {
		return nil, nil, err
	}
	u, err := workflows.PlanUpdate(t, plan)
	if err != nil {
		return nil, nil, fmt.Errorf("update %s: %w", id, err)
	}
	rec := blueprintRecord(bp)
	u.Blueprint, u.Dir = rec.ID, filepath.Dir(abs[0])
	if u.Inputs, _, err = storedInputs(bp, inputs); err != nil {
		return nil, nil, err
	}
	shown := &Deployment{}
	fillDeployment(shown, plan)
	u.Properties, u.Outputs = shown.Properties, shown.Outputs
	for _, name := range inputChanges(d.Inputs, u.Inputs) {
		u.Changes = append(u.Changes, "input "+name)
	}
	if u.Empty() && rec.ID == d.Blueprint && u.Dir == d.Dir && len(inputChanges(d.Inputs, u.Inputs)) == 0 {
		u.Changes = append(u.Changes, "nothing changes")
		return u, nil, nil
	}
	if u.Empty() {
		u.Changes = append(u.Changes, "no node, relationship or policy changes: the deployment takes the new blueprint (its workflows, outputs) and inputs")
	}
	if req.DryRun {
		return u, nil, nil
	}
	if err := s.Store.PutBlueprint(ctx, rec); err != nil {
		return nil, nil, err
	}
	x, err := s.Engine.SubmitUpdate(ctx, id, u, false)
	if err != nil {
		return nil, nil, err
	}
	return u, x, nil
}

// inputChanges describes the inputs whose stored values differ: "NAME:
// OLD -> NEW" ("(default)" for none stored).
func inputChanges(old, new map[string]json.RawMessage) []string {
	var names []string
	for k := range old {
		names = append(names, k)
	}
	for k := range new {
		if _, ok := old[k]; !ok {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var out []string
	show := func(raw json.RawMessage) string {
		if raw == nil {
			return "(default)"
		}
		return strings.TrimSpace(string(raw))
	}
	for _, k := range names {
		if !bytes.Equal(old[k], new[k]) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", k, show(old[k]), show(new[k])))
		}
	}
	return out
}
