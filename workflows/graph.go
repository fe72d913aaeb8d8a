package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Task is one node of a task graph.
type Task struct {
	ID   string
	Deps []string // IDs of tasks that must succeed first
	Run  func(ctx context.Context) error
}

// RunGraph runs tasks in dependency order, independent tasks in parallel (at
// most parallel at once; 0 means no limit). After the first failure no new
// task starts; the running ones finish, and the errors are joined.
func RunGraph(ctx context.Context, tasks []*Task, parallel int) error {
	byID := make(map[string]*Task, len(tasks))
	for _, t := range tasks {
		if _, dup := byID[t.ID]; dup {
			return fmt.Errorf("task graph: duplicate task %q", t.ID)
		}
		byID[t.ID] = t
	}
	waiting := make(map[string]int, len(tasks)) // unfinished deps
	dependents := map[string][]string{}
	for _, t := range tasks {
		for _, d := range t.Deps {
			if _, ok := byID[d]; !ok {
				return fmt.Errorf("task graph: task %q depends on unknown task %q", t.ID, d)
			}
			waiting[t.ID]++
			dependents[d] = append(dependents[d], t.ID)
		}
	}
	if parallel <= 0 {
		parallel = len(tasks)
	}
	type result struct {
		id  string
		err error
	}
	results := make(chan result)
	var ready []string
	for _, t := range tasks {
		if waiting[t.ID] == 0 {
			ready = append(ready, t.ID)
		}
	}
	sort.Strings(ready)
	running, done := 0, 0
	var errs []error
	for {
		for len(errs) == 0 && ctx.Err() == nil && running < parallel && len(ready) > 0 {
			id := ready[0]
			ready = ready[1:]
			running++
			go func(t *Task) {
				results <- result{t.ID, t.Run(ctx)}
			}(byID[id])
		}
		if running == 0 {
			break
		}
		r := <-results
		running--
		done++
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		for _, d := range dependents[r.id] {
			waiting[d]--
			if waiting[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if done < len(tasks) {
		var stuck []string
		for _, t := range tasks {
			if waiting[t.ID] > 0 {
				stuck = append(stuck, t.ID)
			}
		}
		return fmt.Errorf("task graph: cycle among %s", strings.Join(stuck, ", "))
	}
	return nil
}
