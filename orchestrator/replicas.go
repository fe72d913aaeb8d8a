package orchestrator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/orchhq/orch/workflows"
)

// Replicas of orch serve share one etcd store. Each registers under
// replicas/ID with a lease it keeps alive; a replica that dies (or is cut
// off, or paused past the lease's TTL) drops out when its lease expires.
// Every deployment has at most one owner, owners/DEPLOYMENT, a key written
// with the owner's lease: deployments are spread over the live replicas by
// rendezvous hashing (each goes to the replica whose hash with it is
// highest, so a replica joining or leaving moves only its share), an owner
// gives up a deployment that hashes elsewhere now, and a replica claims one
// only when nobody owns it. Writes about a deployment made through Fenced
// are transactions conditioned on owning it, so a replica that lost a
// deployment cannot write for it afterwards.

// ErrFenced is returned for a write about a deployment the writer does not
// own (any more).
var ErrFenced = errors.New("fenced: this replica does not own the deployment")

// ErrLeaseLost ends a replica whose lease expired or was revoked: it owns
// nothing any more, and starts again as a new member.
var ErrLeaseLost = errors.New("lease lost: its deployments went to the other replicas; start it again to rejoin")

// ReplicaInfo is what a replica registers.
type ReplicaInfo struct {
	ID      string    `json:"id"`
	API     string    `json:"api,omitempty"`
	Started time.Time `json:"started"`
}

// Replica is this process's membership of the store's replicas.
type Replica struct {
	Info  ReplicaInfo
	store *EtcdStore
	sess  *concurrency.Session

	mu    sync.Mutex
	live  []string        // replica ids, sorted
	owned map[string]bool // deployments owned
	// validUntil is when the lease ends unless renewed again: the time a
	// renewal was sent plus the TTL it was granted. Past it this replica
	// owns nothing, whatever owned says (a process paused past its TTL
	// wakes up owning nothing, before it hears that the lease is gone).
	validUntil time.Time
	// changes receives the owned deployments each time they change;
	// queued the owned deployments an execution was queued for.
	changes chan []string
	queued  chan string
	// releasing are the deployments that hash elsewhere now, kept (since
	// when) until their running execution ends: busy says whether one
	// runs. Nothing new starts for them meanwhile.
	releasing map[string]time.Time
	busy      func(deployment string) bool
	// taken are the owned deployments this process has taken up (its
	// cached view of them dropped, their executions recovered): only
	// their executions start here.
	taken map[string]bool
	// HandOverWait bounds how long a hand-over waits for a running
	// execution (default DefaultHandOverWait).
	HandOverWait time.Duration

	// Claims and Releases count ownership changes; RenewLatency is the
	// last lease renewal's round trip.
	Claims, Releases atomic.Int64
	renewNanos       atomic.Int64
}

// JoinReplicas registers this replica with a lease of ttl and returns its
// membership; Run keeps its ownership up to date.
func JoinReplicas(ctx context.Context, s *EtcdStore, info ReplicaInfo, ttl time.Duration) (*Replica, error) {
	secs := int(ttl.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	start := time.Now()
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(secs), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("replica %s: lease: %w", info.ID, err)
	}
	if info.Started.IsZero() {
		info.Started = time.Now().UTC()
	}
	v, err := encode(info)
	if err != nil {
		return nil, err
	}
	key := s.key("replicas", info.ID)
	ok, err := s.txn(ctx, []clientv3.Cmp{absent(key)}, clientv3.OpPut(key, v, clientv3.WithLease(sess.Lease())))
	if err != nil {
		sess.Close()
		return nil, err
	}
	if !ok {
		sess.Close()
		return nil, fmt.Errorf("replica %s is registered already (another process with its id, or one that died less than its TTL ago)", info.ID)
	}
	return &Replica{Info: info, store: s, sess: sess, owned: map[string]bool{}, validUntil: start.Add(time.Duration(secs) * time.Second),
		changes: make(chan []string, 1), queued: make(chan string, 64)}, nil
}

// Owns reports whether the replica owns a deployment (at its last
// reconcile, and its lease renewed within its TTL).
func (r *Replica) Owns(deployment string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owned[deployment] && time.Now().Before(r.validUntil)
}

// DefaultHandOverWait is how long a replica keeps a deployment that now
// hashes to another replica while an execution of it runs here.
const DefaultHandOverWait = 5 * time.Minute

