package orchestrator

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// DiagnosticsError carries blueprint diagnostics with the files they point
// into, so they can be printed with source lines.
type DiagnosticsError struct {
	Files map[string]*hcl.File
	Diags hcl.Diagnostics
}

func (e *DiagnosticsError) Error() string {
	var b bytes.Buffer
	_ = blueprints.WriteDiagnostics(&b, e.Files, e.Diags)
	return strings.TrimSpace(b.String())
}

// Service is orch's core: the state file, the plugins and the engine.
type Service struct {
	Store    StateStore
	Registry *plugins.Registry
	Engine   *workflows.Engine
	Catalog  *blueprints.Catalog
	builtin  map[string][]byte
	log      *slog.Logger

	mu      sync.Mutex
	targets map[string]*workflows.Target // resolved deployments, by id
	broken  map[string]error             // why a resolved deployment's policies do not run
}

// NewService builds a service over an open store. Engine options (an event
// observer, a logger) pass through.
func NewService(store StateStore, registry *plugins.Registry, log *slog.Logger, opts ...workflows.Option) *Service {
	if log == nil {
		log = slog.Default()
	}
	builtin, catalog := languageOf(registry)
	svc := &Service{
		Store:    store,
		Registry: registry,
		Catalog:  catalog,
		builtin:  builtin,
		log:      log,
		targets:  map[string]*workflows.Target{},
		broken:   map[string]error{},
	}
	svc.Engine = workflows.New(engineStore{store, svc}, registry, append([]workflows.Option{workflows.WithLogger(log)}, opts...)...)
	return svc
}

// languageOf returns the built-in type files and the catalog of
// implementations that the plugins of registry give the blueprint language.
func languageOf(registry *plugins.Registry) (map[string][]byte, *blueprints.Catalog) {
	builtin := map[string][]byte{}
	for k, v := range blueprints.CoreTypes {
		builtin[k] = v
	}
	for k, v := range registry.Types() {
		builtin[k] = v
	}
	builtin["<builtin>/policies.hcl"] = []byte(policies.BuiltinTypes)
	return builtin, &blueprints.Catalog{Workflows: registry.WorkflowNames(), Operations: registry.OperationNames(), PolicyTypes: policies.BuiltinImplementations(), Formats: registry.Formats(),
		MeshServiceTypes: registry.MeshServiceTypes()}
}

// Validate parses and validates blueprint files against the plugins of
// registry, without a state file.
func Validate(registry *plugins.Registry, paths ...string) (*blueprints.Blueprint, error) {
	bp, _, err := ValidatePlan(registry, paths...)
	return bp, err
}

// ValidatePlan is Validate returning the plan as validation resolved it
// (inputs without a value unknown), for reports such as which conditions
// are compiled.
func ValidatePlan(registry *plugins.Registry, paths ...string) (*blueprints.Blueprint, *blueprints.Plan, error) {
	builtin, catalog := languageOf(registry)
	return loadPlan(builtin, catalog, "", paths...)
}

func load(builtin map[string][]byte, catalog *blueprints.Catalog, root string, paths ...string) (*blueprints.Blueprint, error) {
	bp, _, err := loadPlan(builtin, catalog, root, paths...)
	return bp, err
}

func loadPlan(builtin map[string][]byte, catalog *blueprints.Catalog, root string, paths ...string) (*blueprints.Blueprint, *blueprints.Plan, error) {
	l := &blueprints.Loader{Builtin: builtin, Root: root}
	bp, diags := l.Load(paths...)
	var plan *blueprints.Plan
	if !diags.HasErrors() {
		var d hcl.Diagnostics
		plan, d = blueprints.ValidatePlan(bp, catalog)
		diags = append(diags, d...)
		if plan != nil {
			diags = append(diags, policies.Validate(plan)...)
		}
	}
	if diags.HasErrors() {
		return bp, nil, &DiagnosticsError{Files: bp.Files, Diags: diags}
	}
	return bp, plan, nil
}

// engineStore is the store as the engine sees it: deployments resolve to
// targets through the service.
type engineStore struct {
	StateStore
	svc *Service
}

func (e engineStore) Target(ctx context.Context, deployment string) (*workflows.Target, error) {
	return e.svc.Target(ctx, deployment)
}

