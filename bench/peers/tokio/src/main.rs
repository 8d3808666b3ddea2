//! Tokio peer for the myriad benchmarks (bench/peers/tokio). Workloads and
//! the RESULT line format are those of BENCH.md; build and run with ./run.
//!
//! Idioms chosen where Tokio offers several:
//! - runtime: `runtime::Builder::new_multi_thread().worker_threads(workers)`
//!   (what `#[tokio::main(worker_threads = N)]` expands to, but with N from
//!   the command line); default = Tokio's own default (one per CPU).
//! - the root of every workload is a task made with `tokio::spawn`, not the
//!   `block_on` future: `block_on` runs on the main thread, which is not a
//!   worker, and spawning from it goes through the remote (inject) queue.
//!   The main thread only starts the clock, spawns the root and waits.
//! - spawn: the root spawns N detached tasks; each decrements a shared
//!   `AtomicUsize`; the one that reaches 0 calls `Notify::notify_one`.
//! - chain: task i spawns task i+1 and ends; the last notifies.
//! - fib: `tokio::spawn` per call, no cutoff; a task spawns both children
//!   and awaits their `JoinHandle`s (a plain fn returning the JoinHandle,
//!   so the recursion needs no boxing).
//! - yield: `tokio::task::yield_now().await`; the root awaits the handles.
//! - pingpong: per pair two `tokio::sync::mpsc::channel(1)` (one each way);
//!   a round trip is 2 messages, so msgs = 2 * pairs * rounds.
//! - park: the root spawns N detached tasks, each `tokio::time::sleep(S)`;
//!   completion through a countdown + `Notify` as in spawn (a `JoinSet` or
//!   a Vec of `JoinHandle`s would add memory per task that is not the
//!   task's). alive_max comes from an atomic counter (incremented when a task
//!   starts, decremented when it ends, `fetch_max` keeps the maximum);
//!   bytes_per_task = (VmHWM - VmRSS before spawning) / alive_max. Before
//!   spawning, N * TOKIO_PARK_BYTES_PER_TASK is checked against 80% of
//!   MemAvailable; when it does not fit, the line says unsupported=1.
//! - echo: a `TcpSocket` bound to 127.0.0.1:0 listening with a backlog of
//!   4096 (`TcpListener::bind` would use 1024), an accept task that spawns a
//!   task per connection (`read_exact` 64 bytes, `write_all` them back), a
//!   task per client (`TcpStream::connect`, R round trips of 64 bytes, each
//!   checked), `set_nodelay(true)` on both sides (Go's default). A round
//!   trip is one message: msgs_per_s = conns * rounds / wall_s. tasks =
//!   conns (the client tasks; the server tasks are not counted).
//! - agents: a task per agent (`tokio::spawn`). Its tool connection is
//!   pooled: one `TcpStream::connect` per agent when it starts, kept for
//!   all its steps (a `BufReader` reads the answer lines). The LLM calls go
//!   through one hyper 0.14 `Client` (HTTP/1.1, `HttpConnector` with
//!   TCP_NODELAY, `pool_max_idle_per_host` = llm_concurrency) behind a
//!   `Semaphore` of llm_concurrency permits, held until the response body
//!   is read, so that at most llm_concurrency requests (and connections)
//!   are out at once, as myriad's window and Go's MaxConnsPerHost. The body
//!   is built and the answer decoded with serde_json (Debian's
//!   librust-serde-json-dev; choices[0].message.content must not be
//!   empty). The servers are not started here: bench/compare passes
//!   --tool-port and --llm-port (exit 2 without them). cpu_s_per_step is
//!   getrusage (RUSAGE_SELF) user+sys over the run / (agents * steps).
//! - noisy: the hog is a process forked (`libc::fork`) before the runtime
//!   and any other thread exist, pinned to CPU --hog-cpu with
//!   sched_setaffinity, spinning without system calls once it has said so on
//!   a pipe, killed (SIGKILL) after the last round (PR_SET_PDEATHSIG kills it
//!   if we die first). The rounds: --rounds fork-join fib(n), one after the
//!   other, each as the fib workload (`tokio::spawn` per call); the unit of
//!   p99_us is each fib(u) call, u = n - 12 (at least 1), timed from the
//!   first poll of its task to its result, as myriad-bench and the Go peer
//!   do. policy=tokio (--policy accepts default or tokio only).
//! - peak_rss_kb: VmHWM of /proc/self/status (see peak_rss_kb).

use std::collections::HashMap;
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;

const USAGE: &str = "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> \
[--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R] [--n N --sleep-ms S] [--conns C --rounds R] \
[--agents A --steps S --tool-ms T --llm-ms L --llm-concurrency C --tool-port P --llm-port P] \
[noisy: --n N --policy default|tokio --rounds R --hog-cpu C]";

fn usage(msg: &str) -> ! {
    eprintln!("tokio peer: {}", msg);
    eprintln!("{}", USAGE);
    exit(2)
}

