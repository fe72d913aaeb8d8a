package orchestrator

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orchhq/orch/workflows"
)

func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestStateSurvivesReopen(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	bp := &BlueprintRecord{ID: "bp1", Main: []string{"/x/main.hcl"}, Sources: map[string]string{"/x/main.hcl": `node "a" {}`}}
	d := &Deployment{ID: "d1", Blueprint: "bp1", Instances: map[string]*workflows.NodeInstance{"a_1": {ID: "a_1", Node: "a", State: "uninitialized"}}}
	if err := s.CreateDeployment(ctx, bp, d); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeployment(ctx, bp, d); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create: %v", err)
	}
	must(t, s.PutInstance(ctx, "d1", &workflows.NodeInstance{ID: "a_1", Node: "a", State: "started", Runtime: map[string]any{"ip": "10.0.0.1"}}))
	x := &workflows.Execution{ID: workflows.NewID(), Deployment: "d1", Workflow: "install", Status: workflows.Succeeded}
	must(t, s.PutExecution(ctx, x))
	must(t, s.AppendEvents(ctx, []workflows.Event{{Execution: x.ID, Message: "one"}, {Execution: x.ID, Message: "two"}}))
	must(t, s.PutPolicyState(ctx, "d1/p", map[string]string{"cooldown_until": "later"}))
	must(t, s.Close())

	s, err := Open(path, OpenOptions{})
	must(t, err)
	defer s.Close()
	got, err := s.Deployment(ctx, "d1")
	must(t, err)
	if got.Instances["a_1"].State != "started" || got.Instances["a_1"].Runtime["ip"] != "10.0.0.1" {
		t.Errorf("instance = %+v", got.Instances["a_1"])
	}
	b, err := s.Blueprint(ctx, "bp1")
	must(t, err)
	if b.Sources["/x/main.hcl"] != `node "a" {}` {
		t.Errorf("blueprint source lost: %v", b.Sources)
	}
	evs, err := s.Events(ctx, x.ID, 0)
	must(t, err)
	if len(evs) != 2 || evs[0].Seq != 1 || evs[1].Message != "two" {
		t.Errorf("events = %+v", evs)
	}
	if evs, _ := s.Events(ctx, x.ID, 1); len(evs) != 1 || evs[0].Seq != 2 {
		t.Errorf("events after 1 = %+v", evs)
	}
	if gx, err := s.Execution(ctx, x.ID[:12]); err != nil || gx.ID != x.ID {
		t.Errorf("execution by prefix: %v %v", gx, err)
	}
	var ps map[string]string
	must(t, s.PolicyState(ctx, "d1/p", &ps))
	if ps["cooldown_until"] != "later" {
		t.Errorf("policy state = %v", ps)
	}
	must(t, s.DeleteDeployment(ctx, "d1"))
	if _, err := s.Blueprint(ctx, "bp1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unused blueprint kept: %v", err)
	}
	if _, err := s.Execution(ctx, x.ID); err != nil {
		t.Errorf("execution history lost with the deployment: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	must(t, os.WriteFile(garbage, []byte(strings.Repeat("not a database\n", 1000)), 0o600))

	foreign := filepath.Join(dir, "foreign.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("someone-elses")); return err }))
	must(t, db.Close())

	newer := filepath.Join(dir, "newer.db")
	s, err := Open(newer, OpenOptions{})
	must(t, err)
	must(t, s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte("99")) }))
	must(t, s.Close())

	truncated := filepath.Join(dir, "truncated.db")
	s, err = Open(truncated, OpenOptions{})
	must(t, err)
	must(t, s.Close())
	data, _ := os.ReadFile(truncated)
	// bbolt keeps two meta pages and survives one bad one: corrupt both.
	pageSize := os.Getpagesize()
	for _, page := range []int{0, pageSize} {
		for i := page + 16; i < page+80 && i < len(data); i++ {
			data[i] ^= 0xff
		}
	}
	must(t, os.WriteFile(truncated, data, 0o600))

	tests := []struct {
		path, want string
	}{
		{garbage, "not an orch state file or is corrupted"},
		{foreign, "not orch's"},
		{newer, "newer orch"},
		{truncated, "not an orch state file or is corrupted"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			before, _ := os.ReadFile(tt.path)
			_, err := Open(tt.path, OpenOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("error does not name the file: %v", err)
			}
			if after, _ := os.ReadFile(tt.path); string(after) != string(before) {
				t.Errorf("a refused file was modified")
			}
		})
	}
}