// SwitchDeployment switches the deployment in the store; it is resolved
// again when next needed.
func (e engineStore) SwitchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance) error {
	err := e.StateStore.SwitchDeployment(ctx, id, u, instances)
	e.svc.forget(id)
	return err
}

// forget drops a deployment's resolved target (its blueprint changed, or
// it is gone).
func (s *Service) forget(id string) {
	s.mu.Lock()
	delete(s.targets, id)
	delete(s.broken, id)
	s.mu.Unlock()
}

// Load parses and validates blueprint files.
func (s *Service) Load(paths ...string) (*blueprints.Blueprint, error) {
	return load(s.builtin, s.Catalog, "", paths...)
}

// DeployRequest asks for a blueprint to be deployed.
type DeployRequest struct {
	Paths  []string          `json:"paths"`
	ID     string            `json:"id,omitempty"`     // default: the first file's name without extension
	Inputs map[string]string `json:"inputs,omitempty"` // -i name=value
	// InputsFile is a file of input values (HCL or JSON attributes); values
	// in Inputs win over it.
	InputsFile string `json:"inputs_file,omitempty"`
	// InputValues are already typed values.
	InputValues map[string]cty.Value `json:"-"`
	// Previous are values for the inputs given none otherwise (an
	// update's: the deployment's values so far).
	Previous   map[string]cty.Value `json:"-"`
	InputFiles map[string]*hcl.File `json:"-"`
	// Root, when set, confines every file the request reads (blueprint,
	// imports, inputs file) to that directory tree, and the inputs file
	// to a .hcl or .json name: the API sets it to the blueprint's
	// directory, so a client cannot have serve read other files.
	Root string `json:"-"`
}

// Deploy validates and resolves the blueprint, stores it and its deployment
// in one transaction, and submits install.
func (s *Service) Deploy(ctx context.Context, req DeployRequest) (*Deployment, *workflows.Execution, error) {
	bp, plan, inputs, abs, err := resolve(s.builtin, s.Catalog, req)
	if err != nil {
		return nil, nil, err
	}
	id := req.ID
	if id == "" {
		base := filepath.Base(req.Paths[0])
		id = strings.TrimSuffix(base, filepath.Ext(base))
	}
	if err := ValidID(id); err != nil {
		return nil, nil, err
	}
	rec := blueprintRecord(bp)
	d := &Deployment{
		ID:        id,
		Blueprint: rec.ID,
		Dir:       filepath.Dir(abs[0]),
		Instances: map[string]*workflows.NodeInstance{},
		CreatedAt: time.Now().UTC(),
	}
	if d.Inputs, d.SensitiveInputs, err = storedInputs(bp, inputs); err != nil {
		return nil, nil, err
	}
	fillDeployment(d, plan)
	d.Instances = workflows.InitialInstances(plan)
	if err := s.Store.CreateDeployment(ctx, rec, d); err != nil {
		return nil, nil, err
	}
	// Keep the resolved target: sensitive inputs given now are not stored.
	s.mu.Lock()
	// The engine changes the target's instances as it runs: they are its
	// own, not the returned deployment's (which a caller may be encoding).
	instances := make(map[string]*workflows.NodeInstance, len(d.Instances))
	for k, inst := range d.Instances {
		cp := *inst
		instances[k] = &cp
	}
	// A replica that owns the new deployment may have taken it up (and
	// begun its install) since it was stored: its target is the live one.
	if _, taken := s.targets[id]; !taken {
		s.targets[id] = &workflows.Target{Deployment: id, Dir: d.Dir, Plan: plan, Instances: instances}
	}
	s.mu.Unlock()
	x, err := s.Engine.Submit(ctx, workflows.Request{Deployment: id, Workflow: workflows.Install})
	if err != nil {
		return d, nil, fmt.Errorf("deployment %s created, but install could not start: %w", id, err)
	}
	return d, x, nil
}

// Plan resolves a blueprint with its inputs as Deploy does, against the
// plugins of registry, without a state file (orch policies replay).
func Plan(registry *plugins.Registry, req DeployRequest) (*blueprints.Plan, error) {
	builtin, catalog := languageOf(registry)
	_, plan, _, _, err := resolve(builtin, catalog, req)
	return plan, err
}