// HoldHandOvers makes a deployment that hashes elsewhere now stay here
// while busy says an execution of it runs (up to HandOverWait), so the
// next owner never recovers an execution that is still running: a
// graceful hand-over moves a deployment between executions.
func (r *Replica) HoldHandOvers(busy func(deployment string) bool) {
	r.mu.Lock()
	r.busy = busy
	r.mu.Unlock()
}

// Starter is the replica as the engine's owner: it starts executions of
// the deployments it owns and is not handing over.
func (r *Replica) Starter() workflows.Owner { return starter{r} }

type starter struct{ r *Replica }

func (s starter) Owns(deployment string) bool {
	s.r.mu.Lock()
	_, releasing := s.r.releasing[deployment]
	taken := s.r.taken[deployment]
	s.r.mu.Unlock()
	return taken && !releasing && s.r.Owns(deployment)
}

// TakeUp records that this process has taken up an owned deployment (its
// executions may start here from now on), or (on false) has dropped it.
// Without a take-up, an execution of a deployment just claimed would run
// on what this process knew of it before.
func (r *Replica) TakeUp(deployment string, on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.taken == nil {
		r.taken = map[string]bool{}
	}
	if on {
		r.taken[deployment] = true
	} else {
		delete(r.taken, deployment)
	}
}

// holdHandOver says whether to keep a deployment that hashes elsewhere
// for now, recording it in holding.
func (r *Replica) holdHandOver(dep string, holding map[string]time.Time) bool {
	r.mu.Lock()
	busy := r.busy
	since, ok := r.releasing[dep]
	r.mu.Unlock()
	if busy == nil {
		return false
	}
	if !ok {
		since = time.Now()
	}
	if time.Since(since) >= cmp.Or(r.HandOverWait, DefaultHandOverWait) || !busy(dep) {
		return false
	}
	holding[dep] = since
	return true
}

// Queued delivers the deployments this replica owns that another process
// queued an execution of (a request to another replica's API).
func (r *Replica) Queued() <-chan string { return r.queued }

// Lost is closed when the replica's lease is lost: it owns nothing from
// then on.
func (r *Replica) Lost() <-chan struct{} { return r.sess.Done() }

// Changes delivers the deployments owned, each time they change (only the
// newest waits).
func (r *Replica) Changes() <-chan []string { return r.changes }

// Owned lists the deployments this replica owns.
func (r *Replica) Owned() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for d := range r.owned {
			if !yield(d) {
				return
			}
		}
	})
}

// Advertise records the URL of this replica's API in its registration:
// the other replicas forward requests about the deployments it owns there.
func (r *Replica) Advertise(ctx context.Context, api string) error {
	r.mu.Lock()
	r.Info.API = api
	info := r.Info
	r.mu.Unlock()
	v, err := encode(info)
	if err != nil {
		return err
	}
	key := r.store.key("replicas", info.ID)
	ok, err := r.store.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.LeaseValue(key), "=", r.sess.Lease())},
		clientv3.OpPut(key, v, clientv3.WithLease(r.sess.Lease())))
	if err != nil {
		return fmt.Errorf("replica %s: advertise its API: %w", info.ID, err)
	}
	if !ok {
		return fmt.Errorf("replica %s: advertise its API: its registration is gone (lease lost)", info.ID)
	}
	return nil
}

// ID is the replica's id.
func (r *Replica) ID() string { return r.Info.ID }

// Owner is the replica that owns a deployment in the store now; ok is
// false while nobody does (the deployment is moving, or it does not
// exist).
func (r *Replica) Owner(ctx context.Context, deployment string) (info ReplicaInfo, ok bool, err error) {
	s := r.store
	resp, err := s.c.Get(ctx, s.key("owners", deployment))
	if err != nil {
		return ReplicaInfo{}, false, fmt.Errorf("owner of %s: %w", deployment, err)
	}
	if len(resp.Kvs) == 0 {
		return ReplicaInfo{}, false, nil
	}
	id := string(resp.Kvs[0].Value)
	rep, err := s.c.Get(ctx, s.key("replicas", id))
	if err != nil {
		return ReplicaInfo{}, false, fmt.Errorf("owner of %s: replica %s: %w", deployment, id, err)
	}
	if len(rep.Kvs) == 0 {
		// Its lease ended between the two reads: its keys go together.
		return ReplicaInfo{}, false, nil
	}
	if err := json.Unmarshal(rep.Kvs[0].Value, &info); err != nil {
		return ReplicaInfo{}, false, fmt.Errorf("owner of %s: replica %s: %w", deployment, id, err)
	}
	return info, true, nil
}