func TestOpenLockedFileSaysWho(t *testing.T) {
	s, path := openTemp(t)
	defer s.Close()
	start := time.Now()
	_, err := Open(path, OpenOptions{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "orch serve") {
		t.Fatalf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("lock timeout not honoured")
	}
}

// BenchmarkAppendEvents measures sustained event appends through the
// engine's batching writer into the state file (target: 20,000 events/s).
// Eight executions emit concurrently, as a busy orch serve would.
func BenchmarkAppendEvents(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	svc := NewService(s, registryForBench(), nil)
	ctx := context.Background()
	const writers = 8
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			exec := fmt.Sprintf("exec-%d", w)
			for i := w; i < b.N; i += writers {
				svc.Engine.Emit(workflows.Event{Execution: exec, Level: "info", Type: workflows.EventLog, Message: "operation progress line of a typical length"})
			}
		}(w)
	}
	wg.Wait()
	must(b, svc.Engine.FlushEvents(ctx))
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.StopTimer()
	n := 0
	for w := 0; w < writers; w++ {
		evs, err := s.Events(ctx, fmt.Sprintf("exec-%d", w), 0)
		must(b, err)
		n += len(evs)
	}
	if n != b.N {
		b.Fatalf("stored %d events, want %d", n, b.N)
	}
}

// BenchmarkAppendEventsUnbatched is the baseline: one transaction per event.
func BenchmarkAppendEventsUnbatched(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	ctx := context.Background()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		must(b, s.AppendEvents(ctx, []workflows.Event{{Execution: "x", Level: "info", Message: "operation progress line of a typical length"}}))
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// A corrupted state file is refused with a clear error and left exactly
// as it was, wherever the damage is (bbolt panicked at 4 of 5 offsets).
func TestACorruptedStateFileIsRefusedUntouched(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("x%03d", i)
		must(t, s.PutExecution(ctx, &workflows.Execution{ID: id, Deployment: "d", Workflow: "w", Status: workflows.Succeeded, Error: strings.Repeat("e", 200)}))
	}
	must(t, s.Close())
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	refused := 0
	// One meta page alone is not damage: bbolt keeps two and uses the good
	// one. Both, or a page of the tree, are.
	for _, offs := range [][]int{{16}, {16, pageSize + 16}, {2*pageSize + 8}, {3*pageSize + 100}, {len(good) / 2}, {len(good) - pageSize/2}} {
		bad := append([]byte(nil), good...)
		for _, off := range offs {
			for i := 0; i < 64 && off+i < len(bad); i++ {
				bad[off+i] ^= 0xA5
			}
		}
		off := offs
		p := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(p, bad, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(p, OpenOptions{})
		if err == nil {
			// Damage bbolt's check cannot see (free space): the file must
			// still read without a panic.
			_, rerr := st.Executions(ctx, "d")
			st.Close()
			t.Logf("offset %d: opened (%v)", off, rerr)
			continue
		}
		refused++
		if !strings.Contains(err.Error(), "corrupted") && !strings.Contains(err.Error(), "not an orch state file") {
			t.Errorf("offset %d: %v", off, err)
		}
		after, _ := os.ReadFile(p)
		if string(after) != string(bad) {
			t.Errorf("offset %d: the refused file was changed", off)
		}
	}
	if refused < 3 {
		t.Errorf("%d of 6 corruptions refused, want at least 3", refused)
	}
}

// The executions not ended are indexed by deployment, so scheduling and
// firings read them, not the whole history; a state file from before the
// index gets it when opened; pruning deletes ended executions older than
// the retention, with their events, and nothing else.
func TestUnendedIndexAndPruning(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	old := time.Now().Add(-48 * time.Hour)
	for i := 0; i < 3000; i++ {
		x := &workflows.Execution{ID: fmt.Sprintf("a%05d", i), Deployment: []string{"d1", "d2"}[i%2], Workflow: "w", Status: workflows.Succeeded, EndedAt: &old}
		must(t, s.PutExecution(ctx, x))
	}
	must(t, s.AppendEvents(ctx, []workflows.Event{{Execution: "a00000", Message: "old"}}))
	now := time.Now()
	for _, x := range []*workflows.Execution{
		{ID: "b1", Deployment: "d1", Workflow: "w", Status: workflows.Queued},
		{ID: "b2", Deployment: "d2", Workflow: "w", Status: workflows.Started},
		{ID: "b3", Deployment: "d1", Workflow: "w", Status: workflows.Pending},
		{ID: "b4", Deployment: "d1", Workflow: "w", Status: workflows.Failed, EndedAt: &now},
	} {
		must(t, s.PutExecution(ctx, x))
	}
	ids := func(xs []*workflows.Execution) string {
		var out []string
		for _, x := range xs {
			out = append(out, x.ID)
		}
		return strings.Join(out, ",")
	}
	check := func(when string) {
		t.Helper()
		d1, err := s.Unended(ctx, "d1")
		must(t, err)
		all, err := s.Unended(ctx, "")
		must(t, err)
		if ids(d1) != "b1,b3" || ids(all) != "b1,b2,b3" {
			t.Errorf("%s: unended d1 %s, all %s", when, ids(d1), ids(all))
		}
	}
	check("as written")
	// b1 ends: it leaves the index.
	must(t, s.PutExecution(ctx, &workflows.Execution{ID: "b1", Deployment: "d1", Workflow: "w", Status: workflows.Succeeded, EndedAt: &now}))
	if d1, _ := s.Unended(ctx, "d1"); ids(d1) != "b3" {
		t.Errorf("after b1 ended: %s", ids(d1))
	}
	must(t, s.PutExecution(ctx, &workflows.Execution{ID: "b1", Deployment: "d1", Workflow: "w", Status: workflows.Queued}))
	// A version 1 file (before the index, or an index an older orch let go
	// stale): it is rebuilt when the file is opened for writing.
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketUnended).Put([]byte("d1\x00a00007"), nil); err != nil { // stale: a00007 ended
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}))
	must(t, s.Close())
	s, err := Open(path, OpenOptions{})
	must(t, err)
	defer s.Close()
	check("after the index was rebuilt")

	n, err := s.Prune(ctx, time.Now().Add(-24*time.Hour))
	must(t, err)
	all, err := s.Executions(ctx, "")
	must(t, err)
	if n != 3000 || ids(all) != "b1,b2,b3,b4" {
		t.Errorf("pruned %d, left %d: %s", n, len(all), ids(all))
	}
	if evs, err := s.Events(ctx, "a00000", 0); err != nil || len(evs) != 0 {
		t.Errorf("a pruned execution's events: %v %v", evs, err)
	}
}