// resolve loads, validates and resolves the blueprint files of req with its
// inputs (command line, inputs file, environment for sensitive ones).
func resolve(builtin map[string][]byte, catalog *blueprints.Catalog, req DeployRequest) (*blueprints.Blueprint, *blueprints.Plan, map[string]cty.Value, []string, error) {
	if len(req.Paths) == 0 {
		return nil, nil, nil, nil, errors.New("deploy: no blueprint file given")
	}
	if req.InputsFile != "" {
		if req.Root != "" {
			if !strings.HasSuffix(req.InputsFile, ".hcl") && !strings.HasSuffix(req.InputsFile, ".json") {
				return nil, nil, nil, nil, fmt.Errorf("inputs file %s: its name must end with .hcl or .json", req.InputsFile)
			}
			if err := blueprints.Within(req.Root, req.InputsFile); err != nil {
				return nil, nil, nil, nil, fmt.Errorf("inputs file: %w", err)
			}
		}
		src, err := blueprints.ReadBlueprintFile(req.InputsFile)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("inputs file: %w", err)
		}
		vals, f, diags := blueprints.ReadInputsFile(req.InputsFile, src)
		if diags.HasErrors() {
			return nil, nil, nil, nil, &DiagnosticsError{Files: map[string]*hcl.File{req.InputsFile: f}, Diags: diags}
		}
		given := map[string]cty.Value{}
		for k, v := range vals {
			if _, onCmdLine := req.Inputs[k]; !onCmdLine {
				given[k] = v
			}
		}
		for k, v := range req.InputValues {
			given[k] = v
		}
		req.InputValues = given
		files := map[string]*hcl.File{req.InputsFile: f}
		for k, v := range req.InputFiles {
			files[k] = v
		}
		req.InputFiles = files
	}
	abs := make([]string, len(req.Paths))
	for i, p := range req.Paths {
		a, err := filepath.Abs(p)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		abs[i] = a
	}
	bp, err := load(builtin, catalog, req.Root, abs...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	inputs := map[string]cty.Value{}
	for k, v := range req.InputValues {
		inputs[k] = v
	}
	for k, raw := range req.Inputs {
		v, err := blueprints.InputValue(bp, k, raw)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("input %s: %w", k, err)
		}
		inputs[k] = v
	}
	for _, in := range bp.Inputs {
		if v, prev := req.Previous[in.Name]; prev && !in.Sensitive {
			if _, given := inputs[in.Name]; !given {
				inputs[in.Name] = v
			}
		}
		if _, ok := inputs[in.Name]; !ok && in.Sensitive {
			if raw, ok := os.LookupEnv(sensitiveEnv(in.Name)); ok {
				v, err := in.Parse(raw)
				if err != nil {
					return nil, nil, nil, nil, fmt.Errorf("input %s from %s: %w", in.Name, sensitiveEnv(in.Name), err)
				}
				inputs[in.Name] = v
			}
		}
	}
	plan, diags := blueprints.Resolve(bp, catalog, inputs)
	if !diags.HasErrors() {
		diags = append(diags, policies.Validate(plan)...)
	}
	if diags.HasErrors() {
		files := bp.Files
		for k, f := range req.InputFiles {
			files[k] = f
		}
		return nil, nil, nil, nil, &DiagnosticsError{Files: files, Diags: diags}
	}
	return bp, plan, inputs, abs, nil
}

// storedInputs are the inputs of bp given a value, as a deployment keeps
// them (sensitive ones never: they come from the environment).
func storedInputs(bp *blueprints.Blueprint, inputs map[string]cty.Value) (map[string]json.RawMessage, []string, error) {
	out := map[string]json.RawMessage{}
	var sensitive []string
	for _, in := range bp.Inputs {
		v, ok := inputs[in.Name]
		if in.Sensitive {
			sensitive = append(sensitive, in.Name)
			continue
		}
		if !ok {
			continue // its default is re-read from the blueprint
		}
		data, err := json.Marshal(blueprints.GoValue(v, true))
		if err != nil {
			return nil, nil, fmt.Errorf("input %s: %w", in.Name, err)
		}
		out[in.Name] = data
	}
	return out, sensitive, nil
}