/// Parameters each workload accepts (besides --workers).
fn params(workload: &str) -> Option<&'static [&'static str]> {
    match workload {
        "spawn" | "chain" | "fib" => Some(&["n"]),
        "yield" => Some(&["tasks", "yields"]),
        "pingpong" => Some(&["pairs", "rounds"]),
        "park" => Some(&["n", "sleep-ms"]),
        "echo" => Some(&["conns", "rounds"]),
        "agents" => Some(&[
            "agents",
            "steps",
            "tool-ms",
            "llm-ms",
            "llm-concurrency",
            "tool-port",
            "llm-port",
        ]),
        "noisy" => Some(&["n", "policy", "rounds", "hog-cpu"]),
        _ => None,
    }
}

/// Workloads of BENCH.md this peer does not implement (yet).
const UNSUPPORTED: &[&str] = &[];

fn parse_args(workload: &str, args: &[String]) -> HashMap<String, i64> {
    let allowed = params(workload).unwrap();
    let mut vals = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let body = match a.strip_prefix("--") {
            Some(b) => b,
            None => usage(&format!("unexpected argument {:?}", a)),
        };
        let (name, val) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                i += 1;
                match args.get(i) {
                    Some(v) => (body.to_string(), v.clone()),
                    None => usage(&format!("flag --{} needs a value", body)),
                }
            }
        };
        if name != "workers" && !allowed.contains(&name.as_str()) {
            usage(&format!(
                "unknown flag --{} for workload {}",
                name, workload
            ));
        }
        if name == "policy" {
            // One scheduler here: its name is the policy.
            if val != "default" && val != "tokio" {
                usage(&format!(
                    "bad value {:?} for --policy (the tokio peer has one: default or tokio)",
                    val
                ));
            }
            i += 1;
            continue;
        }
        let mut min = if (workload == "fib" && name == "n") || name == "tool-ms" {
            0
        } else {
            1
        };
        let mut max = if name.ends_with("-port") || name == "llm-concurrency" {
            65535
        } else {
            1 << 62
        };
        if workload == "noisy" && name == "n" {
            min = 2;
            max = 40;
        }
        if name == "hog-cpu" {
            min = -1;
            max = 1023;
        }
        let v: i64 = match val.parse() {
            Ok(v) if v >= min && v <= max => v,
            _ => usage(&format!(
                "bad value {:?} for --{} (an integer from {} to {})",
                val, name, min, max
            )),
        };
        if vals.insert(name.clone(), v).is_some() {
            usage(&format!("flag --{} given twice", name));
        }
        i += 1;
    }
    vals
}

/// VmHWM of /proc/self/status: the peak RSS of this process's memory since
/// exec. getrusage's ru_maxrss is not used first because Linux carries the
/// exec'ing parent's peak into it (a small run started from bench/compare
/// would report Python's RSS).
fn peak_rss_kb() -> i64 {
    if let Some(kb) = proc_kb("/proc/self/status", "VmHWM") {
        return kb;
    }
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss as i64
}

/// Prints a line on stderr once the run has taken a second, then every 5 s,
/// from a plain thread outside the runtime (it sleeps all the rest).
fn progress(workload: &str) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, w) = (stop.clone(), workload.to_string());
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut next = Duration::from_secs(1);
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if s.load(Ordering::Relaxed) {
                return;
            }
            if start.elapsed() >= next {
                eprintln!(
                    "tokio peer: {} running, {:.0} s...",
                    w,
                    start.elapsed().as_secs_f64()
                );
                next += Duration::from_secs(5);
            }
        }
    });
    stop
}

struct Countdown {
    left: AtomicUsize,
    done: Notify,
}

async fn run_spawn(n: usize) -> u64 {
    let cd = Arc::new(Countdown {
        left: AtomicUsize::new(n),
        done: Notify::new(),
    });
    let root_cd = cd.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            let cd = root_cd.clone();
            tokio::spawn(async move {
                if cd.left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    cd.done.notify_one();
                }
            });
        }
    });
    cd.done.notified().await;
    n as u64
}

fn link(i: u64, n: u64, done: Arc<Notify>) {
    tokio::spawn(async move {
        if i < n {
            link(i + 1, n, done);
        } else {
            done.notify_one();
        }
    });
}

async fn run_chain(n: u64) -> u64 {
    let done = Arc::new(Notify::new());
    link(1, n, done.clone()); // task 1 is the root
    done.notified().await;
    n
}

fn spawn_fib(n: u64) -> JoinHandle<u64> {
    tokio::spawn(async move {
        if n < 2 {
            n
        } else {
            let a = spawn_fib(n - 1);
            let b = spawn_fib(n - 2);
            a.await.unwrap() + b.await.unwrap()
        }
    })
}

async fn run_yield(tasks: u64, yields: u64) {
    tokio::spawn(async move {
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    })
    .await
    .unwrap();
}

