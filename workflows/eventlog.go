package workflows

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// eventLog buffers events and writes them in batches, one transaction per
// batch, so thousands of events a second cost a few fsyncs. Nothing is
// dropped: when the buffer is full, Emit writes synchronously.
type eventLog struct {
	store     Store
	log       *slog.Logger
	observers []func(Event)

	mu      sync.Mutex
	buf     []Event
	writeMu sync.Mutex // keeps batches in order
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

const (
	eventFlushInterval = 50 * time.Millisecond
	eventBufferMax     = 4096
)

func newEventLog(store Store) *eventLog {
	return &eventLog{store: store, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

func (l *eventLog) start() {
	go func() {
		defer close(l.done)
		t := time.NewTicker(eventFlushInterval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
			case <-l.kick:
			}
			if err := l.Flush(context.Background()); err != nil {
				l.log.Error("write events", "err", err)
			}
		}
	}()
}

// Emit adds an event; observers see it at once.
func (l *eventLog) Emit(ev Event) {
	for _, fn := range l.observers {
		fn(ev)
	}
	l.mu.Lock()
	l.buf = append(l.buf, ev)
	full := len(l.buf) >= eventBufferMax
	l.mu.Unlock()
	if full {
		if err := l.Flush(context.Background()); err != nil {
			l.log.Error("write events", "err", err)
		}
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Flush writes everything emitted so far. On error the batch is kept and
// retried by the next flush.
func (l *eventLog) Flush(ctx context.Context) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	batch := l.buf
	l.buf = nil
	l.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := l.store.AppendEvents(ctx, batch); err != nil {
		l.mu.Lock()
		l.buf = append(batch, l.buf...)
		l.mu.Unlock()
		return err
	}
	return nil
}

// Close stops the background writer and flushes.
func (l *eventLog) Close(ctx context.Context) error {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	return l.Flush(ctx)
}