// fillDeployment records the resolved (redacted) values for display.
func fillDeployment(d *Deployment, plan *blueprints.Plan) {
	d.Properties = map[string]map[string]any{}
	for _, n := range plan.Nodes {
		d.Properties[n.Name] = blueprints.GoMap(n.Properties, true)
	}
	d.Outputs = map[string]any{}
	for k, v := range plan.Outputs {
		d.Outputs[k] = blueprints.GoValue(v, true)
	}
}

func sensitiveEnv(name string) string { return "ORCH_INPUT_" + strings.ToUpper(name) }

// ValidID checks a deployment id: letters, digits, '-', '_' and '.', at most 63.
func ValidID(id string) error {
	if id == "" || len(id) > 63 {
		return fmt.Errorf("deployment id %q must be 1 to 63 characters", id)
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("deployment id %q may contain only letters, digits, '-', '_' and '.'", id)
		}
	}
	return nil
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// blueprintRecord stores every user source; its id is a hash of them, so
// the same blueprint deployed twice is stored once.
func blueprintRecord(bp *blueprints.Blueprint) *BlueprintRecord {
	names := make([]string, 0, len(bp.Sources))
	for k := range bp.Sources {
		names = append(names, k)
	}
	sort.Strings(names)
	h := sha256.New()
	rec := &BlueprintRecord{Main: bp.Main, Sources: map[string]string{}, CreatedAt: time.Now().UTC()}
	for _, k := range names {
		fmt.Fprintf(h, "%s\x00%s\x00", k, bp.Sources[k])
		rec.Sources[k] = string(bp.Sources[k])
	}
	rec.ID = hex.EncodeToString(h.Sum(nil))[:16]
	return rec
}

// Target resolves a stored deployment: its blueprint parsed again from the
// stored sources, with the stored inputs (sensitive ones from the
// environment), and its node instances.
func (s *Service) Target(ctx context.Context, id string) (*workflows.Target, error) {
	s.mu.Lock()
	if t, ok := s.targets[id]; ok {
		s.mu.Unlock()
		return t, nil
	}
	s.mu.Unlock()
	d, err := s.Store.Deployment(ctx, id)
	if err != nil {
		return nil, err
	}
	rec, err := s.Store.Blueprint(ctx, d.Blueprint)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", id, err)
	}
	sources := make(map[string][]byte, len(rec.Sources))
	for k, v := range rec.Sources {
		sources[k] = []byte(v)
	}
	bp, diags := blueprints.Parse(sources, s.builtin, rec.Main...)
	if diags.HasErrors() {
		return nil, fmt.Errorf("deployment %s: stored blueprint: %w", id, &DiagnosticsError{Files: bp.Files, Diags: diags})
	}
	inputs := map[string]cty.Value{}
	for _, in := range bp.Inputs {
		if raw, ok := d.Inputs[in.Name]; ok {
			ty := in.Type
			if ty == cty.DynamicPseudoType {
				if ty, err = ctyjson.ImpliedType(raw); err != nil {
					return nil, fmt.Errorf("deployment %s: input %s: %w", id, in.Name, err)
				}
			}
			v, err := ctyjson.Unmarshal(raw, ty)
			if err != nil {
				return nil, fmt.Errorf("deployment %s: input %s: %w", id, in.Name, err)
			}
			inputs[in.Name] = v
		}
		if in.Sensitive {
			raw, ok := os.LookupEnv(sensitiveEnv(in.Name))
			if !ok {
				if in.HasDefault {
					continue
				}
				return nil, fmt.Errorf("deployment %s: input %q is sensitive and not kept in the state file; set %s", id, in.Name, sensitiveEnv(in.Name))
			}
			v, err := in.Parse(raw)
			if err != nil {
				return nil, fmt.Errorf("deployment %s: input %s from %s: %w", id, in.Name, sensitiveEnv(in.Name), err)
			}
			inputs[in.Name] = v
		}
	}
	plan, policyErr, err := resolveStored(bp, s.Catalog, inputs)
	if err != nil {
		return nil, fmt.Errorf("deployment %s: %w", id, err)
	}
	t := &workflows.Target{Deployment: id, Dir: d.Dir, Plan: plan, Instances: d.Instances}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.targets[id]; ok {
		// Resolved meanwhile by another caller, whose target an execution
		// may be changing already: that one is the deployment's.
		return cur, nil
	}
	s.targets[id] = t
	if policyErr != nil {
		s.broken[id] = policyErr
	}
	return t, nil
}

