package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/orchhq/orch/workflows"
)

// EtcdStore keeps orch's state in etcd, under a prefix, for replicas of
// orch serve that share it. Every change that bbolt makes in one
// transaction is one etcd transaction here too. Keys, under PREFIX:
//
//	deployments/ID             a deployment (without its instances)
//	blueprints/ID              a blueprint record
//	instances/DEPLOYMENT/ID    a node instance
//	executions/ID              an execution
//	unended/DEPLOYMENT/ID      the index of executions not ended
//	events/EXECUTION/SEQ       an event (SEQ zero-padded, so keys sort)
//	eventseq/EXECUTION         the last SEQ of an execution
//	policies/KEY               policy state
type EtcdStore struct {
	c      *clientv3.Client
	prefix string
	url    string
}

var _ StateStore = (*EtcdStore)(nil)

// EtcdOptions configure OpenEtcd.
type EtcdOptions struct {
	// DialTimeout bounds connecting (default 5s); RequestTimeout each
	// request (default 10s).
	DialTimeout, RequestTimeout time.Duration
}

// IsEtcdURL reports whether a --store value names etcd.
func IsEtcdURL(s string) bool { return strings.HasPrefix(s, "etcd://") }

// ParseEtcdURL splits etcd://HOST:PORT[,HOST:PORT]/PREFIX into endpoints
// (http://HOST:PORT each) and the key prefix ("/PREFIX/").
func ParseEtcdURL(s string) (endpoints []string, prefix string, err error) {
	if !IsEtcdURL(s) {
		return nil, "", fmt.Errorf("store %q: not etcd://HOST:PORT/PREFIX", s)
	}
	rest := strings.TrimPrefix(s, "etcd://")
	hosts, path, _ := strings.Cut(rest, "/")
	if hosts == "" {
		return nil, "", fmt.Errorf("store %q: no etcd endpoint", s)
	}
	for _, h := range strings.Split(hosts, ",") {
		u, err := url.Parse("http://" + h)
		if err != nil || u.Host == "" || u.Port() == "" || u.Path != "" {
			return nil, "", fmt.Errorf("store %q: endpoint %q is not HOST:PORT", s, h)
		}
		endpoints = append(endpoints, "http://"+u.Host)
	}
	path = strings.Trim(path, "/")
	if path == "" {
		return nil, "", fmt.Errorf("store %q: give a key prefix (etcd://HOST:PORT/PREFIX), so orch's keys stay apart from others'", s)
	}
	return endpoints, "/" + path + "/", nil
}

// OpenEtcd connects to the etcd a store URL names.
func OpenEtcd(storeURL string, opts EtcdOptions) (*EtcdStore, error) {
	endpoints, prefix, err := ParseEtcdURL(storeURL)
	if err != nil {
		return nil, err
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: opts.DialTimeout, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.DialTimeout)
	defer cancel()
	if _, err := c.Get(ctx, prefix+"deployments/", clientv3.WithCountOnly(), clientv3.WithPrefix()); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(endpoints, ","), err)
	}
	return &EtcdStore{c: c, prefix: prefix, url: storeURL}, nil
}

// Client is the etcd client (for coordinating replicas).
func (s *EtcdStore) Client() *clientv3.Client { return s.c }

// Prefix is the store's key prefix.
func (s *EtcdStore) Prefix() string { return s.prefix }

func (s *EtcdStore) Path() string { return s.url }
func (s *EtcdStore) Close() error { return s.c.Close() }

func (s *EtcdStore) key(parts ...string) string { return s.prefix + strings.Join(parts, "/") }

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// getJSON reads one key into v (ErrNotFound when absent).
func (s *EtcdStore) getJSON(ctx context.Context, key string, v any) error {
	r, err := s.c.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(r.Kvs) == 0 {
		return ErrNotFound
	}
	if err := json.Unmarshal(r.Kvs[0].Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", strings.TrimPrefix(key, s.prefix), err)
	}
	return nil
}

// txn runs a transaction of ops, if every comparison holds; false when
// one does not.
func (s *EtcdStore) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	r, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, err
	}
	return r.Succeeded, nil
}

func exists(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), ">", 0) }
func absent(key string) clientv3.Cmp { return clientv3.Compare(clientv3.CreateRevision(key), "=", 0) }