async fn run_pingpong(pairs: u64, rounds: u64) {
    tokio::spawn(async move {
        let mut handles = Vec::with_capacity(2 * pairs as usize);
        for _ in 0..pairs {
            let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
            let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
            // pinger: sends, then waits for the answer (2 messages a round)
            handles.push(tokio::spawn(async move {
                for r in 0..rounds {
                    ping_tx.send(r).await.unwrap();
                    pong_rx.recv().await.unwrap();
                }
            }));
            // ponger: echoes every token back
            handles.push(tokio::spawn(async move {
                for _ in 0..rounds {
                    let v = ping_rx.recv().await.unwrap();
                    pong_tx.send(v).await.unwrap();
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    })
    .await
    .unwrap();
}

// --- park ----------------------------------------------------------------------

/// The memory check's estimate of one parked task (measured here: about
/// 1.4 KB at 1M, see PLATFORM.md), with some margin.
const TOKIO_PARK_BYTES_PER_TASK: f64 = 1500.0;

/// A "Name:   123 kB" field of a /proc file (status, meminfo), in KiB.
fn proc_kb(path: &str, field: &str) -> Option<i64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text
        .lines()
        .find(|l| l.strip_prefix(field).map_or(false, |r| r.starts_with(':')))?;
    line[field.len() + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn minflt() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_minflt as i64
}

/// Whether n parked tasks fit in 80% of MemAvailable; when not, says so on
/// stderr.
fn park_fits(n: u64) -> bool {
    let need = n as f64 * TOKIO_PARK_BYTES_PER_TASK;
    match proc_kb("/proc/meminfo", "MemAvailable") {
        Some(kb) if need > 0.8 * kb as f64 * 1024.0 => {
            eprintln!(
                "tokio peer: park --n {} would need ~{:.1} GB ({} B/task), have {:.1} GB \
                 available (80% usable): reported unsupported",
                n,
                need / 1e9,
                TOKIO_PARK_BYTES_PER_TASK,
                kb as f64 * 1024.0 / 1e9
            );
            false
        }
        _ => true,
    }
}

struct Park {
    alive: AtomicUsize,
    alive_max: AtomicUsize,
    late_max_ns: AtomicI64,
    left: AtomicUsize,
    spawn_ns: AtomicU64,
    done: Notify,
    base: Instant,
    sleep: Duration,
}

async fn park_task(st: Arc<Park>, spawned_ns: u64) {
    let a = st.alive.fetch_add(1, Ordering::Relaxed) + 1;
    st.alive_max.fetch_max(a, Ordering::Relaxed);
    tokio::time::sleep(st.sleep).await;
    // late = time woken - (spawn time + sleep)
    let late = st.base.elapsed().as_nanos() as i64 - spawned_ns as i64 - st.sleep.as_nanos() as i64;
    st.late_max_ns.fetch_max(late, Ordering::Relaxed);
    st.alive.fetch_sub(1, Ordering::Relaxed);
    if st.left.fetch_sub(1, Ordering::AcqRel) == 1 {
        st.done.notify_one();
    }
}

/// Returns (wall, extra keys).
async fn run_park(n: u64, sleep_ms: u64) -> (f64, String) {
    let rss_before = proc_kb("/proc/self/status", "VmRSS").unwrap_or(0);
    let st = Arc::new(Park {
        alive: AtomicUsize::new(0),
        alive_max: AtomicUsize::new(0),
        late_max_ns: AtomicI64::new(i64::MIN),
        left: AtomicUsize::new(n as usize),
        spawn_ns: AtomicU64::new(0),
        done: Notify::new(),
        base: Instant::now(),
        sleep: Duration::from_millis(sleep_ms),
    });
    let root = st.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            let spawned = root.base.elapsed().as_nanos() as u64;
            tokio::spawn(park_task(root.clone(), spawned));
        }
        let spawn_ns = root.base.elapsed().as_nanos() as u64;
        root.spawn_ns.store(spawn_ns, Ordering::Release);
        if sleep_ms >= 1000 {
            eprintln!(
                "tokio peer: park spawned {} tasks in {:.2} s, {} alive; sleeping {} ms",
                n,
                spawn_ns as f64 / 1e9,
                root.alive.load(Ordering::Relaxed),
                sleep_ms
            );
        }
    });
    st.done.notified().await;
    let wall = st.base.elapsed().as_secs_f64();
    let hwm = proc_kb("/proc/self/status", "VmHWM").unwrap_or(0);
    let alive_max = st.alive_max.load(Ordering::Relaxed);
    let bpt = if alive_max > 0 {
        ((hwm - rss_before) * 1024) as f64 / alive_max as f64
    } else {
        0.0
    };
    (
        wall,
        format!(
            " alive_max={} bytes_per_task={:.1} spawn_s={:.6} late_ms={:.3} minflt={}",
            alive_max,
            bpt,
            st.spawn_ns.load(Ordering::Acquire) as f64 / 1e9,
            st.late_max_ns.load(Ordering::Relaxed) as f64 / 1e6,
            minflt()
        ),
    )
}

// --- echo ----------------------------------------------------------------------

const ECHO_MSG: usize = 64;
/// Descriptors besides the 2 per connection (both ends are in this
/// process): stdio, the listener, epoll and mio's waker, with margin.
const ECHO_SPARE_FDS: u64 = 16;

/// Sets the soft RLIMIT_NOFILE to the hard limit, and (where the process
/// may, e.g. with CAP_SYS_RESOURCE) the hard limit to `need` when it is
/// below; exits 2 when `need` descriptors cannot be had, saying what they
/// are for and how many of `unit` fit (`per` descriptors each, besides
/// `spare`).
fn raise_nofile(need: u64, what: &str, unit: &str, per: u64, spare: u64) {
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        eprintln!("tokio peer: getrlimit: {}", std::io::Error::last_os_error());
        exit(2);
    }
    if (rl.rlim_max as u64) < need {
        let up = libc::rlimit {
            rlim_cur: need as libc::rlim_t,
            rlim_max: need as libc::rlim_t,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &up) } == 0 {
            return;
        }
        eprintln!(
            "tokio peer: {} needs {} file descriptors, RLIMIT_NOFILE hard limit is {}: \
             raise it (ulimit -Hn) or use {} {} or fewer",
            what,
            need,
            rl.rlim_max,
            unit,
            (rl.rlim_max as u64).saturating_sub(spare) / per
        );
        exit(2);
    }
    rl.rlim_cur = rl.rlim_max;
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
}

