// Package orchestrator ties orch together: blueprints stored with their
// source, deployments and their node instances, executions and their event
// logs in a bbolt state file, and the service that runs workflows on them.
package orchestrator

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/orchhq/orch/workflows"
)

// SchemaVersion is the layout of the state file this orch writes. 2: the
// index of unended executions (a version 1 file gets it when opened for
// writing; an older orch then refuses the file instead of leaving the
// index stale). 3: node instances in their own bucket, by deployment and
// instance id (a node has several), out of the deployment record.
const SchemaVersion = 3

const stateFormat = "orch-state"

var (
	bucketMeta        = []byte("meta")
	bucketBlueprints  = []byte("blueprints")
	bucketDeployments = []byte("deployments")
	bucketExecutions  = []byte("executions")
	bucketEvents      = []byte("events") // one sub-bucket per execution
	bucketPolicies    = []byte("policies")
	// bucketUnended indexes the executions not ended yet, by deployment
	// (keys deployment \x00 id): scheduling and firings read it, never
	// the whole history.
	bucketUnended = []byte("unended")
	// bucketInstances holds one sub-bucket per deployment, its node
	// instances by id: an operation's state change writes one instance,
	// not the deployment.
	bucketInstances = []byte("instances")

	keyFormat = []byte("format")
	keySchema = []byte("schema")

	allBuckets = [][]byte{bucketMeta, bucketBlueprints, bucketDeployments, bucketExecutions, bucketEvents, bucketPolicies, bucketInstances}
)

// ErrLocked means another orch process holds the state file.
var ErrLocked = errors.New("state file is in use by another orch process")

// ErrNotFound is returned for a missing record.
var ErrNotFound = errors.New("not found")

// Store is orch's state in one bbolt file.
type Store struct {
	db   *bolt.DB
	path string
}

// OpenOptions configure Open.
type OpenOptions struct {
	// LockTimeout is how long to wait for another process to release the
	// file (default 1s).
	LockTimeout time.Duration
	ReadOnly    bool
}

// Open opens (creating if needed) the state file at path.
func Open(path string, opts OpenOptions) (*Store, error) {
	if opts.LockTimeout == 0 {
		opts.LockTimeout = time.Second
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("state file %s: %w", path, err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if !opts.ReadOnly {
		// A state file about to be written is checked whole first, read
		// only: a corrupted one is refused with the file untouched, instead
		// of bbolt panicking on a bad page later (or now).
		if err := checkFile(path, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, err := openBolt(path, &bolt.Options{Timeout: opts.LockTimeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%w: %s is locked (is `orch serve` or another orch command running? stop it, or use the API of orch serve)", ErrLocked, path)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
			return nil, fmt.Errorf("state file %s is not an orch state file or is corrupted: %v", path, err)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// Concurrent instance writes share a transaction, waiting at most
	// 2ms for company (bbolt's default is 10ms).
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, path: path}
	if err := s.safeInit(opts.ReadOnly); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// safeInit is init with a panic (a corrupted page) turned into an error.
func (s *Store) safeInit(readOnly bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = corrupted(s.path, r)
		}
	}()
	return s.init(readOnly)
}

// corrupted is the error of a state file bbolt cannot read.
func corrupted(path string, detail any) error {
	return fmt.Errorf("state file %s is not an orch state file or is corrupted (%v); it was not changed: restore it from a backup (docs/operating.md), or move it away to start afresh", path, detail)
}

// openBolt is bolt.Open with a panic (a corrupted page) turned into an
// error.
func openBolt(path string, o *bolt.Options) (db *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %v", berrors.ErrInvalid, r)
		}
	}()
	return bolt.Open(path, 0o600, o)
}

// checkFile runs bbolt's consistency check over an existing state file,
// opened read-only.
func checkFile(path string, lockTimeout time.Duration) (err error) {
	st, statErr := os.Stat(path)
	if statErr != nil || st.Size() == 0 {
		return nil // a new file
	}
	db, err := openBolt(path, &bolt.Options{Timeout: lockTimeout, ReadOnly: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("%w: %s is locked (is `orch serve` or another orch command running? stop it, or use the API of orch serve)", ErrLocked, path)
		}
		return corrupted(path, err)
	}
	defer db.Close()
	defer func() {
		if r := recover(); r != nil {
			err = corrupted(path, r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		// Every page is read here first, in this goroutine, with a fault
		// on a bad page address a panic (recovered above), not the crash
		// it would be in the goroutine bbolt's Check runs in.
		old := debug.SetPanicOnFault(true)
		defer debug.SetPanicOnFault(old)
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b, 0) }); err != nil {
			return corrupted(path, err)
		}
		for cerr := range tx.Check() {
			return corrupted(path, cerr)
		}
		return nil
	})
}