// resolveStored resolves a stored blueprint. Its policies may no longer
// compile (stored before a check existed): then the plan has no policies,
// so its workflows (uninstall included) still run, and policyErr says why
// its policies are broken.
func resolveStored(bp *blueprints.Blueprint, cat *blueprints.Catalog, inputs map[string]cty.Value) (plan *blueprints.Plan, policyErr, err error) {
	plan, diags := blueprints.Resolve(bp, cat, inputs)
	if !diags.HasErrors() {
		diags = policies.Validate(plan)
		if !diags.HasErrors() {
			return plan, nil, nil
		}
	}
	policyErr = &DiagnosticsError{Files: bp.Files, Diags: diags}
	// Without its policies (and policy types of its own), does the rest
	// still resolve?
	rest := *bp
	rest.Policies = nil
	rest.PolicyTypes = slices.DeleteFunc(slices.Clone(bp.PolicyTypes), func(t *blueprints.PolicyType) bool { return !t.Builtin })
	plan, restDiags := blueprints.Resolve(&rest, cat, inputs)
	if restDiags.HasErrors() {
		return nil, nil, policyErr
	}
	return plan, policyErr, nil
}

// Deployments lists the stored deployments, each marked broken when its
// stored policies no longer compile (as orch serve would find when it
// starts). A deployment this process cannot resolve (a sensitive input
// not in its environment) is listed as stored.
func (s *Service) Deployments(ctx context.Context) ([]*Deployment, error) {
	deps, err := s.Store.Deployments(ctx)
	for _, d := range deps {
		s.annotateStored(ctx, d)
	}
	return deps, err
}

// Deployment returns a stored deployment, marked broken as Deployments
// does.
func (s *Service) Deployment(ctx context.Context, id string) (*Deployment, error) {
	d, err := s.Store.Deployment(ctx, id)
	if err == nil {
		s.annotateStored(ctx, d)
	}
	return d, err
}

// annotateStored annotates a deployment as the state file alone tells:
// broken when its stored policies no longer compile.
func (s *Service) annotateStored(ctx context.Context, d *Deployment) {
	if _, err := s.Target(ctx, d.ID); err == nil {
		s.annotate(ctx, d, s.PolicyProblem(ctx, d.ID))
	}
}

// annotate fills in what a deployment shows beside what is stored: why its
// policies do not run (broken, or nil), and its inputs (description, value
// redacted when sensitive, whether it is the default).
func (s *Service) annotate(ctx context.Context, d *Deployment, broken error) {
	if broken != nil {
		d.Broken = broken.Error()
	}
	t, err := s.Target(ctx, d.ID)
	if err != nil {
		return
	}
	redactRuntime(d, t.Plan)
	d.InputList = nil
	for _, in := range t.Plan.InputDecls {
		info := InputInfo{Name: in.Name, Description: in.Description, Default: in.Defaulted, Sensitive: in.Sensitive}
		if v, ok := t.Plan.Inputs[in.Name]; ok {
			info.Value = blueprints.GoValue(v, true)
		}
		d.InputList = append(d.InputList, info)
	}
}

// redactRuntime hides, in the runtime attributes shown, every value that
// contains a sensitive input or property of the plan (an operation that
// published a password it was given).
func redactRuntime(d *Deployment, plan *blueprints.Plan) {
	vs := make([]cty.Value, 0, len(plan.Inputs)+len(plan.Nodes))
	for _, v := range plan.Inputs {
		vs = append(vs, v)
	}
	for _, n := range plan.Nodes {
		vs = append(vs, n.Properties)
	}
	secrets := blueprints.SensitiveStrings(vs...)
	if len(secrets) == 0 {
		return
	}
	var redact func(v any) any
	redact = func(v any) any {
		switch x := v.(type) {
		case string:
			for _, s := range secrets {
				if strings.Contains(x, s) {
					return blueprints.Redacted
				}
			}
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = redact(e)
			}
			return out
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, e := range x {
				out[k] = redact(e)
			}
			return out
		}
		return v
	}
	for _, inst := range d.Instances {
		if inst.Runtime != nil {
			inst.Runtime = redact(inst.Runtime).(map[string]any)
		}
	}
}