/// TcpExt ListenOverflows of /proc/net/netstat (this network namespace, all
/// processes): connections the kernel dropped because the accept queue was
/// full; each costs its client a SYN-ACK retransmission (1 s or more), which
/// is then in wall_s. None when it cannot be read.
fn listen_overflows() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (rows.next()?, rows.next()?);
    let i = names
        .split_whitespace()
        .position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

async fn echo_serve(mut s: TcpStream) {
    let mut buf = [0u8; ECHO_MSG];
    // Ends at EOF (the client is done) or on an error.
    while s.read_exact(&mut buf).await.is_ok() {
        if s.write_all(&buf).await.is_err() {
            return;
        }
    }
}

async fn connect_retry(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    use std::io::ErrorKind::*;
    let mut attempt = 0;
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => return Ok(s),
            Err(e)
                if attempt < 7
                    && (matches!(
                        e.kind(),
                        ConnectionRefused | WouldBlock | AddrNotAvailable | ConnectionReset
                    ) || e.raw_os_error() == Some(libc::EAGAIN)) =>
            {
                tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes `rounds` round trips; returns each one's duration in ns.
async fn echo_client(addr: std::net::SocketAddr, id: u64, rounds: u64) -> Result<Vec<u64>, String> {
    let mut s = connect_retry(addr)
        .await
        .map_err(|e| format!("connect: {}", e))?;
    s.set_nodelay(true).map_err(|e| format!("nodelay: {}", e))?;
    let mut out = [0u8; ECHO_MSG];
    let mut inb = [0u8; ECHO_MSG];
    let mut lats = Vec::with_capacity(rounds as usize);
    for r in 0..rounds {
        for (i, b) in out.iter_mut().enumerate() {
            *b = (id.wrapping_mul(131) + r * 7 + i as u64) as u8;
        }
        let t = Instant::now();
        s.write_all(&out)
            .await
            .map_err(|e| format!("write: {}", e))?;
        s.read_exact(&mut inb)
            .await
            .map_err(|e| format!("read: {}", e))?;
        lats.push(t.elapsed().as_nanos() as u64);
        if inb != out {
            return Err(format!("round {}: the echo differs from what was sent", r));
        }
    }
    Ok(lats)
}

/// Returns (wall, extra keys).
async fn run_echo(conns: u64, rounds: u64) -> (f64, String) {
    let fail = |what: &str, e: std::io::Error| -> ! {
        eprintln!("tokio peer: echo: {}: {}", what, e);
        exit(1)
    };
    let sock = TcpSocket::new_v4().unwrap_or_else(|e| fail("socket", e));
    sock.bind("127.0.0.1:0".parse().unwrap())
        .unwrap_or_else(|e| fail("bind", e));
    let listener = sock.listen(4096).unwrap_or_else(|e| fail("listen", e));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| fail("local_addr", e));
    let acceptor = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(echo_serve(s));
                }
                Err(e) => {
                    eprintln!("tokio peer: echo: accept: {}", e);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    let overflows_before = listen_overflows();
    let (wall, lats) = tokio::spawn(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..conns)
            .map(|id| tokio::spawn(echo_client(addr, id, rounds)))
            .collect();
        let mut per_client = Vec::with_capacity(conns as usize);
        let mut failed = 0;
        let mut first_err = String::new();
        for (id, h) in handles.into_iter().enumerate() {
            match h.await.unwrap() {
                Ok(l) => per_client.push(l),
                Err(e) => {
                    if failed == 0 {
                        first_err = format!("client {}: {}", id, e);
                    }
                    failed += 1;
                }
            }
        }
        let wall = start.elapsed().as_secs_f64();
        if failed > 0 {
            eprintln!(
                "tokio peer: echo: {} of {} clients failed; first: {}",
                failed, conns, first_err
            );
            exit(1);
        }
        (wall, per_client)
    })
    .await
    .unwrap();
    acceptor.abort();
    let overflows = match (overflows_before, listen_overflows()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if let Some(overflows) = overflows.filter(|&o| o > 0) {
        eprintln!(
            "tokio peer: echo: the kernel dropped {} connections on a full accept queue \
             (ListenOverflows); their clients waited for SYN-ACK retransmissions",
            overflows
        );
    }
    let mut all: Vec<u64> = Vec::with_capacity((conns * rounds) as usize);
    for l in lats {
        all.extend(l);
    }
    all.sort_unstable();
    // The nearest rank. A round trip (64 bytes out, 64 back) is one message.
    // listen_overflows is an additional key (diagnostic, not in BENCH.md's
    // list), left out when /proc/net/netstat cannot be read.
    let p99 = all[(all.len() * 99 + 99) / 100 - 1];
    (
        wall,
        format!(
            " msgs_per_s={:.0} p99_us={:.1}{}",
            (conns * rounds) as f64 / wall,
            p99 as f64 / 1e3,
            overflows.map_or(String::new(), |o| format!(" listen_overflows={}", o))
        ),
    )
}