func (s *EtcdStore) CreateDeployment(ctx context.Context, bp *BlueprintRecord, d *Deployment) error {
	dk := s.key("deployments", d.ID)
	rec := *d
	rec.Instances = nil
	dv, err := encode(&rec)
	if err != nil {
		return err
	}
	bv, err := encode(bp)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(dk, dv), clientv3.OpPut(s.key("blueprints", bp.ID), bv)}
	list := make([]*workflows.NodeInstance, 0, len(d.Instances))
	for _, inst := range d.Instances {
		list = append(list, inst)
	}
	more, err := s.replaceInstances(ctx, d.ID, list)
	if err != nil {
		return err
	}
	ops = append(ops, more...)
	ok, err := s.txn(ctx, []clientv3.Cmp{absent(dk)}, ops...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("deployment %q already exists (undeploy it first, or pick another id with -d)", d.ID)
	}
	return nil
}

// replaceInstances are the writes that leave a deployment with exactly
// insts: each put, and the others stored deleted (one key each: etcd
// refuses a transaction whose ranges overlap).
func (s *EtcdStore) replaceInstances(ctx context.Context, deployment string, insts []*workflows.NodeInstance) ([]clientv3.Op, error) {
	r, err := s.c.Get(ctx, s.key("instances", deployment)+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	var ops []clientv3.Op
	for _, inst := range insts {
		v, err := encode(inst)
		if err != nil {
			return nil, err
		}
		k := s.key("instances", deployment, inst.ID)
		keep[k] = true
		ops = append(ops, clientv3.OpPut(k, v))
	}
	for _, kv := range r.Kvs {
		if !keep[string(kv.Key)] {
			ops = append(ops, clientv3.OpDelete(string(kv.Key)))
		}
	}
	return ops, nil
}

func (s *EtcdStore) instances(ctx context.Context, d *Deployment) error {
	r, err := s.c.Get(ctx, s.key("instances", d.ID)+"/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	d.Instances = map[string]*workflows.NodeInstance{}
	for _, kv := range r.Kvs {
		var inst workflows.NodeInstance
		if err := json.Unmarshal(kv.Value, &inst); err != nil {
			return fmt.Errorf("decode instance %s: %w", kv.Key, err)
		}
		d.Instances[inst.ID] = &inst
	}
	return nil
}

func (s *EtcdStore) Deployment(ctx context.Context, id string) (*Deployment, error) {
	var d Deployment
	if err := s.getJSON(ctx, s.key("deployments", id), &d); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("deployment %q: %w", id, ErrNotFound)
		}
		return nil, err
	}
	return &d, s.instances(ctx, &d)
}

func (s *EtcdStore) Deployments(ctx context.Context) ([]*Deployment, error) {
	r, err := s.c.Get(ctx, s.key("deployments")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []*Deployment
	for _, kv := range r.Kvs {
		var d Deployment
		if err := json.Unmarshal(kv.Value, &d); err != nil {
			return nil, fmt.Errorf("decode deployment %s: %w", kv.Key, err)
		}
		if err := s.instances(ctx, &d); err != nil {
			return nil, err
		}
		out = append(out, &d)
	}
	return out, nil
}

// blueprintUsed reports whether a deployment other than except uses bp.
func (s *EtcdStore) blueprintUsed(ctx context.Context, bp, except string) (bool, error) {
	deps, err := s.Deployments(ctx)
	if err != nil {
		return false, err
	}
	for _, d := range deps {
		if d.ID != except && d.Blueprint == bp {
			return true, nil
		}
	}
	return false, nil
}

func (s *EtcdStore) DeleteDeployment(ctx context.Context, id string) error {
	d, err := s.Deployment(ctx, id)
	if err != nil {
		return err
	}
	used, err := s.blueprintUsed(ctx, d.Blueprint, id)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpDelete(s.key("deployments", id)), clientv3.OpDelete(s.key("instances", id)+"/", clientv3.WithPrefix())}
	if !used {
		ops = append(ops, clientv3.OpDelete(s.key("blueprints", d.Blueprint)))
	}
	ok, err := s.txn(ctx, []clientv3.Cmp{exists(s.key("deployments", id))}, ops...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("deployment %q: %w", id, ErrNotFound)
	}
	return nil
}