// walk reads every key and value of a bucket and its sub-buckets.
func walk(b *bolt.Bucket, depth int) error {
	if depth > 16 {
		return errors.New("buckets nested too deep")
	}
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			sub := b.Bucket(k)
			if sub == nil {
				continue
			}
			if err := walk(sub, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// init checks the format and schema version, creating them in a new file.
func (s *Store) init(readOnly bool) error {
	check := func(tx *bolt.Tx) (fresh bool, err error) {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return false, fmt.Errorf("state file %s is a bbolt database but not orch's (no meta bucket); refusing to touch it", s.path)
			}
			return true, nil
		}
		if f := meta.Get(keyFormat); string(f) != stateFormat {
			return false, fmt.Errorf("state file %s is not an orch state file (format %q)", s.path, f)
		}
		v, err := strconv.Atoi(string(meta.Get(keySchema)))
		if err != nil {
			return false, fmt.Errorf("state file %s: bad schema version %q", s.path, meta.Get(keySchema))
		}
		if v > SchemaVersion {
			return false, fmt.Errorf("state file %s has schema version %d, written by a newer orch (this one knows %d); upgrade orch", s.path, v, SchemaVersion)
		}
		return false, nil
	}
	if readOnly {
		return s.db.View(func(tx *bolt.Tx) error {
			fresh, err := check(tx)
			if fresh {
				return fmt.Errorf("state file %s is empty", s.path)
			}
			return err
		})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		fresh, err := check(tx)
		if err != nil {
			return err
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		version, _ := strconv.Atoi(string(meta.Get(keySchema)))
		if tx.Bucket(bucketUnended) == nil || (!fresh && version < 2) {
			// A file from before the index: build it once.
			if tx.Bucket(bucketUnended) != nil {
				if err := tx.DeleteBucket(bucketUnended); err != nil {
					return err
				}
			}
			idx, err := tx.CreateBucket(bucketUnended)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketExecutions).ForEach(func(k, v []byte) error {
				var x workflows.Execution
				if err := json.Unmarshal(v, &x); err != nil {
					return fmt.Errorf("decode execution %s: %w", k, err)
				}
				if !x.Status.Ended() {
					return idx.Put(unendedKey(&x), nil)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if !fresh && version < 3 {
			if err := moveInstances(tx); err != nil {
				return err
			}
		}
		if fresh {
			if err := meta.Put(keyFormat, []byte(stateFormat)); err != nil {
				return err
			}
		}
		return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
	})
}

// moveInstances moves the node instances of version 2 deployment records
// (keyed by node name, in the record) to the instances bucket, by id.
func moveInstances(tx *bolt.Tx) error {
	deps := tx.Bucket(bucketDeployments)
	type move struct {
		key []byte
		d   Deployment
	}
	var moves []move
	if err := deps.ForEach(func(k, v []byte) error {
		var d Deployment
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode deployment %s: %w", k, err)
		}
		moves = append(moves, move{bytes.Clone(k), d})
		return nil
	}); err != nil {
		return err
	}
	for _, m := range moves {
		b, err := tx.Bucket(bucketInstances).CreateBucketIfNotExists(m.key)
		if err != nil {
			return err
		}
		for _, inst := range m.d.Instances {
			if err := put(b, inst.ID, inst); err != nil {
				return err
			}
		}
		m.d.Instances = nil
		if err := put(deps, m.d.ID, &m.d); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the state file's path.
func (s *Store) Path() string { return s.path }

func put(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

func get(b *bolt.Bucket, key string, v any) error {
	data := b.Get([]byte(key))
	if data == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// BlueprintRecord is a blueprint as stored: every source file, so a
// deployment can always be parsed again.
type BlueprintRecord struct {
	ID        string            `json:"id"`
	Main      []string          `json:"main"`
	Sources   map[string]string `json:"sources"`
	CreatedAt time.Time         `json:"created_at"`
}

// Deployment is a deployed blueprint.
type Deployment struct {
	ID        string `json:"id"`
	Blueprint string `json:"blueprint"`
	// Dir is the blueprint's directory, for relative paths of scripts.
	Dir string `json:"dir"`
	// Inputs holds input values as given; sensitive inputs are absent
	// (see SensitiveInputs) and must come from the environment.
	Inputs          map[string]json.RawMessage `json:"inputs,omitempty"`
	SensitiveInputs []string                   `json:"sensitive_inputs,omitempty"`
	// Instances are its node instances, by id: kept in their own bucket,
	// filled in when the deployment is read.
	Instances map[string]*workflows.NodeInstance `json:"instances,omitempty"`
	// Properties are the resolved node properties, redacted, for display.
	Properties map[string]map[string]any `json:"properties,omitempty"`
	Outputs    map[string]any            `json:"outputs,omitempty"`
	CreatedAt  time.Time                 `json:"created_at"`
	// Broken says why the deployment's policies do not run (its stored
	// blueprint no longer resolves or compiles); set when it is listed,
	// never stored.
	Broken string `json:"broken,omitempty"`
	// InputList describes every input of its blueprint, with its value
	// (redacted when sensitive) and whether it is the default; set when
	// it is shown, never stored.
	InputList []InputInfo `json:"input_list,omitempty"`
}

// InputInfo is an input of a deployment as shown.
type InputInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Value       any    `json:"value,omitempty"`
	Default     bool   `json:"default,omitempty"`
	Sensitive   bool   `json:"sensitive,omitempty"`
}

// CreateDeployment stores a blueprint (if new) and a deployment in one
// transaction. It fails if the deployment exists.
func (s *Store) CreateDeployment(ctx context.Context, bp *BlueprintRecord, d *Deployment) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bucketDeployments)
		if deps.Get([]byte(d.ID)) != nil {
			return fmt.Errorf("deployment %q already exists (undeploy it first, or pick another id with -d)", d.ID)
		}
		bps := tx.Bucket(bucketBlueprints)
		if bps.Get([]byte(bp.ID)) == nil {
			if err := put(bps, bp.ID, bp); err != nil {
				return err
			}
		}
		insts := tx.Bucket(bucketInstances)
		if insts.Bucket([]byte(d.ID)) != nil {
			if err := insts.DeleteBucket([]byte(d.ID)); err != nil {
				return err
			}
		}
		b, err := insts.CreateBucket([]byte(d.ID))
		if err != nil {
			return err
		}
		for _, inst := range d.Instances {
			if err := put(b, inst.ID, inst); err != nil {
				return err
			}
		}
		rec := *d
		rec.Instances = nil
		return put(deps, d.ID, &rec)
	})
}

// readInstances fills in a deployment's instances.
func readInstances(tx *bolt.Tx, d *Deployment) error {
	d.Instances = map[string]*workflows.NodeInstance{}
	b := tx.Bucket(bucketInstances).Bucket([]byte(d.ID))
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		var inst workflows.NodeInstance
		if err := json.Unmarshal(v, &inst); err != nil {
			return fmt.Errorf("decode instance %s of %s: %w", k, d.ID, err)
		}
		d.Instances[inst.ID] = &inst
		return nil
	})
}