// --- agents --------------------------------------------------------------------

const AGENT_BUF_LEN: usize = 4096;
const AGENT_PASSES: usize = 4;
/// Descriptors besides one per agent and the LLM connections: stdio, epoll,
/// mio's waker, connections being closed.
const AGENT_SPARE_FDS: u64 = 64;

struct AgentParams {
    agents: u64,
    steps: u64,
    llm_ms: u64,
    llm_conc: u64,
    tool_port: u16,
    llm_port: u16,
}

/// What every agent shares.
struct Agents {
    buf: &'static [u8],
    client: hyper::Client<hyper::client::HttpConnector, hyper::Body>,
    url: hyper::Uri,
    permits: Semaphore,
    tool: std::net::SocketAddr,
    steps: u64,
    sink: std::sync::atomic::AtomicU32,
}

/// FNV-1a (32 bit) over the shared buffer, AGENT_PASSES times, from `seed`.
fn agent_cpu(buf: &[u8], seed: u32) -> u32 {
    let mut h = 2166136261u32 ^ seed;
    for _ in 0..AGENT_PASSES {
        for &c in buf {
            h ^= c as u32;
            h = h.wrapping_mul(16777619);
        }
    }
    h
}

#[derive(serde::Serialize)]
struct ChatMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(serde::Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: [ChatMessage<'a>; 1],
}

#[derive(serde::Deserialize)]
struct ChatResponse {
    choices: Vec<ChatChoice>,
}

#[derive(serde::Deserialize)]
struct ChatChoice {
    message: ChatContent,
}

#[derive(serde::Deserialize)]
struct ChatContent {
    content: String,
}

/// One chat completion; returns choices[0].message.content.
async fn llm_call(g: &Agents, content: &str) -> Result<String, String> {
    let body = serde_json::to_vec(&ChatRequest {
        model: "mock",
        messages: [ChatMessage {
            role: "user",
            content,
        }],
    })
    .map_err(|e| e.to_string())?;
    let req = hyper::Request::post(g.url.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(hyper::Body::from(body))
        .map_err(|e| e.to_string())?;
    // Held until the body is read: the connection is busy until then.
    let permit = g.permits.acquire().await.map_err(|e| e.to_string())?;
    let resp = g.client.request(req).await.map_err(|e| e.to_string())?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(format!("HTTP status {}", resp.status()));
    }
    let bytes = hyper::body::to_bytes(resp.into_body())
        .await
        .map_err(|e| e.to_string())?;
    drop(permit);
    let cr: ChatResponse =
        serde_json::from_slice(&bytes).map_err(|e| format!("response: {}", e))?;
    match cr.choices.into_iter().next() {
        Some(c) if !c.message.content.is_empty() => Ok(c.message.content),
        _ => Err("empty choices[0].message.content".to_string()),
    }
}

/// Runs one agent's steps; returns each step's latency in ns.
async fn agent(g: Arc<Agents>, id: u64) -> Result<Vec<u64>, String> {
    let mut tool = connect_retry(g.tool)
        .await
        .map_err(|e| format!("connect to the tool server: {}", e))?;
    tool.set_nodelay(true)
        .map_err(|e| format!("nodelay: {}", e))?;
    // The agent's pooled tool connection, kept for all its steps.
    let (rd, mut wr) = tool.split();
    let mut rd = BufReader::new(rd);
    let mut lats = Vec::with_capacity(g.steps as usize);
    let mut ans = String::new();
    let mut h = 0;
    for s in 0..g.steps {
        let t = Instant::now();
        // 1. CPU work.
        h = agent_cpu(g.buf, id.wrapping_mul(1000003).wrapping_add(s) as u32);
        // 2. The tool call: one line, answered "ok <line>".
        let line = format!("agent {} step {} fnv {:08x}\n", id, s, h);
        wr.write_all(line.as_bytes())
            .await
            .map_err(|e| format!("tool send: {}", e))?;
        ans.clear();
        let n = rd
            .read_line(&mut ans)
            .await
            .map_err(|e| format!("tool recv: {}", e))?;
        if n == 0 {
            return Err("tool recv: unexpected end of stream".to_string());
        }
        if !(ans.len() == line.len() + 3 && ans.starts_with("ok ") && ans[3..] == line) {
            return Err(format!("tool answer {:?} is not \"ok <request>\"", ans));
        }
        // 3. The LLM call.
        let msg = format!("agent {} step {}: the tool said ok (fnv {:08x})", id, s, h);
        llm_call(&g, &msg)
            .await
            .map_err(|e| format!("LLM call: {}", e))?;
        lats.push(t.elapsed().as_nanos() as u64);
    }
    g.sink.fetch_xor(h, Ordering::Relaxed);
    Ok(lats)
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) as f64
        + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) as f64 * 1e-6
}

