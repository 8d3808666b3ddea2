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
//   - park: a goroutine per task blocked in time.Sleep, completion through a
//     sync.WaitGroup. time.Sleep rather than time.AfterFunc: AfterFunc only
//     arms a runtime timer and starts a goroutine when it fires, so nothing
//     would be parked (it would measure N timers, not N tasks); a goroutine
//     per task that blocks is the Go idiom for a parked task, and its cost
//     (the 2 KB stack, the g record, its timer, the closure) is what park
//     measures. alive_max comes from an atomic counter (incremented when a
//     goroutine starts, decremented when it ends, a CAS loop keeps the
//     maximum); bytes_per_task = (VmHWM - VmRSS before spawning) / alive_max.
//     Before spawning, N * goParkBytesPerTask is checked against 80% of
//     MemAvailable; when it does not fit, the line says unsupported=1.
//   - echo: net.Listen on 127.0.0.1:0 (Go takes the listen backlog from
//     /proc/sys/net/core/somaxconn, 4096 here; it cannot be set per socket),
//     a goroutine per accepted connection (io.ReadFull 64 bytes, write them
//     back), a goroutine per client (net.Dial, R round trips of 64 bytes,
//     each checked); TCP_NODELAY is Go's default on both sides. A round trip
//     is one message: msgs_per_s = conns * rounds / wall_s. tasks = conns
//     (the client goroutines; the server goroutines are not counted).
//   - agents: a goroutine per agent. Its tool connection is pooled: one
//     net.Dial per agent when it starts, kept for all its steps (a bufio
//     Reader for the answer lines). The LLM calls go through one
//     http.Client whose Transport is tuned for one busy host:
//     MaxConnsPerHost = MaxIdleConnsPerHost = llm_concurrency (requests
//     beyond it wait for a connection, as myriad's window), no
//     compression, no HTTP/2; the body is built with encoding/json and the
//     answer decoded with it (choices[0].message.content must not be
//     empty), then drained and closed so that the connection is reused.
//     The servers are not started here: bench/compare passes --tool-port
//     and --llm-port (exit 2 without them). cpu_s_per_step is getrusage
//     (RUSAGE_SELF) user+sys over the run / (agents * steps).
//   - noisy: the hog is this binary again (os/exec with MYRIAD_PEER_HOG=C
//     in its environment, started before the rounds), which locks its
//     goroutine to its thread, pins the thread to CPU C with
//     sched_setaffinity, says so on a pipe and spins without system calls
//     until it is killed after the last round (Pdeathsig kills it if we
//     die first). The rounds: --rounds fork-join fib(n), one after the
//     other, each as the fib workload (a goroutine per call); the unit of
//     p99_us is each fib(u) call, u = n - 12 (at least 1), timed from the
//     start of its goroutine to its result, as myriad-bench and the Tokio
//     peer do. policy=go (--policy accepts default or go only).
//   - peak_rss_kb: VmHWM of /proc/self/status (see peakRSSKB).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "go peer: %s\n", msg)
	fmt.Fprintln(os.Stderr, "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> [--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R] [--n N --sleep-ms S] [--conns C --rounds R] [--agents A --steps S --tool-ms T --llm-ms L --llm-concurrency C --tool-port P --llm-port P] [noisy: --n N --policy default|go --rounds R --hog-cpu C]")
	os.Exit(2)
}

// Parameters each workload accepts (besides --workers).
var params = map[string][]string{
	"spawn":    {"n"},
	"chain":    {"n"},
	"fib":      {"n"},
	"yield":    {"tasks", "yields"},
	"pingpong": {"pairs", "rounds"},
	"park":     {"n", "sleep-ms"},
	"echo":     {"conns", "rounds"},
	"agents":   {"agents", "steps", "tool-ms", "llm-ms", "llm-concurrency", "tool-port", "llm-port"},
	"noisy":    {"n", "policy", "rounds", "hog-cpu"},
}