// Peers are the registered replicas (this one included) and the
// deployments each owns.
func (r *Replica) Peers(ctx context.Context) ([]ReplicaStatus, error) {
	return r.store.replicas(ctx, false)
}

// Lease is the replica's lease in etcd.
func (r *Replica) Lease() clientv3.LeaseID { return r.sess.Lease() }

// Leave gives up every deployment and the registration, at once (not
// waiting for the lease to expire).
func (r *Replica) Leave() error { return r.sess.Close() }

// Rendezvous is the replica a deployment goes to among live (highest
// hash of the pair; "" when none).
func Rendezvous(deployment string, live []string) string {
	best, bestHash := "", uint64(0)
	for _, id := range live {
		sum := sha256.Sum256([]byte(deployment + "\x00" + id))
		if h := binary.BigEndian.Uint64(sum[:8]); best == "" || h > bestHash || h == bestHash && id < best {
			best, bestHash = id, h
		}
	}
	return best
}

// Run keeps ownership up to date until ctx ends or the lease is lost:
// after every change of the replicas or deployments, and every interval
// (a claim may wait for a departing owner's key to go).
func (r *Replica) Run(ctx context.Context, interval time.Duration) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch := r.store.c.Watch(wctx, r.store.prefix, clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithKeysOnly())
	puts := r.store.c.Watch(wctx, r.store.key("replicas")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	deps := r.store.c.Watch(wctx, r.store.key("deployments")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	unended := r.store.c.Watch(wctx, r.store.key("unended")+"/", clientv3.WithPrefix(), clientv3.WithFilterDelete(), clientv3.WithKeysOnly())
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			select {
			case <-r.sess.Done():
				return errors.New("replica lease lost")
			default:
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.sess.Done():
			r.setOwned(nil)
			return errors.New("replica lease lost")
		case <-watch:
		case <-puts:
		case <-deps:
		case <-tick.C:
		case w := <-unended:
			for _, ev := range w.Events {
				// unended/DEPLOYMENT/ID
				rest := strings.TrimPrefix(string(ev.Kv.Key), r.store.key("unended")+"/")
				dep, _, _ := strings.Cut(rest, "/")
				if r.Owns(dep) {
					select {
					case r.queued <- dep:
					default:
					}
				}
			}
			continue
		}
	}
}

// Reconcile claims the deployments that hash here and nobody owns, gives
// up those that hash elsewhere, and records what this replica owns.
func (r *Replica) Reconcile(ctx context.Context) error {
	s := r.store
	start := time.Now()
	ka, err := s.c.KeepAliveOnce(ctx, r.sess.Lease())
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			// Expired (or revoked) while this process did not look: it owns
			// nothing from now, before its session hears of it.
			r.mu.Lock()
			r.validUntil = time.Time{}
			r.mu.Unlock()
			r.setOwned(nil)
		}
		return fmt.Errorf("renew lease: %w", err)
	}
	r.renewNanos.Store(int64(time.Since(start)))
	r.mu.Lock()
	if until := start.Add(time.Duration(ka.TTL) * time.Second); until.After(r.validUntil) {
		r.validUntil = until
	}
	r.mu.Unlock()
	reps, err := s.c.Get(ctx, s.key("replicas")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	var live []string
	for _, kv := range reps.Kvs {
		live = append(live, string(kv.Key[strings.LastIndexByte(string(kv.Key), '/')+1:]))
	}
	sort.Strings(live)
	deps, err := s.c.Get(ctx, s.key("deployments")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	owners, err := s.c.Get(ctx, s.key("owners")+"/", clientv3.WithPrefix())
	if err != nil {
		return err
	}
	ownerOf := map[string]string{}
	for _, kv := range owners.Kvs {
		ownerOf[string(kv.Key[strings.LastIndexByte(string(kv.Key), '/')+1:])] = string(kv.Value)
	}
	owned := map[string]bool{}
	holding := map[string]time.Time{}
	var errs []error
	for _, kv := range deps.Kvs {
		dep := string(kv.Key[strings.LastIndexByte(string(kv.Key), '/')+1:])
		want := Rendezvous(dep, live)
		key := s.key("owners", dep)
		switch cur := ownerOf[dep]; {
		case want == r.Info.ID && cur == "":
			ok, err := s.txn(ctx, []clientv3.Cmp{absent(key)}, clientv3.OpPut(key, r.Info.ID, clientv3.WithLease(r.sess.Lease())))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				r.Claims.Add(1)
				owned[dep] = true
			}
		case cur == r.Info.ID && want != r.Info.ID:
			if r.holdHandOver(dep, holding) {
				owned[dep] = true
				continue
			}
			if _, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.Value(key), "=", r.Info.ID)}, clientv3.OpDelete(key)); err != nil {
				errs = append(errs, err)
				owned[dep] = true
				continue
			}
			r.Releases.Add(1)
		case cur == r.Info.ID:
			owned[dep] = true
		}
	}
	r.mu.Lock()
	r.live = live
	r.releasing = holding
	r.mu.Unlock()
	r.setOwned(owned)
	return errors.Join(errs...)
}