/// Returns (wall, extra keys).
async fn run_agents(p: AgentParams) -> (f64, String) {
    // Byte i is i * 131 + 7 (mod 256), as in every runner; built at run
    // time, as in the others.
    let buf: Vec<u8> = (0..AGENT_BUF_LEN).map(|i| (i * 131 + 7) as u8).collect();
    let mut connector = hyper::client::HttpConnector::new();
    connector.set_nodelay(true);
    let client = hyper::Client::builder()
        .pool_max_idle_per_host(p.llm_conc as usize)
        .build(connector);
    let g = Arc::new(Agents {
        buf: Box::leak(buf.into_boxed_slice()),
        client,
        url: format!("http://127.0.0.1:{}/v1/chat/completions", p.llm_port)
            .parse()
            .unwrap(),
        permits: Semaphore::new(p.llm_conc as usize),
        tool: std::net::SocketAddr::from(([127, 0, 0, 1], p.tool_port)),
        steps: p.steps,
        sink: std::sync::atomic::AtomicU32::new(0),
    });
    let agents = p.agents;
    let cpu0 = cpu_seconds();
    let (wall, lats) = tokio::spawn(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..agents)
            .map(|id| tokio::spawn(agent(g.clone(), id)))
            .collect();
        let mut all = Vec::with_capacity((agents * g.steps) as usize);
        let mut failed = 0;
        let mut first_err = String::new();
        for (id, h) in handles.into_iter().enumerate() {
            match h.await.unwrap() {
                Ok(l) => all.extend(l),
                Err(e) => {
                    if failed == 0 {
                        first_err = format!("agent {}: {}", id, e);
                    }
                    failed += 1;
                }
            }
        }
        let wall = start.elapsed().as_secs_f64();
        if failed > 0 {
            eprintln!(
                "tokio peer: agents: {} of {} agents failed; first: {}",
                failed, agents, first_err
            );
            exit(1);
        }
        (wall, all)
    })
    .await
    .unwrap();
    let cpu = cpu_seconds() - cpu0;
    let mut lats = lats;
    lats.sort_unstable();
    let n = lats.len();
    let steps = n as f64;
    let sps = steps / wall;
    // Nearest rank, as every runner.
    (
        wall,
        format!(
            " steps_per_s={:.1} cpu_s_per_step={:.9} p50_ms={:.3} p99_ms={:.3} bound_frac={:.4}",
            sps,
            cpu / steps,
            lats[(n * 50 + 99) / 100 - 1] as f64 / 1e6,
            lats[(n * 99 + 99) / 100 - 1] as f64 / 1e6,
            sps / (p.llm_conc as f64 * 1000.0 / p.llm_ms as f64)
        ),
    )
}

// --- noisy ---------------------------------------------------------------------

/// The units of p99_us are the fib(n - NOISY_UNIT_DEPTH) calls.
const NOISY_UNIT_DEPTH: u64 = 12;

/// The hog: forked, pinned to `cpu`, spinning; returns its pid once it runs
/// pinned. Exits 2 when `cpu` is not one this process may run on.
fn hog_start(cpu: usize) -> libc::pid_t {
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            eprintln!("tokio peer: noisy: sched_getaffinity failed");
            exit(1);
        }
        if cpu >= libc::CPU_SETSIZE as usize || !libc::CPU_ISSET(cpu, &set) {
            eprintln!(
                "tokio peer: noisy: --hog-cpu {} is not in this process's CPU affinity mask",
                cpu
            );
            exit(2);
        }
        let mut fds = [0 as libc::c_int; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            eprintln!("tokio peer: noisy: pipe failed");
            exit(1);
        }
        let parent = libc::getpid();
        let pid = libc::fork();
        if pid < 0 {
            eprintln!("tokio peer: noisy: fork failed");
            exit(1);
        }
        if pid == 0 {
            // Only system calls from here: no allocation, no stdio.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one) != 0 {
                libc::_exit(3);
            }
            if libc::write(fds[1], b"r".as_ptr() as *const libc::c_void, 1) != 1 {
                libc::_exit(4);
            }
            libc::close(fds[1]);
            let mut x: u64 = 0;
            loop {
                std::ptr::write_volatile(&mut x, std::ptr::read_volatile(&x).wrapping_add(1));
            }
        }
        libc::close(fds[1]);
        let mut c = 0u8;
        let n = loop {
            let n = libc::read(fds[0], &mut c as *mut u8 as *mut libc::c_void, 1);
            if n >= 0 || *libc::__errno_location() != libc::EINTR {
                break n;
            }
        };
        libc::close(fds[0]);
        if n != 1 {
            eprintln!("tokio peer: noisy: the hog could not pin itself to CPU {}", cpu);
            libc::kill(pid, libc::SIGKILL);
            exit(1);
        }
        pid
    }
}