func (s *EtcdStore) Blueprint(ctx context.Context, id string) (*BlueprintRecord, error) {
	var bp BlueprintRecord
	if err := s.getJSON(ctx, s.key("blueprints", id), &bp); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("blueprint %q: %w", id, ErrNotFound)
		}
		return nil, err
	}
	return &bp, nil
}

func (s *EtcdStore) PutBlueprint(ctx context.Context, bp *BlueprintRecord) error {
	v, err := encode(bp)
	if err != nil {
		return err
	}
	k := s.key("blueprints", bp.ID)
	_, err = s.txn(ctx, []clientv3.Cmp{absent(k)}, clientv3.OpPut(k, v))
	return err
}

func (s *EtcdStore) SwitchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance) error {
	return s.switchDeployment(ctx, id, u, instances)
}

// switchDeployment is SwitchDeployment, also conditioned on cmps.
func (s *EtcdStore) switchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance, cmps ...clientv3.Cmp) error {
	d, err := s.Deployment(ctx, id)
	if err != nil {
		return err
	}
	old := d.Blueprint
	d.Blueprint, d.Inputs, d.Properties, d.Outputs = u.Blueprint, u.Inputs, u.Properties, u.Outputs
	if u.Dir != "" {
		d.Dir = u.Dir
	}
	d.Instances = nil
	dv, err := encode(d)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.key("deployments", id), dv)}
	more, err := s.replaceInstances(ctx, id, instances)
	if err != nil {
		return err
	}
	ops = append(ops, more...)
	if old != u.Blueprint {
		used, err := s.blueprintUsed(ctx, old, id)
		if err != nil {
			return err
		}
		if !used {
			ops = append(ops, clientv3.OpDelete(s.key("blueprints", old)))
		}
	}
	ok, err := s.txn(ctx, append([]clientv3.Cmp{exists(s.key("deployments", id)), exists(s.key("blueprints", u.Blueprint))}, cmps...), ops...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("switch deployment %s: it, or blueprint %s of the update, is not stored", id, u.Blueprint)
	}
	return nil
}

func (s *EtcdStore) PutInstance(ctx context.Context, deployment string, inst *workflows.NodeInstance) error {
	return s.PutInstances(ctx, deployment, []*workflows.NodeInstance{inst})
}

// instanceOps are the puts of a deployment's instances.
func (s *EtcdStore) instanceOps(deployment string, insts []*workflows.NodeInstance) ([]clientv3.Op, error) {
	var ops []clientv3.Op
	for _, inst := range insts {
		v, err := encode(inst)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.key("instances", deployment, inst.ID), v))
	}
	return ops, nil
}

func (s *EtcdStore) PutInstances(ctx context.Context, deployment string, insts []*workflows.NodeInstance) error {
	ops, err := s.instanceOps(deployment, insts)
	if err != nil {
		return err
	}
	ok, err := s.txn(ctx, []clientv3.Cmp{exists(s.key("deployments", deployment))}, ops...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("deployment %q: %w", deployment, ErrNotFound)
	}
	return nil
}

func (s *EtcdStore) DeleteInstances(ctx context.Context, deployment string, ids []string) error {
	var ops []clientv3.Op
	for _, id := range ids {
		ops = append(ops, clientv3.OpDelete(s.key("instances", deployment, id)))
	}
	_, err := s.txn(ctx, nil, ops...)
	return err
}

// errConditions says a write's extra conditions did not hold.
var errConditions = errors.New("conditions do not hold")

// update reads a record, changes it and writes it back if no one wrote it
// meanwhile (retrying otherwise) and the extra conditions hold
// (errConditions when they do not).
func (s *EtcdStore) update(ctx context.Context, key string, v any, change func() error, extra ...clientv3.Cmp) error {
	for {
		r, err := s.c.Get(ctx, key)
		if err != nil {
			return err
		}
		if len(r.Kvs) == 0 {
			return ErrNotFound
		}
		if err := json.Unmarshal(r.Kvs[0].Value, v); err != nil {
			return err
		}
		if err := change(); err != nil {
			return err
		}
		data, err := encode(v)
		if err != nil {
			return err
		}
		rev := r.Kvs[0].ModRevision
		ok, err := s.txn(ctx, append([]clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)}, extra...), clientv3.OpPut(key, data))
		if err != nil || ok {
			return err
		}
		if len(extra) > 0 {
			again, err := s.c.Get(ctx, key)
			if err != nil {
				return err
			}
			if len(again.Kvs) > 0 && again.Kvs[0].ModRevision == rev {
				return errConditions // not written meanwhile: an extra condition failed
			}
		}
	}
}