// BenchmarkUnendedAmongHistory: what scheduling and a firing read with
// 50,000 ended executions stored and one waiting: the whole history (as
// before the index) against the index of the executions not ended.
func BenchmarkUnendedAmongHistory(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	end := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := 0; i < 50000; i++ {
			if err := put(tx.Bucket(bucketExecutions), fmt.Sprintf("a%06d", i), &workflows.Execution{ID: fmt.Sprintf("a%06d", i), Deployment: fmt.Sprintf("d%d", i%100), Workflow: "w", Status: workflows.Succeeded, EndedAt: &end}); err != nil {
				return err
			}
		}
		return nil
	})
	must(b, err)
	must(b, s.PutExecution(ctx, &workflows.Execution{ID: "z1", Deployment: "d7", Workflow: "w", Status: workflows.Queued}))
	b.Run("scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			xs, err := s.Executions(ctx, "d7")
			if err != nil || len(xs) != 501 {
				b.Fatal(len(xs), err)
			}
		}
	})
	b.Run("index", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			xs, err := s.Unended(ctx, "d7")
			if err != nil || len(xs) != 1 {
				b.Fatal(len(xs), err)
			}
		}
	})
}

// A schema 2 file keeps a deployment's instances in its record, by node
// name; opening it for writing moves them to the instances bucket, by id,
// and later reads find them there.
func TestSchema2InstancesMoveToTheirBucket(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		rec := map[string]any{"id": "old", "blueprint": "bp", "instances": map[string]any{
			"web": map[string]any{"id": "web_a1b2c3", "node": "web", "state": "started", "runtime_properties": map[string]any{"ip": "10.0.0.9"}},
		}}
		if err := put(tx.Bucket(bucketDeployments), "old", rec); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("2"))
	}))
	must(t, s.Close())
	s, err := Open(path, OpenOptions{})
	must(t, err)
	defer s.Close()
	d, err := s.Deployment(ctx, "old")
	must(t, err)
	inst := d.Instances["web_a1b2c3"]
	if len(d.Instances) != 1 || inst == nil || inst.State != "started" || inst.Runtime["ip"] != "10.0.0.9" {
		t.Fatalf("instances after the upgrade = %+v", d.Instances)
	}
	must(t, s.db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket(bucketDeployments).Get([]byte("old"))); strings.Contains(v, "web_a1b2c3") {
			t.Errorf("the record still holds its instances: %s", v)
		}
		if v := string(tx.Bucket(bucketMeta).Get(keySchema)); v != "3" {
			t.Errorf("schema = %s", v)
		}
		return nil
	}))
}

// A leaf page whose element points far outside the file makes bbolt read
// unmapped memory: the state file is refused as corrupted, and orch does
// not crash (before, the read faulted in bbolt's check goroutine, a fatal
// error no recover sees).
func TestAPageThatPointsOutsideTheFileIsRefused(t *testing.T) {
	s, path := openTemp(t)
	ctx := context.Background()
	for i := range 50 {
		must(t, s.PutExecution(ctx, &workflows.Execution{ID: fmt.Sprintf("x%03d", i), Deployment: "d", Workflow: "install", Status: workflows.Succeeded}))
	}
	must(t, s.Close())
	data, err := os.ReadFile(path)
	must(t, err)
	pageSize := os.Getpagesize()
	broken := 0
	for off := 2 * pageSize; off+pageSize <= len(data); off += pageSize {
		flags := binary.LittleEndian.Uint16(data[off+8:])
		count := binary.LittleEndian.Uint16(data[off+10:])
		if flags&0x02 == 0 || count == 0 { // a leaf page with elements
			continue
		}
		// The first element's pos (after its flags): the key is read at
		// the element's address plus pos.
		binary.LittleEndian.PutUint32(data[off+16+4:], 0x7ffffff0)
		broken++
	}
	if broken == 0 {
		t.Fatal("no leaf page found to break")
	}
	must(t, os.WriteFile(path, data, 0o600))
	_, err = Open(path, OpenOptions{})
	if err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("open of a file with %d broken leaf pages: %v", broken, err)
	}
}