fn hog_stop(pid: libc::pid_t) {
    unsafe {
        let mut status = 0;
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
}

// The units' latencies: statics, so that a call carries no more than fib's.
static NOISY_UNIT: AtomicU64 = AtomicU64::new(0);
static NOISY_LATS: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static NOISY_NLATS: AtomicUsize = AtomicUsize::new(0);
static NOISY_NEXT: AtomicUsize = AtomicUsize::new(0);

fn spawn_noisy_fib(n: u64) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let unit = n == NOISY_UNIT.load(Ordering::Relaxed);
        let t0 = if unit { Some(Instant::now()) } else { None };
        let r = if n < 2 {
            n
        } else {
            let a = spawn_noisy_fib(n - 1);
            let b = spawn_noisy_fib(n - 2);
            a.await.unwrap() + b.await.unwrap()
        };
        if let Some(t0) = t0 {
            let k = NOISY_NEXT.fetch_add(1, Ordering::Relaxed);
            if k < NOISY_NLATS.load(Ordering::Relaxed) {
                let ns = t0.elapsed().as_nanos() as u64;
                unsafe { (*NOISY_LATS.load(Ordering::Relaxed).add(k)).store(ns, Ordering::Relaxed) };
            }
        }
        r
    })
}

/// How many fib(u) calls the tree of fib(n) makes.
fn units_per_round(n: u64, u: u64) -> u64 {
    let mut c = vec![0u64; n as usize + 1];
    for j in 0..=n as usize {
        c[j] = if j as u64 == u {
            1
        } else if j as u64 > u && j >= 2 {
            c[j - 1] + c[j - 2]
        } else {
            0
        };
    }
    c[n as usize]
}

/// Returns (wall, the extra keys after policy and tasks_per_s).
async fn run_noisy(n: u64, rounds: u64, hog_cpu: i64, hog: Option<libc::pid_t>) -> (f64, String) {
    let unit = if n > NOISY_UNIT_DEPTH { n - NOISY_UNIT_DEPTH } else { 1 };
    let cap = (rounds * units_per_round(n, unit)) as usize;
    let lats: &'static [AtomicU64] =
        Box::leak((0..cap).map(|_| AtomicU64::new(0)).collect::<Vec<_>>().into_boxed_slice());
    NOISY_UNIT.store(unit, Ordering::Relaxed);
    NOISY_LATS.store(lats.as_ptr() as *mut AtomicU64, Ordering::Relaxed);
    NOISY_NLATS.store(cap, Ordering::Relaxed);
    let want = fib_seq(n);
    let start = Instant::now();
    // The rounds run from a task, as fib's root: its spawns are local.
    tokio::spawn(async move {
        for _ in 0..rounds {
            let got = spawn_noisy_fib(n).await.unwrap();
            if got != want {
                eprintln!("tokio peer: noisy: fib({}) came out {}, not {}", n, got, want);
                exit(1);
            }
        }
    })
    .await
    .unwrap();
    let wall = start.elapsed().as_secs_f64();
    if let Some(pid) = hog {
        hog_stop(pid);
    }
    let nl = NOISY_NEXT.load(Ordering::Relaxed).min(cap);
    let mut v: Vec<u64> = lats[..nl].iter().map(|a| a.load(Ordering::Relaxed)).collect();
    v.sort_unstable();
    // Nearest rank, as myriad-bench.
    let (p99, p50) = if nl > 0 {
        (v[(nl * 99 + 99) / 100 - 1], v[(nl * 50 + 99) / 100 - 1])
    } else {
        (0, 0)
    };
    (
        wall,
        format!(
            " p99_us={:.1} p50_us={:.1} hog_cpu={} unit_n={} units={}",
            p99 as f64 / 1e3,
            p50 as f64 / 1e3,
            hog_cpu,
            unit,
            nl
        ),
    )
}

