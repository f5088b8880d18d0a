package password

import (
	"runtime"
	"sync"
)

// lent counts the processors that open pools added to GOMAXPROCS for their
// workers. GOMAXPROCS belongs to the process, so the pools of one process
// (tests make many, some at once) share this count: a new pool's default
// size is the processors that were not lent, and each pool gives back
// exactly what it took, once, whatever the order of opening and closing.
var lent struct {
	sync.Mutex
	procs int
}

// lendProcs raises GOMAXPROCS by the workers of a new pool, which are
// first set to the processors not lent to other pools when workers ≤ 0.
// It returns the workers.
func lendProcs(workers int) int {
	lent.Lock()
	defer lent.Unlock()
	cur := runtime.GOMAXPROCS(0)
	if workers <= 0 {
		workers = unlentProcs(cur)
	}
	lent.procs += workers
	runtime.GOMAXPROCS(cur + workers)
	return workers
}

// returnProcs lowers GOMAXPROCS by the workers of a closed pool. Should
// someone have lowered it meanwhile, it stays at least 1.
func returnProcs(workers int) {
	lent.Lock()
	defer lent.Unlock()
	lent.procs -= workers
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0)-workers, 1))
}

// defaultWorkers is a pool's default number of workers: the processors of
// GOMAXPROCS that pools did not add.
func defaultWorkers() int {
	lent.Lock()
	defer lent.Unlock()
	return unlentProcs(runtime.GOMAXPROCS(0))
}

// unlentProcs returns the processors of cur (GOMAXPROCS) that pools did
// not add, at least 1. The caller holds lent.
func unlentProcs(cur int) int { return max(cur-lent.procs, 1) }