// Deployment reads a deployment.
func (s *Store) Deployment(ctx context.Context, id string) (*Deployment, error) {
	var d Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := get(tx.Bucket(bucketDeployments), id, &d); err != nil {
			return err
		}
		return readInstances(tx, &d)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("deployment %q: %w", id, ErrNotFound)
	}
	return &d, err
}

// Deployments lists all deployments, by id.
func (s *Store) Deployments(ctx context.Context) ([]*Deployment, error) {
	var out []*Deployment
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDeployments).ForEach(func(k, v []byte) error {
			var d Deployment
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("decode deployment %s: %w", k, err)
			}
			out = append(out, &d)
			return readInstances(tx, &d)
		})
	})
	return out, err
}

// Blueprint reads a stored blueprint.
func (s *Store) Blueprint(ctx context.Context, id string) (*BlueprintRecord, error) {
	var bp BlueprintRecord
	err := s.db.View(func(tx *bolt.Tx) error { return get(tx.Bucket(bucketBlueprints), id, &bp) })
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("blueprint %q: %w", id, ErrNotFound)
	}
	return &bp, err
}

// DeleteDeployment removes a deployment, and its blueprint if no other
// deployment uses it, in one transaction. Executions and events stay as
// history.
func (s *Store) DeleteDeployment(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bucketDeployments)
		var d Deployment
		if err := get(deps, id, &d); err != nil {
			return fmt.Errorf("deployment %q: %w", id, err)
		}
		if err := deps.Delete([]byte(id)); err != nil {
			return err
		}
		if tx.Bucket(bucketInstances).Bucket([]byte(id)) != nil {
			if err := tx.Bucket(bucketInstances).DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		used := false
		_ = deps.ForEach(func(k, v []byte) error {
			var other Deployment
			if json.Unmarshal(v, &other) == nil && other.Blueprint == d.Blueprint {
				used = true
			}
			return nil
		})
		if !used {
			return tx.Bucket(bucketBlueprints).Delete([]byte(d.Blueprint))
		}
		return nil
	})
}