fn fib_seq(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a + b;
        a = b;
        b = t;
    }
    a
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        usage("missing workload");
    }
    let workload = args[1].as_str();
    if UNSUPPORTED.contains(&workload) {
        println!("RESULT workload={} unsupported=1", workload);
        return;
    }
    if params(workload).is_none() {
        usage(&format!("unknown workload {:?}", workload));
    }
    let vals = parse_args(workload, &args[2..]);
    let get = |k: &str, d: u64| vals.get(k).map_or(d, |&v| v as u64);
    // Before the runtime and any other thread: the hog is forked.
    let hog_cpu = *vals.get("hog-cpu").unwrap_or(&0);
    let hog = if workload == "noisy" && hog_cpu >= 0 {
        Some(hog_start(hog_cpu as usize))
    } else {
        None
    };

    match workload {
        "park" if !park_fits(get("n", 1_000_000)) => {
            println!("RESULT workload=park unsupported=1");
            return;
        }
        "echo" => raise_nofile(
            2 * get("conns", 10_000) + ECHO_SPARE_FDS,
            "echo (2 per connection and some to spare)",
            "--conns",
            2,
            ECHO_SPARE_FDS,
        ),
        "agents" => {
            if !vals.contains_key("tool-port") || !vals.contains_key("llm-port") {
                usage("agents needs --tool-port and --llm-port (bench/compare starts the servers)");
            }
            let spare = get("llm-concurrency", 256) + AGENT_SPARE_FDS;
            raise_nofile(
                get("agents", 10_000) + spare,
                "agents (a tool connection per agent, the LLM connections and some to spare)",
                "--agents",
                1,
                spare,
            );
        }
        _ => {}
    }

    // Tokio's own default, computed the way Tokio 1.24 does it, so that the
    // RESULT line can name it (runtime metrics are tokio_unstable only).
    let workers = match vals.get("workers") {
        Some(&w) => w as usize,
        None => match std::env::var("TOKIO_WORKER_THREADS") {
            Ok(s) => s
                .parse()
                .unwrap_or_else(|_| usage("bad TOKIO_WORKER_THREADS")),
            Err(_) => std::cmp::max(1, num_cpus::get()),
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio peer: cannot build the runtime: {}", e);
            exit(1)
        });

    let stop = progress(workload);
    let start = Instant::now();
    // park, echo and agents measure their own wall (from the first spawn).
    let mut own_wall = None;
    let (tasks, extra) = rt.block_on(async {
        match workload {
            "spawn" => {
                let n = get("n", 1_000_000);
                (run_spawn(n as usize).await, String::new())
            }
            "chain" => (run_chain(get("n", 1_000_000)).await, String::new()),
            "fib" => {
                let n = get("n", 30);
                let r = spawn_fib(n).await.unwrap();
                (2 * fib_seq(n + 1) - 1, format!(" result={}", r)) // a task per call
            }
            "yield" => {
                let t = get("tasks", 1000);
                run_yield(t, get("yields", 1000)).await;
                (t, String::new())
            }
            "pingpong" => {
                let p = get("pairs", 1000);
                run_pingpong(p, get("rounds", 1000)).await;
                (2 * p, String::new())
            }
            "park" => {
                let n = get("n", 1_000_000);
                let (w, extra) = run_park(n, get("sleep-ms", 20_000)).await;
                own_wall = Some(w);
                (n, extra)
            }
            "echo" => {
                let c = get("conns", 10_000);
                let (w, extra) = run_echo(c, get("rounds", 100)).await;
                own_wall = Some(w);
                (c, extra)
            }
            "noisy" => {
                let (n, rounds) = (get("n", 30), get("rounds", 10));
                let (w, extra) = run_noisy(n, rounds, hog_cpu, hog).await;
                own_wall = Some(w);
                (rounds * (2 * fib_seq(n + 1) - 1), extra) // a task per call
            }
            "agents" => {
                let a = get("agents", 10_000);
                let (w, extra) = run_agents(AgentParams {
                    agents: a,
                    steps: get("steps", 10),
                    llm_ms: get("llm-ms", 20),
                    llm_conc: get("llm-concurrency", 256),
                    tool_port: get("tool-port", 0) as u16,
                    llm_port: get("llm-port", 0) as u16,
                })
                .await;
                own_wall = Some(w);
                (a, extra)
            }
            _ => unreachable!(),
        }
    });
    let wall = own_wall.unwrap_or_else(|| start.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);

    let extra = match workload {
        "spawn" => format!(
            " tasks_per_s={:.0} ns_per_task={:.2}",
            tasks as f64 / wall,
            wall * 1e9 / tasks as f64
        ),
        "chain" => format!(" tasks_per_s={:.0}", tasks as f64 / wall),
        "fib" => format!("{} tasks_per_s={:.0}", extra, tasks as f64 / wall),
        "yield" => format!(
            " switches_per_s={:.0}",
            (get("tasks", 1000) * get("yields", 1000)) as f64 / wall
        ),
        // A round trip is 2 messages: msgs = 2 * pairs * rounds.
        "pingpong" => format!(
            " msgs_per_s={:.0}",
            (2 * get("pairs", 1000) * get("rounds", 1000)) as f64 / wall
        ),
        "noisy" => format!(" policy=tokio tasks_per_s={:.0}{}", tasks as f64 / wall, extra),
        "park" | "echo" | "agents" => extra,
        _ => unreachable!(),
    };
    println!(
        "RESULT workload={} workers={} wall_s={:.6} tasks={} peak_rss_kb={}{}",
        workload,
        workers,
        wall,
        tasks,
        peak_rss_kb(),
        extra
    );
}