func (s *EtcdStore) PutOutputs(ctx context.Context, deployment string, outputs map[string]any) error {
	var d Deployment
	err := s.update(ctx, s.key("deployments", deployment), &d, func() error { d.Outputs = outputs; return nil })
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("deployment %q: %w", deployment, ErrNotFound)
	}
	return err
}

// executionOps are the writes of an execution and its unended index.
func (s *EtcdStore) executionOps(x *workflows.Execution) ([]clientv3.Op, error) {
	v, err := encode(x)
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.key("executions", x.ID), v)}
	idx := s.key("unended", x.Deployment, x.ID)
	if x.Status.Ended() {
		ops = append(ops, clientv3.OpDelete(idx))
	} else {
		ops = append(ops, clientv3.OpPut(idx, ""))
	}
	return ops, nil
}

func (s *EtcdStore) PutExecution(ctx context.Context, x *workflows.Execution) error {
	ops, err := s.executionOps(x)
	if err != nil {
		return err
	}
	_, err = s.txn(ctx, nil, ops...)
	return err
}

// createOps are the writes of a new execution and the record stored with
// it.
func (s *EtcdStore) createOps(x *workflows.Execution, with *workflows.Record) ([]clientv3.Op, error) {
	ops, err := s.executionOps(x)
	if err != nil || with == nil {
		return ops, err
	}
	v, err := encode(with.Value)
	if err != nil {
		return nil, err
	}
	return append(ops, clientv3.OpPut(s.key("policies", with.Key), v)), nil
}

func (s *EtcdStore) CreateExecution(ctx context.Context, x *workflows.Execution, with *workflows.Record) error {
	ops, err := s.createOps(x, with)
	if err != nil {
		return err
	}
	ok, err := s.txn(ctx, []clientv3.Cmp{absent(s.key("executions", x.ID))}, ops...)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("execution %s exists already", x.ID)
	}
	return nil
}