// PutBlueprint stores a blueprint record if it is not stored yet (an
// update's new blueprint, before the deployment takes it).
func (s *Store) PutBlueprint(ctx context.Context, bp *BlueprintRecord) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bps := tx.Bucket(bucketBlueprints)
		if bps.Get([]byte(bp.ID)) != nil {
			return nil
		}
		return put(bps, bp.ID, bp)
	})
}

// SwitchDeployment gives a deployment an update's blueprint, inputs and
// resolved values, and exactly instances, in one transaction; the old
// blueprint goes if no deployment uses it any more. The deployment is
// resolved again when next needed.
func (s *Store) SwitchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bucketDeployments)
		var d Deployment
		if err := get(deps, id, &d); err != nil {
			return fmt.Errorf("deployment %q: %w", id, err)
		}
		if tx.Bucket(bucketBlueprints).Get([]byte(u.Blueprint)) == nil {
			return fmt.Errorf("blueprint %s of the update is not stored", u.Blueprint)
		}
		old := d.Blueprint
		d.Blueprint, d.Inputs, d.Properties, d.Outputs = u.Blueprint, u.Inputs, u.Properties, u.Outputs
		if u.Dir != "" {
			d.Dir = u.Dir
		}
		d.Instances = nil
		if err := put(deps, id, &d); err != nil {
			return err
		}
		insts := tx.Bucket(bucketInstances)
		if insts.Bucket([]byte(id)) != nil {
			if err := insts.DeleteBucket([]byte(id)); err != nil {
				return err
			}
		}
		b, err := insts.CreateBucket([]byte(id))
		if err != nil {
			return err
		}
		for _, inst := range instances {
			if err := put(b, inst.ID, inst); err != nil {
				return err
			}
		}
		if old == u.Blueprint {
			return nil
		}
		used := false
		_ = deps.ForEach(func(k, v []byte) error {
			var other Deployment
			if json.Unmarshal(v, &other) == nil && other.Blueprint == old {
				used = true
			}
			return nil
		})
		if !used {
			return tx.Bucket(bucketBlueprints).Delete([]byte(old))
		}
		return nil
	})
	return err
}

// PutInstance stores a node instance's state, relationships and runtime
// properties. Concurrent calls (an install's parallel operations) share a
// transaction (bbolt's Batch), so a wide install is not one fsync per
// operation.
func (s *Store) PutInstance(ctx context.Context, deployment string, inst *workflows.NodeInstance) error {
	return s.db.Batch(func(tx *bolt.Tx) error { return putInstances(tx, deployment, inst) })
}