// setOwned records the deployments owned, telling Changes when they
// changed.
func (r *Replica) setOwned(owned map[string]bool) {
	r.mu.Lock()
	same := len(owned) == len(r.owned)
	for d := range owned {
		same = same && r.owned[d]
	}
	if owned == nil {
		owned = map[string]bool{}
	}
	r.owned = owned
	r.mu.Unlock()
	if same {
		return
	}
	list := r.Owned()
	select {
	case <-r.changes:
	default:
	}
	r.changes <- list
}

// Live lists the replicas registered at the last reconcile.
func (r *Replica) Live() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.live)
}

// RenewLatency is the last lease renewal's round trip.
func (r *Replica) RenewLatency() time.Duration { return time.Duration(r.renewNanos.Load()) }

// Replicas lists the registered replicas with the deployments each owns
// (orch replicas).
func (s *EtcdStore) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	return s.replicas(ctx, true)
}

// replicas lists the replicas, their leases' time left with ttl.
func (s *EtcdStore) replicas(ctx context.Context, ttl bool) ([]ReplicaStatus, error) {
	reps, err := s.c.Get(ctx, s.key("replicas")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	owners, err := s.c.Get(ctx, s.key("owners")+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	byID := map[string]*ReplicaStatus{}
	var out []ReplicaStatus
	for _, kv := range reps.Kvs {
		var info ReplicaInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			continue
		}
		st := ReplicaStatus{ReplicaInfo: info}
		if ttl {
			if left, _ := s.c.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); left != nil {
				st.LeaseTTL = time.Duration(left.TTL) * time.Second
			}
		}
		out = append(out, st)
	}
	for i := range out {
		byID[out[i].ID] = &out[i]
	}
	for _, kv := range owners.Kvs {
		if st := byID[string(kv.Value)]; st != nil {
			st.Deployments = append(st.Deployments, string(kv.Key[strings.LastIndexByte(string(kv.Key), '/')+1:]))
		}
	}
	return out, nil
}

// ReplicaStatus is a registered replica and what it owns.
type ReplicaStatus struct {
	ReplicaInfo
	Deployments []string      `json:"deployments"`
	LeaseTTL    time.Duration `json:"lease_ttl"` // left of its lease
}

// FencedStore is an etcd store whose writes about a deployment are
// conditioned on a replica owning it.
type FencedStore struct {
	*EtcdStore
	replica string
	// Refused counts the writes refused because the replica did not own
	// the deployment.
	Refused *atomic.Int64

	mu         sync.Mutex
	deployment map[string]string // of executions, for their events
}

// Fenced is the store writing as replica id.
func (s *EtcdStore) Fenced(id string) *FencedStore {
	return &FencedStore{EtcdStore: s, replica: id, Refused: new(atomic.Int64), deployment: map[string]string{}}
}

// AppendEvents writes the events of the executions of the deployments the
// replica owns. Those of a deployment it lost are refused and counted, and
// not kept for a retry (which would be refused as well): the new owner
// records what became of the execution (resumed, or failed as
// interrupted).
func (f *FencedStore) AppendEvents(ctx context.Context, evs []workflows.Event) error {
	return f.appendEvents(ctx, evs, &eventFence{
		cond: func(ctx context.Context, execution string) (clientv3.Cmp, error) {
			dep, err := f.deploymentOf(ctx, execution)
			if err != nil {
				return clientv3.Cmp{}, err
			}
			return f.owns(dep), nil
		},
		refused: func(string) { f.Refused.Add(1) },
	})
}

// deploymentOf is the deployment of an execution (which never changes).
func (f *FencedStore) deploymentOf(ctx context.Context, execution string) (string, error) {
	f.mu.Lock()
	dep, ok := f.deployment[execution]
	f.mu.Unlock()
	if ok {
		return dep, nil
	}
	x, err := f.Execution(ctx, execution)
	if err != nil {
		return "", fmt.Errorf("events of execution %s: %w", execution, err)
	}
	f.mu.Lock()
	if len(f.deployment) >= 4096 {
		clear(f.deployment)
	}
	f.deployment[execution] = x.Deployment
	f.mu.Unlock()
	return x.Deployment, nil
}

