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
//! - peak_rss_kb: getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux).

use std::collections::HashMap;
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

const USAGE: &str = "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> \
[--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R]";

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
        _ => None,
    }
}

/// Workloads of BENCH.md this peer does not implement (yet).
const UNSUPPORTED: &[&str] = &["park", "echo", "agents", "noisy"];

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

fn peak_rss_kb() -> i64 {
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
            _ => unreachable!(),
        }
    });
    let wall = start.elapsed().as_secs_f64();
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
