// Go peer for the myriad benchmarks (bench/peers/go). Workloads and the
// RESULT line format are those of BENCH.md; build and run with ./run.
//
// Idioms chosen where Go offers several:
//   - workers: runtime.GOMAXPROCS(workers); default = GOMAXPROCS's own
//     default (one per usable CPU, or the GOMAXPROCS environment variable).
//   - the root task is the main goroutine for spawn/chain/yield/pingpong (it
//     is a goroutine like any other); fib runs its root call in a goroutine
//     of its own so that every call is a goroutine.
//   - spawn: the root starts N goroutines, each decrements a shared
//     atomic.Int64; the one that reaches 0 closes a done channel.
//   - chain: goroutine i starts goroutine i+1 and returns; the last closes
//     the done channel.
//   - fib: one goroutine per call, no cutoff; the parent starts both
//     children, waits on a sync.WaitGroup and adds the results they stored.
//   - yield: runtime.Gosched(); completion through a sync.WaitGroup.
//   - pingpong: per pair two channels of capacity 1 (one each way); a round
//     trip is 2 messages, so msgs = 2 * pairs * rounds.
//   - peak_rss_kb: getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go peer: %s\n", msg)
	fmt.Fprintln(os.Stderr, "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> [--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R]")
	os.Exit(2)
}

// Parameters each workload accepts (besides --workers).
var params = map[string][]string{
	"spawn":    {"n"},
	"chain":    {"n"},
	"fib":      {"n"},
	"yield":    {"tasks", "yields"},
	"pingpong": {"pairs", "rounds"},
}

// Workloads of BENCH.md this peer does not implement (yet).
var unsupported = map[string]bool{"park": true, "echo": true, "agents": true, "noisy": true}

func parseArgs(workload string, args []string) map[string]int64 {
	allowed := map[string]bool{"workers": true}
	for _, p := range params[workload] {
		allowed[p] = true
	}
	vals := map[string]int64{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "--") {
			usage(fmt.Sprintf("unexpected argument %q", a))
		}
		name, val, hasVal := strings.Cut(a[2:], "=")
		if !allowed[name] {
			usage(fmt.Sprintf("unknown flag --%s for workload %s", name, workload))
		}
		if !hasVal {
			if i+1 >= len(args) {
				usage(fmt.Sprintf("flag --%s needs a value", name))
			}
			i++
			val = args[i]
		}
		v, err := strconv.ParseInt(val, 10, 64)
		min := int64(1)
		if workload == "fib" && name == "n" {
			min = 0
		}
		if err != nil || v < min {
			usage(fmt.Sprintf("bad value %q for --%s (an integer >= %d)", val, name, min))
		}
		if _, dup := vals[name]; dup {
			usage(fmt.Sprintf("flag --%s given twice", name))
		}
		vals[name] = v
	}
	return vals
}

func get(vals map[string]int64, name string, def int64) int64 {
	if v, ok := vals[name]; ok {
		return v
	}
	return def
}

func peakRSSKB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss
}

// progress prints a line on stderr once the run has taken a second, then
// every 5 s; the returned function stops it.
func progress(workload string) func() {
	stop := make(chan struct{})
	start := time.Now()
	go func() {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "go peer: %s running, %.0f s...\n", workload, time.Since(start).Seconds())
				t.Reset(5 * time.Second)
			}
		}
	}()
	return func() { close(stop) }
}

func runSpawn(n int64) int64 {
	var count atomic.Int64
	count.Store(n)
	done := make(chan struct{})
	for i := int64(0); i < n; i++ {
		go func() {
			if count.Add(-1) == 0 {
				close(done)
			}
		}()
	}
	<-done
	return n
}

func link(i, n int64, done chan struct{}) {
	if i < n {
		go link(i+1, n, done)
	} else {
		close(done)
	}
}

func runChain(n int64) int64 {
	done := make(chan struct{})
	go link(1, n, done)
	<-done
	return n
}