// Workloads of BENCH.md this peer does not implement (yet).
var unsupported = map[string]bool{}

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
		if name == "policy" {
			// One scheduler here: its name is the policy.
			if val != "default" && val != "go" {
				usage(fmt.Sprintf("bad value %q for --policy (the go peer has one: default or go)", val))
			}
			continue
		}
		v, err := strconv.ParseInt(val, 10, 64)
		min, max := int64(1), int64(1<<62)
		if (workload == "fib" && name == "n") || name == "tool-ms" {
			min = 0
		}
		if workload == "noisy" && name == "n" {
			min, max = 2, 40
		}
		if name == "hog-cpu" {
			min, max = -1, 1023
		}
		if strings.HasSuffix(name, "-port") || name == "llm-concurrency" {
			max = 65535
		}
		if err != nil || v < min || v > max {
			usage(fmt.Sprintf("bad value %q for --%s (an integer from %d to %d)", val, name, min, max))
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

// peakRSSKB is VmHWM of /proc/self/status: the peak RSS of this process's
// memory since exec. getrusage's ru_maxrss is not used first because Linux
// carries the exec'ing parent's peak into it (a small run started from
// bench/compare would report Python's RSS).
func peakRSSKB() int64 {
	if kb := procKB("/proc/self/status", "VmHWM"); kb >= 0 {
		return kb
	}
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
	if cpu := os.Getenv(hogEnv); cpu != "" {
		runHog(cpu) // the noisy workload's hog: never returns
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

	switch workload {
	case "park":
		if !parkFits(get(vals, "n", 1000000)) {
			fmt.Printf("RESULT workload=park unsupported=1\n")
			return
		}
	case "echo":
		raiseNofile(uint64(2*get(vals, "conns", 10000)+echoSpareFDs), "echo (2 per connection and some to spare)", "--conns", 2, echoSpareFDs)
	case "agents":
		if _, ok := vals["tool-port"]; !ok {
			usage("agents needs --tool-port and --llm-port (bench/compare starts the servers)")
		}
		if _, ok := vals["llm-port"]; !ok {
			usage("agents needs --tool-port and --llm-port (bench/compare starts the servers)")
		}
		spare := uint64(get(vals, "llm-concurrency", 256) + agentSpareFDs)
		raiseNofile(uint64(get(vals, "agents", 10000))+spare, "agents (a tool connection per agent, the LLM connections and some to spare)", "--agents", 1, spare)
	}

	stopProgress := progress(workload)
	var tasks int64
	var extra string
	var wall float64 // park and echo measure their own (from the first spawn)
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
	case "park":
		tasks = get(vals, "n", 1000000)
		wall, extra = runPark(tasks, get(vals, "sleep-ms", 20000))
	case "echo":
		tasks = get(vals, "conns", 10000)
		wall, extra = runEcho(tasks, get(vals, "rounds", 100))
	case "noisy":
		n, rounds := get(vals, "n", 30), get(vals, "rounds", 10)
		tasks = rounds * (2*fibSeq(n+1) - 1) // a goroutine per call
		wall, extra = runNoisy(n, rounds, get(vals, "hog-cpu", 0))
	case "agents":
		tasks = get(vals, "agents", 10000)
		wall, extra = runAgents(agentParams{
			agents: tasks, steps: get(vals, "steps", 10),
			toolMS: get(vals, "tool-ms", 2), llmMS: get(vals, "llm-ms", 20),
			llmConc:  get(vals, "llm-concurrency", 256),
			toolPort: get(vals, "tool-port", 0), llmPort: get(vals, "llm-port", 0),
		})
	}
	if wall == 0 {
		wall = time.Since(start).Seconds()
	}
	stopProgress()

	switch workload {
	case "spawn":
		extra = fmt.Sprintf(" tasks_per_s=%.0f ns_per_task=%.2f", float64(tasks)/wall, wall*1e9/float64(tasks))
	case "chain":
		extra = fmt.Sprintf(" tasks_per_s=%.0f", float64(tasks)/wall)
	case "fib":
		extra += fmt.Sprintf(" tasks_per_s=%.0f", float64(tasks)/wall)
	case "noisy":
		extra = fmt.Sprintf(" policy=go tasks_per_s=%.0f", float64(tasks)/wall) + extra
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

// --- park ----------------------------------------------------------------------

// goParkBytesPerTask is the memory check's estimate of one parked goroutine
// (measured here: about 2.7 KB at 1M, see PLATFORM.md), with some margin.
const goParkBytesPerTask = 2800

// procKB returns a "Name:   123 kB" field of a /proc file (status, meminfo) in KiB.
func procKB(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			var v int64
			fmt.Sscanf(strings.TrimSpace(line[len(field)+1:]), "%d", &v)
			return v
		}
	}
	return -1
}

func minflt() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Minflt
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}

type parkState struct {
	alive, aliveMax, lateMax atomic.Int64
	wg                       sync.WaitGroup
	base                     time.Time
	sleep                    time.Duration
}