// PutInstances stores several instances in one transaction.
func (s *Store) PutInstances(ctx context.Context, deployment string, insts []*workflows.NodeInstance) error {
	return s.db.Update(func(tx *bolt.Tx) error { return putInstances(tx, deployment, insts...) })
}

func putInstances(tx *bolt.Tx, deployment string, insts ...*workflows.NodeInstance) error {
	if tx.Bucket(bucketDeployments).Get([]byte(deployment)) == nil {
		return fmt.Errorf("deployment %q: %w", deployment, ErrNotFound)
	}
	b, err := tx.Bucket(bucketInstances).CreateBucketIfNotExists([]byte(deployment))
	if err != nil {
		return err
	}
	for _, inst := range insts {
		if err := put(b, inst.ID, inst); err != nil {
			return err
		}
	}
	return nil
}

// DeleteInstances removes instances (a scale removed them) in one
// transaction.
func (s *Store) DeleteInstances(ctx context.Context, deployment string, ids []string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInstances).Bucket([]byte(deployment))
		if b == nil {
			return nil
		}
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutOutputs stores a deployment's outputs as last evaluated (redacted).
func (s *Store) PutOutputs(ctx context.Context, deployment string, outputs map[string]any) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		deps := tx.Bucket(bucketDeployments)
		var d Deployment
		if err := get(deps, deployment, &d); err != nil {
			return fmt.Errorf("deployment %q: %w", deployment, err)
		}
		d.Outputs = outputs
		return put(deps, deployment, &d)
	})
}

func copyAny(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// PutExecution creates or updates an execution (and the index of those not
// ended, in the same transaction).
func (s *Store) PutExecution(ctx context.Context, x *workflows.Execution) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := put(tx.Bucket(bucketExecutions), x.ID, x); err != nil {
			return err
		}
		if idx := tx.Bucket(bucketUnended); idx != nil {
			if x.Status.Ended() {
				return idx.Delete(unendedKey(x))
			}
			return idx.Put(unendedKey(x), nil)
		}
		return nil
	})
}

// CreateExecution stores a new execution (an id in use is refused) and,
// in the same transaction, a policy state record: a firing's cooldown, its
// trigger record and the execution it queued are stored together, or not
// at all, in one fsync.
func (s *Store) CreateExecution(ctx context.Context, x *workflows.Execution, with *workflows.Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		execs := tx.Bucket(bucketExecutions)
		if execs.Get([]byte(x.ID)) != nil {
			return fmt.Errorf("execution %s exists already", x.ID)
		}
		if err := put(execs, x.ID, x); err != nil {
			return err
		}
		if idx := tx.Bucket(bucketUnended); idx != nil && !x.Status.Ended() {
			if err := idx.Put(unendedKey(x), nil); err != nil {
				return err
			}
		}
		if with != nil {
			return put(tx.Bucket(bucketPolicies), with.Key, with.Value)
		}
		return nil
	})
}

func unendedKey(x *workflows.Execution) []byte { return []byte(x.Deployment + "\x00" + x.ID) }

// Unended lists the executions not ended yet (pending, queued, started,
// cancelling) of a deployment, or (with "") of all, in creation order;
// it reads the index, not the history.
func (s *Store) Unended(ctx context.Context, deployment string) ([]*workflows.Execution, error) {
	var out []*workflows.Execution
	err := s.db.View(func(tx *bolt.Tx) error {
		idx, execs := tx.Bucket(bucketUnended), tx.Bucket(bucketExecutions)
		if idx == nil {
			return nil
		}
		c := idx.Cursor()
		prefix := []byte(deployment + "\x00")
		k, _ := c.First()
		if deployment != "" {
			k, _ = c.Seek(prefix)
		}
		for ; k != nil && (deployment == "" || bytes.HasPrefix(k, prefix)); k, _ = c.Next() {
			_, id, _ := bytes.Cut(k, []byte{0})
			v := execs.Get(id)
			if v == nil {
				continue
			}
			var x workflows.Execution
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode execution %s: %w", id, err)
			}
			out = append(out, &x)
		}
		return nil
	})
	if deployment == "" {
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	}
	return out, err
}