func (f *FencedStore) owns(deployment string) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(f.key("owners", deployment)), "=", f.replica)
}

// fencedTxn runs ops for deployment only while the replica owns it.
func (f *FencedStore) fencedTxn(ctx context.Context, deployment string, ops ...clientv3.Op) error {
	ok, err := f.txn(ctx, []clientv3.Cmp{f.owns(deployment)}, ops...)
	if err != nil {
		return err
	}
	if !ok {
		f.Refused.Add(1)
		return fmt.Errorf("deployment %s: %w", deployment, ErrFenced)
	}
	return nil
}

func (f *FencedStore) PutInstances(ctx context.Context, deployment string, insts []*workflows.NodeInstance) error {
	ops, err := f.instanceOps(deployment, insts)
	if err != nil {
		return err
	}
	return f.fencedTxn(ctx, deployment, ops...)
}

func (f *FencedStore) PutInstance(ctx context.Context, deployment string, inst *workflows.NodeInstance) error {
	return f.PutInstances(ctx, deployment, []*workflows.NodeInstance{inst})
}

func (f *FencedStore) PutExecution(ctx context.Context, x *workflows.Execution) error {
	ops, err := f.executionOps(x)
	if err != nil {
		return err
	}
	return f.fencedTxn(ctx, x.Deployment, ops...)
}

func (f *FencedStore) CreateExecution(ctx context.Context, x *workflows.Execution, with *workflows.Record) error {
	ops, err := f.createOps(x, with)
	if err != nil {
		return err
	}
	// A request (no policy state with it: a workflow run through this
	// replica's API, a new deployment's install) may queue an execution of
	// any deployment: its owner runs it. A policy's firing, which stores
	// the policy's state with it, only while this replica owns the
	// deployment, so a former owner cannot fire twice.
	cmps := []clientv3.Cmp{absent(f.key("executions", x.ID))}
	if with != nil {
		cmps = append(cmps, f.owns(x.Deployment))
	}
	ok, err := f.txn(ctx, cmps, ops...)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := f.Execution(ctx, x.ID); err == nil {
			return fmt.Errorf("execution %s exists already", x.ID)
		}
		f.Refused.Add(1)
		return fmt.Errorf("deployment %s: %w", x.Deployment, ErrFenced)
	}
	return nil
}

func (f *FencedStore) DeleteInstances(ctx context.Context, deployment string, ids []string) error {
	var ops []clientv3.Op
	for _, id := range ids {
		ops = append(ops, clientv3.OpDelete(f.key("instances", deployment, id)))
	}
	return f.fencedTxn(ctx, deployment, ops...)
}

func (f *FencedStore) PutOutputs(ctx context.Context, deployment string, outputs map[string]any) error {
	var d Deployment
	err := f.update(ctx, f.key("deployments", deployment), &d, func() error { d.Outputs = outputs; return nil }, f.owns(deployment))
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("deployment %q: %w", deployment, ErrNotFound)
	case errors.Is(err, errConditions):
		f.Refused.Add(1)
		return fmt.Errorf("deployment %s: %w", deployment, ErrFenced)
	}
	return err
}

// SwitchDeployment is an update's switch, only while this replica owns the
// deployment.
func (f *FencedStore) SwitchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance) error {
	if r, err := f.c.Get(ctx, f.key("owners", id)); err != nil {
		return err
	} else if len(r.Kvs) == 0 || string(r.Kvs[0].Value) != f.replica {
		f.Refused.Add(1)
		return fmt.Errorf("deployment %s: %w", id, ErrFenced)
	}
	return f.EtcdStore.switchDeployment(ctx, id, u, instances, f.owns(id))
}

// PutPolicyState writes a policy's state or decision log, its key naming
// its deployment as the runner writes them ("policy/DEPLOYMENT/NAME",
// "decisions/DEPLOYMENT/NAME").
func (f *FencedStore) PutPolicyState(ctx context.Context, key string, v any) error {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) != 3 {
		return f.EtcdStore.PutPolicyState(ctx, key, v)
	}
	dep := parts[1]
	data, err := encode(v)
	if err != nil {
		return err
	}
	return f.fencedTxn(ctx, dep, clientv3.OpPut(f.key("policies", key), data))
}