func parkTask(st *parkState, spawned time.Duration) {
	atomicMax(&st.aliveMax, st.alive.Add(1))
	time.Sleep(st.sleep)
	// late = time woken - (spawn time + sleep)
	atomicMax(&st.lateMax, int64(time.Since(st.base)-spawned-st.sleep))
	st.alive.Add(-1)
	st.wg.Done()
}

// parkFits says whether n parked goroutines fit in 80% of MemAvailable; when
// not, it says so on stderr.
func parkFits(n int64) bool {
	availKB := procKB("/proc/meminfo", "MemAvailable")
	need := float64(n) * goParkBytesPerTask
	if availKB > 0 && need > 0.8*float64(availKB)*1024 {
		fmt.Fprintf(os.Stderr, "go peer: park --n %d would need ~%.1f GB (%d B/task), have %.1f GB available (80%% usable): reported unsupported\n",
			n, need/1e9, goParkBytesPerTask, float64(availKB)*1024/1e9)
		return false
	}
	return true
}

// runPark returns (wall, extra keys).
func runPark(n int64, sleepMS int64) (float64, string) {
	st := &parkState{sleep: time.Duration(sleepMS) * time.Millisecond}
	st.lateMax.Store(-1 << 62)
	st.wg.Add(int(n))
	rssBefore := procKB("/proc/self/status", "VmRSS")
	st.base = time.Now()
	for i := int64(0); i < n; i++ {
		go parkTask(st, time.Since(st.base))
	}
	spawnS := time.Since(st.base).Seconds()
	if st.sleep >= time.Second {
		fmt.Fprintf(os.Stderr, "go peer: park spawned %d goroutines in %.2f s, %d alive; sleeping %d ms\n",
			n, spawnS, st.alive.Load(), sleepMS)
	}
	st.wg.Wait()
	wall := time.Since(st.base).Seconds()
	hwm := procKB("/proc/self/status", "VmHWM")
	aliveMax := st.aliveMax.Load()
	bpt := 0.0
	if aliveMax > 0 {
		bpt = float64((hwm-rssBefore)*1024) / float64(aliveMax)
	}
	return wall, fmt.Sprintf(" alive_max=%d bytes_per_task=%.1f spawn_s=%.6f late_ms=%.3f minflt=%d",
		aliveMax, bpt, spawnS, float64(st.lateMax.Load())/1e6, minflt())
}

// --- echo ----------------------------------------------------------------------

const echoMsg = 64

// Descriptors besides the 2 per connection (both ends are in this process):
// stdio, the listener, the netpoller's epoll and wake-up pipe, with margin.
const echoSpareFDs = 16

// raiseNofile sets the soft RLIMIT_NOFILE to the hard limit, and (where the
// process may, e.g. as root) the hard limit to need when it is below; it
// exits 2 when need descriptors cannot be had, saying what they are for and
// how many of unit fit (per descriptors each, besides spare).
func raiseNofile(need uint64, what, unit string, per, spare uint64) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintf(os.Stderr, "go peer: getrlimit: %v\n", err)
		os.Exit(2)
	}
	rl.Cur = rl.Max
	if rl.Max < need {
		up := syscall.Rlimit{Cur: need, Max: need}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return
		}
	}
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Max < need {
		fit := uint64(0)
		if rl.Max > spare {
			fit = (rl.Max - spare) / per
		}
		fmt.Fprintf(os.Stderr, "go peer: %s needs %d file descriptors, RLIMIT_NOFILE hard limit is %d: raise it (ulimit -Hn) or use %s %d or fewer\n",
			what, need, rl.Max, unit, fit)
		os.Exit(2)
	}
}

func echoServe(c net.Conn) {
	defer c.Close()
	buf := make([]byte, echoMsg)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return // EOF: the client is done
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

func dialRetry(addr string) (net.Conn, error) {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		var c net.Conn
		if c, err = net.Dial("tcp", addr); err == nil {
			return c, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.EAGAIN) &&
			!errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ECONNRESET) {
			return nil, err
		}
		time.Sleep(time.Duration(10<<attempt) * time.Millisecond)
	}
	return nil, err
}

// echoClient makes rounds round trips and stores each one's duration in lats.
func echoClient(addr string, id int64, lats []int64) error {
	c, err := dialRetry(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	out := make([]byte, echoMsg)
	in := make([]byte, echoMsg)
	for r := range lats {
		for i := range out {
			out[i] = byte(id*131 + int64(r)*7 + int64(i))
		}
		t := time.Now()
		if _, err := c.Write(out); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, in); err != nil {
			return err
		}
		lats[r] = int64(time.Since(t))
		if !bytes.Equal(in, out) {
			return fmt.Errorf("round %d: the echo differs from what was sent", r)
		}
	}
	return nil
}