// Prune deletes the executions that ended before `before`, with their
// events, and returns how many went. It works in batches, so a long
// history never holds the file in one transaction.
func (s *Store) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		n := 0
		err := s.db.Update(func(tx *bolt.Tx) error {
			execs, events := tx.Bucket(bucketExecutions), tx.Bucket(bucketEvents)
			var doomed [][]byte
			err := execs.ForEach(func(k, v []byte) error {
				if len(doomed) >= 1000 {
					return errStop
				}
				var x workflows.Execution
				if json.Unmarshal(v, &x) == nil && x.Status.Ended() && x.EndedAt != nil && x.EndedAt.Before(before) {
					doomed = append(doomed, bytes.Clone(k))
				}
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			for _, k := range doomed {
				if err := execs.Delete(k); err != nil {
					return err
				}
				if events.Bucket(k) != nil {
					if err := events.DeleteBucket(k); err != nil {
						return err
					}
				}
			}
			n = len(doomed)
			return nil
		})
		total += n
		if err != nil || n < 1000 || ctx.Err() != nil {
			return total, err
		}
	}
}

var errStop = errors.New("stop")

// Execution reads an execution by id or unique id prefix.
func (s *Store) Execution(ctx context.Context, id string) (*workflows.Execution, error) {
	var x workflows.Execution
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketExecutions)
		if v := b.Get([]byte(id)); v != nil {
			return json.Unmarshal(v, &x)
		}
		if id == "" {
			return ErrNotFound
		}
		c := b.Cursor()
		var match []byte
		for k, v := c.Seek([]byte(id)); k != nil && len(k) >= len(id) && string(k[:len(id)]) == id; k, v = c.Next() {
			if match != nil {
				return fmt.Errorf("execution id prefix %q is ambiguous", id)
			}
			match = v
		}
		if match == nil {
			return ErrNotFound
		}
		return json.Unmarshal(match, &x)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("execution %q: %w", id, ErrNotFound)
	}
	return &x, err
}

// Executions lists executions in creation order, of one deployment or
// (with "") of all.
func (s *Store) Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error) {
	var out []*workflows.Execution
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketExecutions).ForEach(func(k, v []byte) error {
			var x workflows.Execution
			if err := json.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("decode execution %s: %w", k, err)
			}
			if deployment == "" || x.Deployment == deployment {
				out = append(out, &x)
			}
			return nil
		})
	})
	return out, err
}

// AppendEvents appends events to their executions' logs in one transaction.
func (s *Store) AppendEvents(ctx context.Context, evs []workflows.Event) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketEvents)
		var b *bolt.Bucket
		var cur string
		for i := range evs {
			ev := &evs[i]
			if b == nil || ev.Execution != cur {
				var err error
				if b, err = root.CreateBucketIfNotExists([]byte(ev.Execution)); err != nil {
					return fmt.Errorf("events of %s: %w", ev.Execution, err)
				}
				cur = ev.Execution
			}
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			ev.Seq = seq
			data, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], seq)
			if err := b.Put(key[:], data); err != nil {
				return err
			}
		}
		return nil
	})
}

// Events returns the events of an execution with Seq > after, in order.
func (s *Store) Events(ctx context.Context, execution string, after uint64) ([]workflows.Event, error) {
	var out []workflows.Event
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketEvents).Bucket([]byte(execution))
		if b == nil {
			return nil
		}
		var start [8]byte
		binary.BigEndian.PutUint64(start[:], after+1)
		c := b.Cursor()
		for k, v := c.Seek(start[:]); k != nil; k, v = c.Next() {
			var ev workflows.Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode event %d of %s: %w", binary.BigEndian.Uint64(k), execution, err)
			}
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// PolicyState reads a policy's state value (room for the policy runner).
func (s *Store) PolicyState(ctx context.Context, key string, v any) error {
	return s.db.View(func(tx *bolt.Tx) error { return get(tx.Bucket(bucketPolicies), key, v) })
}

// PutPolicyState stores a policy's state value.
func (s *Store) PutPolicyState(ctx context.Context, key string, v any) error {
	return s.db.Update(func(tx *bolt.Tx) error { return put(tx.Bucket(bucketPolicies), key, v) })
}