func (s *EtcdStore) Execution(ctx context.Context, id string) (*workflows.Execution, error) {
	var x workflows.Execution
	err := s.getJSON(ctx, s.key("executions", id), &x)
	if errors.Is(err, ErrNotFound) && id != "" {
		// An unambiguous id prefix.
		r, gerr := s.c.Get(ctx, s.key("executions", id), clientv3.WithPrefix(), clientv3.WithLimit(2))
		switch {
		case gerr != nil:
			return nil, gerr
		case len(r.Kvs) > 1:
			return nil, fmt.Errorf("execution id prefix %q is ambiguous", id)
		case len(r.Kvs) == 1:
			err = json.Unmarshal(r.Kvs[0].Value, &x)
		}
	}
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("execution %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &x, nil
}

func (s *EtcdStore) Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error) {
	r, err := s.c.Get(ctx, s.key("executions")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	var out []*workflows.Execution
	for _, kv := range r.Kvs {
		var x workflows.Execution
		if err := json.Unmarshal(kv.Value, &x); err != nil {
			return nil, fmt.Errorf("decode execution %s: %w", kv.Key, err)
		}
		if deployment == "" || x.Deployment == deployment {
			out = append(out, &x)
		}
	}
	return out, nil
}

func (s *EtcdStore) Unended(ctx context.Context, deployment string) ([]*workflows.Execution, error) {
	p := s.key("unended") + "/"
	if deployment != "" {
		p = s.key("unended", deployment) + "/"
	}
	r, err := s.c.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	var out []*workflows.Execution
	for _, kv := range r.Kvs {
		id := string(kv.Key[strings.LastIndexByte(string(kv.Key), '/')+1:])
		var x workflows.Execution
		if err := s.getJSON(ctx, s.key("executions", id), &x); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, &x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (s *EtcdStore) Prune(ctx context.Context, before time.Time) (int, error) {
	all, err := s.Executions(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, x := range all {
		if !x.Status.Ended() || x.EndedAt == nil || !x.EndedAt.Before(before) {
			continue
		}
		if _, err := s.txn(ctx, nil, clientv3.OpDelete(s.key("executions", x.ID)), clientv3.OpDelete(s.key("unended", x.Deployment, x.ID)),
			clientv3.OpDelete(s.key("events", x.ID)+"/", clientv3.WithPrefix()), clientv3.OpDelete(s.key("eventseq", x.ID))); err != nil {
			return n, err
		}
		n++
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
	return n, nil
}

// seqKey is an event's key: its sequence zero-padded, so keys sort as
// numbers.
func (s *EtcdStore) seqKey(execution string, seq uint64) string {
	return s.key("events", execution, fmt.Sprintf("%020d", seq))
}

func (s *EtcdStore) AppendEvents(ctx context.Context, evs []workflows.Event) error {
	return s.appendEvents(ctx, evs, nil)
}

// appendEvents writes, per execution, its events after its last sequence,
// in one transaction conditioned on that sequence (retried if another
// writer appended meanwhile), and on fence's condition for the execution
// when fence is given: the events of an execution whose condition fails
// are left out, and fence's refused is called for it.
func (s *EtcdStore) appendEvents(ctx context.Context, evs []workflows.Event, fence *eventFence) error {
	var order []string
	byExec := map[string][]int{}
	for i := range evs {
		x := evs[i].Execution
		if byExec[x] == nil {
			order = append(order, x)
		}
		byExec[x] = append(byExec[x], i)
	}
	for _, x := range order {
		seqK := s.key("eventseq", x)
		var guard []clientv3.Cmp
		if fence != nil {
			c, err := fence.cond(ctx, x)
			if errors.Is(err, ErrNotFound) {
				continue // pruned: nothing to add to
			}
			if err != nil {
				return err
			}
			guard = []clientv3.Cmp{c}
		}
		for {
			r, err := s.c.Get(ctx, seqK)
			if err != nil {
				return err
			}
			var last uint64
			cmp := absent(seqK)
			if len(r.Kvs) > 0 {
				if _, err := fmt.Sscan(string(r.Kvs[0].Value), &last); err != nil {
					return fmt.Errorf("event sequence of %s: %w", x, err)
				}
				cmp = clientv3.Compare(clientv3.ModRevision(seqK), "=", r.Kvs[0].ModRevision)
			}
			var ops []clientv3.Op
			seq := last
			for _, i := range byExec[x] {
				seq++
				evs[i].Seq = seq
				v, err := encode(&evs[i])
				if err != nil {
					return err
				}
				ops = append(ops, clientv3.OpPut(s.seqKey(x, seq), v))
			}
			ops = append(ops, clientv3.OpPut(seqK, fmt.Sprint(seq)))
			ok, err := s.txn(ctx, append([]clientv3.Cmp{cmp}, guard...), ops...)
			if err != nil {
				return err
			}
			if ok {
				break
			}
			if guard != nil {
				// Fenced, or another writer appended: which?
				held, err := s.txn(ctx, guard)
				if err != nil {
					return err
				}
				if !held {
					fence.refused(x)
					break
				}
			}
		}
	}
	return nil
}

// eventFence conditions the events of an execution (cond; ErrNotFound
// for an execution no longer stored, whose events are left out) and hears
// of those refused.
type eventFence struct {
	cond    func(ctx context.Context, execution string) (clientv3.Cmp, error)
	refused func(execution string)
}

func (s *EtcdStore) Events(ctx context.Context, execution string, after uint64) ([]workflows.Event, error) {
	end := clientv3.GetPrefixRangeEnd(s.key("events", execution) + "/")
	r, err := s.c.Get(ctx, s.seqKey(execution, after+1), clientv3.WithRange(end))
	if err != nil {
		return nil, err
	}
	var out []workflows.Event
	for _, kv := range r.Kvs {
		var ev workflows.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode event %s: %w", kv.Key, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

func (s *EtcdStore) PolicyState(ctx context.Context, key string, v any) error {
	return s.getJSON(ctx, s.key("policies", key), v)
}

func (s *EtcdStore) PutPolicyState(ctx context.Context, key string, v any) error {
	data, err := encode(v)
	if err != nil {
		return err
	}
	_, err = s.c.Put(ctx, s.key("policies", key), data)
	return err
}