// listenOverflows reads TcpExt ListenOverflows of /proc/net/netstat (this
// network namespace, all processes): connections the kernel dropped because
// the accept queue was full; each costs its client a SYN-ACK retransmission
// (1 s or more), which is then in wall_s. -1 when it cannot be read.
func listenOverflows() int64 {
	data, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return -1
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "TcpExt:") {
			continue
		}
		f := strings.Fields(line)
		if names == nil {
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			if names[i] == "ListenOverflows" {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	return -1
}

type int64s []int64

func (a int64s) Len() int           { return len(a) }
func (a int64s) Less(i, j int) bool { return a[i] < a[j] }
func (a int64s) Swap(i, j int)      { a[i], a[j] = a[j], a[i] }

// runEcho returns (wall, extra keys).
func runEcho(conns, rounds int64) (float64, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "go peer: echo: listen: %v\n", err)
		os.Exit(1)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				fmt.Fprintf(os.Stderr, "go peer: echo: accept: %v\n", err)
				time.Sleep(time.Millisecond)
				continue
			}
			go echoServe(c)
		}
	}()
	addr := ln.Addr().String()

	overflowsBefore := listenOverflows()
	lats := make([][]int64, conns) // per client, merged below
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(int(conns))
	start := time.Now()
	for i := int64(0); i < conns; i++ {
		lats[i] = make([]int64, rounds)
		go func(id int64) {
			if err := echoClient(addr, id, lats[id]); err != nil {
				if failed.Add(1) == 1 {
					firstErr.Store(fmt.Sprintf("client %d: %v", id, err))
				}
			}
			wg.Done()
		}(i)
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	overflows, overflowsKey := listenOverflows()-overflowsBefore, ""
	if overflowsBefore >= 0 {
		overflowsKey = fmt.Sprintf(" listen_overflows=%d", overflows)
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "go peer: echo: %d of %d clients failed; first: %s\n", n, conns, firstErr.Load())
		os.Exit(1)
	}
	all := make(int64s, 0, conns*rounds)
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Sort(all)
	p99 := all[(len(all)*99+99)/100-1] // nearest rank
	if overflows > 0 {
		fmt.Fprintf(os.Stderr, "go peer: echo: the kernel dropped %d connections on a full accept queue (ListenOverflows); their clients waited for SYN-ACK retransmissions\n", overflows)
	}
	// A round trip (64 bytes out, 64 back) is one message. listen_overflows
	// is an additional key (diagnostic, not in BENCH.md's list), left out
	// when /proc/net/netstat cannot be read.
	return wall, fmt.Sprintf(" msgs_per_s=%.0f p99_us=%.1f%s",
		float64(conns*rounds)/wall, float64(p99)/1e3, overflowsKey)
}

// --- agents --------------------------------------------------------------------

const (
	agentBufLen = 4096
	agentPasses = 4
	// Descriptors besides one per agent and the LLM connections: stdio,
	// the netpoller, connections being closed.
	agentSpareFDs = 64
)

type agentParams struct {
	agents, steps, toolMS, llmMS, llmConc, toolPort, llmPort int64
}

// agentBuf is the CPU work's shared read-only buffer: byte i is
// i * 131 + 7 (mod 256), as in every runner.
var agentBuf = func() []byte {
	b := make([]byte, agentBufLen)
	for i := range b {
		b[i] = byte(i*131 + 7)
	}
	return b
}()