func fib(n int64) int64 {
	if n < 2 {
		return n
	}
	var a, b int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { a = fib(n - 1); wg.Done() }()
	go func() { b = fib(n - 2); wg.Done() }()
	wg.Wait()
	return a + b
}

func runFib(n int64) int64 {
	res := make(chan int64, 1)
	go func() { res <- fib(n) }()
	return <-res
}

func runYield(tasks, yields int64) {
	var wg sync.WaitGroup
	wg.Add(int(tasks))
	for i := int64(0); i < tasks; i++ {
		go func() {
			for y := int64(0); y < yields; y++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
}

func runPingpong(pairs, rounds int64) {
	var wg sync.WaitGroup
	wg.Add(int(2 * pairs))
	for p := int64(0); p < pairs; p++ {
		ping := make(chan int64, 1)
		pong := make(chan int64, 1)
		go func() { // pinger: sends, then waits for the answer (2 messages a round)
			for r := int64(0); r < rounds; r++ {
				ping <- r
				<-pong
			}
			wg.Done()
		}()
		go func() { // ponger: echoes every token back
			for r := int64(0); r < rounds; r++ {
				pong <- <-ping
			}
			wg.Done()
		}()
	}
	wg.Wait()
}

func main() {
	if len(os.Args) < 2 {
		usage("missing workload")
	}
	workload := os.Args[1]
	if unsupported[workload] {
		fmt.Printf("RESULT workload=%s unsupported=1\n", workload)
		return
	}
	if _, ok := params[workload]; !ok {
		usage(fmt.Sprintf("unknown workload %q", workload))
	}
	vals := parseArgs(workload, os.Args[2:])
	workers := get(vals, "workers", int64(runtime.GOMAXPROCS(0)))
	runtime.GOMAXPROCS(int(workers))

	stopProgress := progress(workload)
	var tasks int64
	var extra string
	start := time.Now()
	switch workload {
	case "spawn":
		tasks = runSpawn(get(vals, "n", 1000000))
	case "chain":
		tasks = runChain(get(vals, "n", 1000000))
	case "fib":
		n := get(vals, "n", 30)
		r := runFib(n)
		extra = fmt.Sprintf(" result=%d", r)
		tasks = 2*fibSeq(n+1) - 1 // one goroutine per call
	case "yield":
		t, y := get(vals, "tasks", 1000), get(vals, "yields", 1000)
		runYield(t, y)
		tasks = t
	case "pingpong":
		p, r := get(vals, "pairs", 1000), get(vals, "rounds", 1000)
		runPingpong(p, r)
		tasks = 2 * p
	}
	wall := time.Since(start).Seconds()
	stopProgress()

	switch workload {
	case "spawn":
		extra = fmt.Sprintf(" tasks_per_s=%.0f ns_per_task=%.2f", float64(tasks)/wall, wall*1e9/float64(tasks))
	case "chain":
		extra = fmt.Sprintf(" tasks_per_s=%.0f", float64(tasks)/wall)
	case "fib":
		extra += fmt.Sprintf(" tasks_per_s=%.0f", float64(tasks)/wall)
	case "yield":
		extra = fmt.Sprintf(" switches_per_s=%.0f", float64(get(vals, "tasks", 1000)*get(vals, "yields", 1000))/wall)
	case "pingpong":
		// A round trip is 2 messages: msgs = 2 * pairs * rounds.
		extra = fmt.Sprintf(" msgs_per_s=%.0f", float64(2*get(vals, "pairs", 1000)*get(vals, "rounds", 1000))/wall)
	}
	fmt.Printf("RESULT workload=%s workers=%d wall_s=%.6f tasks=%d peak_rss_kb=%d%s\n",
		workload, workers, wall, tasks, peakRSSKB(), extra)
}

// fibSeq returns fib(n) sequentially (for the call count 2*fib(n+1)-1).
func fibSeq(n int64) int64 {
	a, b := int64(0), int64(1)
	for i := int64(0); i < n; i++ {
		a, b = b, a+b
	}
	return a
}
