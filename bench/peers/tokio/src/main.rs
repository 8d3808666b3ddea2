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
//! - peak_rss_kb: VmHWM of /proc/self/status (see peak_rss_kb).

use std::collections::HashMap;
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

const USAGE: &str = "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> \
[--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R] [--n N --sleep-ms S] [--conns C --rounds R]";

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
        _ => None,
    }
}

/// Workloads of BENCH.md this peer does not implement (yet).
const UNSUPPORTED: &[&str] = &["agents", "noisy"];

fn parse_args(workload: &str, args: &[String]) -> HashMap<String, u64> {
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
        let min = if workload == "fib" && name == "n" {
            0
        } else {
            1
        };
        let v: u64 = match val.parse() {
            Ok(v) if v >= min => v,
            _ => usage(&format!(
                "bad value {:?} for --{} (an integer >= {})",
                val, name, min
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
/// below; exits 2 when `need` descriptors cannot be had.
fn raise_nofile(need: u64) {
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
            "tokio peer: echo needs {} file descriptors (2 per connection + {}), RLIMIT_NOFILE \
             hard limit is {}: raise it (ulimit -Hn) or use --conns {} or fewer",
            need,
            ECHO_SPARE_FDS,
            rl.rlim_max,
            (rl.rlim_max as u64).saturating_sub(ECHO_SPARE_FDS) / 2
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
    let get = |k: &str, d: u64| *vals.get(k).unwrap_or(&d);

    match workload {
        "park" if !park_fits(get("n", 1_000_000)) => {
            println!("RESULT workload=park unsupported=1");
            return;
        }
        "echo" => raise_nofile(2 * get("conns", 10_000) + ECHO_SPARE_FDS),
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
    // park and echo measure their own wall (from the first spawn).
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
        "park" | "echo" => extra,
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