// agentCPU is FNV-1a (32 bit) over agentBuf, agentPasses times, from seed.
func agentCPU(seed uint32) uint32 {
	h := uint32(2166136261) ^ seed
	for p := 0; p < agentPasses; p++ {
		for _, c := range agentBuf {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	return h
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatRequest struct {
	Model    string        `json:"model"`
	Messages []chatMessage `json:"messages"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

// llmCall posts one chat completion and returns choices[0].message.content.
func llmCall(client *http.Client, url, content string) (string, error) {
	body, err := json.Marshal(chatRequest{Model: "mock",
		Messages: []chatMessage{{Role: "user", Content: content}}})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	// Drained and closed: the connection goes back to the pool.
	defer func() {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	var cr chatResponse
	if err := json.NewDecoder(resp.Body).Decode(&cr); err != nil {
		return "", fmt.Errorf("response: %v", err)
	}
	if len(cr.Choices) == 0 || cr.Choices[0].Message.Content == "" {
		return "", errors.New("empty choices[0].message.content")
	}
	return cr.Choices[0].Message.Content, nil
}

// agent runs its steps and stores each one's latency in lats.
func agent(p *agentParams, client *http.Client, url string, toolAddr string,
	id int64, lats []int64, sink *atomic.Uint32) error {
	c, err := dialRetry(toolAddr)
	if err != nil {
		return fmt.Errorf("connect to the tool server: %v", err)
	}
	// The agent's pooled tool connection, kept for all its steps.
	defer c.Close()
	rd := bufio.NewReader(c)
	var h uint32
	for s := int64(0); s < p.steps; s++ {
		t := time.Now()
		// 1. CPU work.
		h = agentCPU(uint32(id*1000003 + s))
		// 2. The tool call: one line, answered "ok <line>".
		line := fmt.Sprintf("agent %d step %d fnv %08x\n", id, s, h)
		if _, err := io.WriteString(c, line); err != nil {
			return fmt.Errorf("tool send: %v", err)
		}
		ans, err := rd.ReadString('\n')
		if err != nil {
			return fmt.Errorf("tool recv: %v", err)
		}
		if ans != "ok "+line {
			return fmt.Errorf("tool answer %q is not \"ok <request>\"", ans)
		}
		// 3. The LLM call.
		msg := fmt.Sprintf("agent %d step %d: the tool said ok (fnv %08x)", id, s, h)
		if _, err := llmCall(client, url, msg); err != nil {
			return fmt.Errorf("LLM call: %v", err)
		}
		lats[s] = int64(time.Since(t))
	}
	for {
		old := sink.Load()
		if sink.CompareAndSwap(old, old^h) {
			break
		}
	}
	return nil
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)*1e-6
}

// runAgents returns (wall, extra keys).
func runAgents(p agentParams) (float64, string) {
	conc := int(p.llmConc)
	transport := &http.Transport{
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		MaxConnsPerHost:     conc,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		IdleConnTimeout:     90 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	}
	client := &http.Client{Transport: transport}
	url := fmt.Sprintf("http://127.0.0.1:%d/v1/chat/completions", p.llmPort)
	toolAddr := fmt.Sprintf("127.0.0.1:%d", p.toolPort)

	lats := make([]int64, p.agents*p.steps)
	var failed atomic.Int64
	var firstErr atomic.Value
	var sink atomic.Uint32
	var wg sync.WaitGroup
	wg.Add(int(p.agents))
	cpu0 := cpuSeconds()
	start := time.Now()
	for i := int64(0); i < p.agents; i++ {
		go func(id int64) {
			defer wg.Done()
			err := agent(&p, client, url, toolAddr, id, lats[id*p.steps:(id+1)*p.steps], &sink)
			if err != nil && failed.Add(1) == 1 {
				firstErr.Store(fmt.Sprintf("agent %d: %v", id, err))
			}
		}(i)
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	transport.CloseIdleConnections()
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "go peer: agents: %d of %d agents failed; first: %s\n", n, p.agents, firstErr.Load())
		os.Exit(1)
	}
	n := len(lats)
	sort.Sort(int64s(lats))
	steps := float64(n)
	sps := steps / wall
	// Nearest rank, as every runner.
	return wall, fmt.Sprintf(" steps_per_s=%.1f cpu_s_per_step=%.9f p50_ms=%.3f p99_ms=%.3f bound_frac=%.4f",
		sps, cpu/steps, float64(lats[(n*50+99)/100-1])/1e6, float64(lats[(n*99+99)/100-1])/1e6,
		sps/(float64(p.llmConc)*1000/float64(p.llmMS)))
}

// --- noisy ---------------------------------------------------------------------

// hogEnv names the CPU the hog process pins itself to.
const hogEnv = "MYRIAD_PEER_HOG"

// noisyUnitDepth: the units of p99_us are the fib(n - noisyUnitDepth) calls.
const noisyUnitDepth = 12

// runHog is the hog process: one thread pinned to cpu, spinning. It writes
// one byte on fd 3 (the parent's pipe) once pinned.
func runHog(cpu string) {
	c, err := strconv.Atoi(cpu)
	if err != nil || c < 0 || c >= 1024 {
		os.Exit(3)
	}
	runtime.GOMAXPROCS(1)
	runtime.LockOSThread()
	var mask [1024 / 64]uint64
	mask[c/64] = 1 << (uint(c) % 64)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(mask),
		uintptr(unsafe.Pointer(&mask[0]))); e != 0 {
		os.Exit(4)
	}
	ready := os.NewFile(3, "ready")
	if _, err := ready.Write([]byte{'r'}); err != nil {
		os.Exit(5)
	}
	ready.Close()
	var x uint64
	for {
		x++
	}
}

// startHog starts the hog pinned to cpu and returns once it runs there.
func startHog(cpu int64) *os.Process {
	var mask [1024 / 64]uint64
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(mask),
		uintptr(unsafe.Pointer(&mask[0]))); e != 0 {
		fmt.Fprintf(os.Stderr, "go peer: noisy: sched_getaffinity: %v\n", e)
		os.Exit(1)
	}
	if mask[cpu/64]&(1<<(uint(cpu)%64)) == 0 {
		fmt.Fprintf(os.Stderr, "go peer: noisy: --hog-cpu %d is not in this process's CPU affinity mask\n", cpu)
		os.Exit(2)
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go peer: noisy: %v\n", err)
		os.Exit(1)
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go peer: noisy: pipe: %v\n", err)
		os.Exit(1)
	}
	p, err := os.StartProcess(exe, []string{exe, "hog"}, &os.ProcAttr{
		Env:   append(os.Environ(), fmt.Sprintf("%s=%d", hogEnv, cpu)),
		Files: []*os.File{nil, nil, os.Stderr, w},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	})
	w.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go peer: noisy: starting the hog: %v\n", err)
		os.Exit(1)
	}
	b := make([]byte, 1)
	if n, _ := r.Read(b); n != 1 {
		fmt.Fprintf(os.Stderr, "go peer: noisy: the hog could not pin itself to CPU %d\n", cpu)
		p.Kill()
		p.Wait()
		os.Exit(1)
	}
	r.Close()
	return p
}

// The units' latencies: package variables, so that a call carries no more
// than fib's.
var (
	noisyUnit int64
	noisyLats []int64
	noisyNext atomic.Int64
)

func noisyFib(n int64) int64 {
	var t0 time.Time
	if n == noisyUnit {
		t0 = time.Now()
	}
	r := n
	if n >= 2 {
		var a, b int64
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { a = noisyFib(n - 1); wg.Done() }()
		go func() { b = noisyFib(n - 2); wg.Done() }()
		wg.Wait()
		r = a + b
	}
	if n == noisyUnit {
		if k := noisyNext.Add(1) - 1; k < int64(len(noisyLats)) {
			noisyLats[k] = int64(time.Since(t0))
		}
	}
	return r
}

// unitsPerRound counts the fib(u) calls in the tree of fib(n).
func unitsPerRound(n, u int64) int64 {
	c := make([]int64, n+1)
	for j := int64(0); j <= n; j++ {
		switch {
		case j == u:
			c[j] = 1
		case j > u && j >= 2:
			c[j] = c[j-1] + c[j-2]
		}
	}
	return c[n]
}

// runNoisy returns (wall, extra keys after policy and tasks_per_s).
func runNoisy(n, rounds, hogCPU int64) (float64, string) {
	noisyUnit = n - noisyUnitDepth
	if noisyUnit < 1 {
		noisyUnit = 1
	}
	noisyLats = make([]int64, rounds*unitsPerRound(n, noisyUnit))
	var hog *os.Process
	if hogCPU >= 0 {
		hog = startHog(hogCPU)
	}
	want := fibSeq(n)
	start := time.Now()
	for r := int64(0); r < rounds; r++ {
		res := make(chan int64, 1)
		go func() { res <- noisyFib(n) }()
		if got := <-res; got != want {
			fmt.Fprintf(os.Stderr, "go peer: noisy: fib(%d) came out %d, not %d\n", n, got, want)
			os.Exit(1)
		}
	}
	wall := time.Since(start).Seconds()
	if hog != nil {
		hog.Kill()
		hog.Wait()
	}
	nl := noisyNext.Load()
	if nl > int64(len(noisyLats)) {
		nl = int64(len(noisyLats))
	}
	lats := int64s(noisyLats[:nl])
	sort.Sort(lats)
	var p99, p50 int64
	if nl > 0 { // nearest rank, as myriad-bench
		p99, p50 = lats[(nl*99+99)/100-1], lats[(nl*50+99)/100-1]
	}
	return wall, fmt.Sprintf(" p99_us=%.1f p50_us=%.1f hog_cpu=%d unit_n=%d units=%d",
		float64(p99)/1e3, float64(p50)/1e3, hogCPU, noisyUnit, nl)
}
