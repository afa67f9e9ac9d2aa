// Package stallwatch measures how long the machine stops running this
// process. Checks of "on time" subtract it: on the development and CI VMs
// the host deschedules the vCPUs for up to a second or more, and time the
// process was not run is not the lateness of the code under test.
package stallwatch

import (
	"sync/atomic"
	"time"
)

// tick is how often the watcher asks to wake up.
const tick = 5 * time.Millisecond

// Watch records the longest gap between two wake-ups of a goroutine that
// asks to wake every 5 ms, beyond those 5 ms.
type Watch struct {
	longest atomic.Int64
	done    chan struct{}
}

// Start starts a Watch; Stop ends it.
func Start() *Watch {
	w := &Watch{done: make(chan struct{})}
	go w.run()
	return w
}

func (w *Watch) run() {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-w.done:
			return
		case now := <-t.C:
			// A ticker drops ticks it could not deliver: the gap since
			// the last one seen is what this goroutine was kept from.
			now = time.Now()
			if gap := now.Sub(last) - tick; gap > w.Longest() {
				w.longest.Store(int64(gap))
			}
			last = now
		}
	}
}

// Longest is the longest stall seen so far.
func (w *Watch) Longest() time.Duration { return time.Duration(w.longest.Load()) }

// Stop ends the watch.
func (w *Watch) Stop() { close(w.done) }