// PolicyProblem returns why a deployment's policies do not run (its stored
// blueprint's policies no longer compile), or nil. It resolves the
// deployment if it was not yet.
func (s *Service) PolicyProblem(ctx context.Context, id string) error {
	if _, err := s.Target(ctx, id); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken[id]
}

// Run submits a workflow and waits for it to end.
func (s *Service) Run(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	x, err := s.Engine.Submit(ctx, req)
	if err != nil {
		return nil, err
	}
	return s.Engine.Wait(ctx, x.ID)
}

// StartUndeploy submits uninstall for a deployment; FinishUndeploy deletes
// the deployment once it has succeeded.
func (s *Service) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	if _, err := s.Store.Deployment(ctx, id); err != nil {
		return nil, err
	}
	return s.Engine.Submit(ctx, workflows.Request{Deployment: id, Workflow: workflows.Uninstall})
}

// FinishUndeploy deletes the deployment if its uninstall x succeeded, and
// says why it is kept otherwise.
func (s *Service) FinishUndeploy(ctx context.Context, x *workflows.Execution) error {
	if x.Status != workflows.Succeeded {
		return fmt.Errorf("uninstall of %s %s: %s; the deployment is kept, run undeploy again", x.Deployment, x.Status, x.Error)
	}
	return s.Ended(ctx, x)
}

// Ended applies what an ended execution means for its deployment: an
// uninstall that succeeded deletes it (a deployment already deleted is
// fine). This is the one place that rule lives; serve, the CLI without
// serve, and Undeploy all end an uninstall through it.
func (s *Service) Ended(ctx context.Context, x *workflows.Execution) error {
	if x.Workflow != workflows.Uninstall || x.Status != workflows.Succeeded {
		return nil
	}
	s.forget(x.Deployment)
	if err := s.Store.DeleteDeployment(ctx, x.Deployment); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("delete deployment %s after its uninstall: %w", x.Deployment, err)
	}
	return nil
}

// Undeploy runs uninstall, waits, and deletes the deployment if it succeeded.
func (s *Service) Undeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	x, err := s.StartUndeploy(ctx, id)
	if err != nil {
		return nil, err
	}
	if x, err = s.Engine.Wait(ctx, x.ID); err != nil {
		return nil, err
	}
	return x, s.FinishUndeploy(ctx, x)
}

// WorkflowParameter is a workflow parameter as listed.
type WorkflowParameter struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Default     any    `json:"default,omitempty"`
	Description string `json:"description,omitempty"`
}

// WorkflowInfo is a deployment's workflow as listed.
type WorkflowInfo struct {
	Name       string              `json:"name"`
	Uses       string              `json:"uses"`
	Steps      []string            `json:"steps,omitempty"` // a workflow written in the blueprint
	Parameters []WorkflowParameter `json:"parameters,omitempty"`
}

// Workflows lists a deployment's workflows and their parameters.
func (s *Service) Workflows(ctx context.Context, deployment string) ([]WorkflowInfo, error) {
	t, err := s.Target(ctx, deployment)
	if err != nil {
		return nil, err
	}
	out := []WorkflowInfo{}
	for _, name := range workflows.Workflows(t) {
		w := WorkflowInfo{Name: name, Uses: "builtin"}
		if pw := t.Plan.Workflows[name]; pw != nil {
			w.Uses = pw.Uses
			if pw.StepWorkflow() {
				w.Uses = fmt.Sprintf("steps (%d)", len(pw.Steps))
				for _, st := range pw.Steps {
					w.Steps = append(w.Steps, st.Name)
				}
			}
			for _, p := range pw.Parameters {
				pp := WorkflowParameter{Name: p.Name, Type: typeexpr.TypeString(p.Type), Description: p.Description}
				if p.HasDefault {
					pp.Default = blueprints.GoValue(p.Default, true)
				}
				w.Parameters = append(w.Parameters, pp)
			}
		}
		out = append(out, w)
	}
	return out, nil
}
