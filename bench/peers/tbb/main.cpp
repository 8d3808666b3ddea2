// oneTBB peer for the myriad benchmarks (bench/peers/tbb). Workloads and the
// RESULT line format are those of BENCH.md; build and run with ./run
// (g++ -O2 -std=c++17 main.cpp -ltbb).
//
// Idioms chosen where oneTBB offers several:
// - workers: tbb::global_control(max_allowed_parallelism, W) plus a
//   tbb::task_arena of W slots; the main thread takes the arena's one
//   reserved slot, so W threads in all run tasks. Default = oneTBB's own
//   default, tbb::info::default_concurrency(). The arena is initialized
//   before the clock starts.
// - tasks are tbb::task_group::run closures (the low-level tbb::task API is
//   gone from oneTBB); parallel_invoke would be the shorthand for fib but
//   task_group is what it is built on, and what spawn and chain need.
// - spawn: the root task runs N empty tasks in one task_group; each
//   decrements a shared std::atomic countdown; the run ends when
//   task_group::wait returns (the countdown is checked to be 0).
// - chain: task i runs task i+1 in the same task_group and returns.
// - fib: one task_group per call, both children run as tasks, then wait
//   and add; no cutoff. The root call is a task too.
// - yield and pingpong: unsupported. oneTBB tasks run to completion: there
//   is no yield that resumes the same task later, and a task blocking on a
//   one-slot channel would hold its thread (or deadlock with fewer threads
//   than pairs), so any figure would be a fake.
// - peak_rss_kb: VmHWM from /proc/self/status (KiB).
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

const char *kUsage =
    "usage: run <spawn|chain|fib|yield|pingpong|park|echo|agents|noisy> "
    "[--workers N] [--n N] [--tasks T --yields Y] [--pairs P --rounds R]";

[[noreturn]] void usage(const std::string &msg) {
    std::fprintf(stderr, "tbb peer: %s\n%s\n", msg.c_str(), kUsage);
    std::exit(2);
}

// Parameters each supported workload accepts (besides --workers).
const std::map<std::string, std::set<std::string>> kParams = {
    {"spawn", {"n"}}, {"chain", {"n"}}, {"fib", {"n"}}};
// Workloads of BENCH.md this peer cannot express or does not implement yet.
const std::set<std::string> kUnsupported = {"yield", "pingpong", "park",
                                            "echo",  "agents",   "noisy"};

std::map<std::string, long long> parse_args(const std::string &workload, int argc,
                                            char **argv) {
    const auto &allowed = kParams.at(workload);
    std::map<std::string, long long> vals;
    for (int i = 2; i < argc; i++) {
        std::string a = argv[i];
        if (a.rfind("--", 0) != 0) usage("unexpected argument \"" + a + "\"");
        std::string name = a.substr(2), val;
        auto eq = name.find('=');
        if (eq != std::string::npos) {
            val = name.substr(eq + 1);
            name = name.substr(0, eq);
        } else {
            if (i + 1 >= argc) usage("flag --" + name + " needs a value");
            val = argv[++i];
        }
        if (name != "workers" && !allowed.count(name))
            usage("unknown flag --" + name + " for workload " + workload);
        long long min = (workload == "fib" && name == "n") ? 0 : 1;
        char *end = nullptr;
        errno = 0;
        long long v = val.empty() ? -1 : std::strtoll(val.c_str(), &end, 10);
        if (val.empty() || *end != '\0' || errno != 0 || v < min || val[0] == '+' ||
            val[0] == ' ')
            usage("bad value \"" + val + "\" for --" + name + " (an integer >= " +
                  std::to_string(min) + ")");
        if (!vals.emplace(name, v).second) usage("flag --" + name + " given twice");
    }
    return vals;
}

// VmHWM from /proc/self/status, not ru_maxrss: Linux carries ru_maxrss
// over from the launching process (bench/compare's Python).
long peak_rss_kb() {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
    fclose(f);
    return kb;
}

// Prints a line on stderr once the run has taken a second, then every 5 s,
// from a thread that sleeps the rest of the time.
class Progress {
  public:
    explicit Progress(std::string workload) : workload_(std::move(workload)) {
        thread_ = std::thread([this] {
            auto start = std::chrono::steady_clock::now();
            auto next = start + std::chrono::seconds(1);
            std::unique_lock<std::mutex> lock(mu_);
            while (!cv_.wait_until(lock, next, [this] { return stop_; })) {
                double s = std::chrono::duration<double>(
                               std::chrono::steady_clock::now() - start)
                               .count();
                std::fprintf(stderr, "tbb peer: %s running, %.0f s...\n",
                             workload_.c_str(), s);
                next += std::chrono::seconds(5);
            }
        });
    }
    ~Progress() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

  private:
    std::string workload_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::thread thread_;
};

long long run_spawn(long long n) {
    std::atomic<long long> left{n};
    tbb::task_group tg;
    tg.run([&] {  // the root task
        for (long long i = 0; i < n; i++)
            tg.run([&left] { left.fetch_sub(1, std::memory_order_acq_rel); });
    });
    tg.wait();
    if (left.load() != 0) {
        std::fprintf(stderr, "tbb peer: spawn countdown at %lld after wait\n", left.load());
        std::exit(1);
    }
    return n;
}

void link(tbb::task_group &tg, long long i, long long n) {
    if (i < n) tg.run([&tg, i, n] { link(tg, i + 1, n); });
}

long long run_chain(long long n) {
    tbb::task_group tg;
    tg.run([&tg, n] { link(tg, 1, n); });  // task 1 is the root
    tg.wait();
    return n;
}

long long fib(long long n) {
    if (n < 2) return n;
    long long a, b;
    tbb::task_group g;
    g.run([&] { a = fib(n - 1); });
    g.run([&] { b = fib(n - 2); });
    g.wait();
    return a + b;
}

long long fib_seq(long long n) {
    long long a = 0, b = 1;
    for (long long i = 0; i < n; i++) {
        long long t = a + b;
        a = b;
        b = t;
    }
    return a;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc < 2) usage("missing workload");
    std::string workload = argv[1];
    if (kUnsupported.count(workload)) {
        std::printf("RESULT workload=%s unsupported=1\n", workload.c_str());
        return 0;
    }
    if (!kParams.count(workload)) usage("unknown workload \"" + workload + "\"");
    auto vals = parse_args(workload, argc, argv);
    auto get = [&](const char *k, long long d) {
        auto it = vals.find(k);
        return it == vals.end() ? d : it->second;
    };

    int workers = (int)get("workers", tbb::info::default_concurrency());
    tbb::global_control gc(tbb::global_control::max_allowed_parallelism, workers);
    tbb::task_arena arena(workers);
    arena.initialize();

    long long tasks = 0, result = 0;
    double wall = 0;
    {
        Progress progress(workload);
        auto start = std::chrono::steady_clock::now();
        arena.execute([&] {
            if (workload == "spawn") {
                tasks = run_spawn(get("n", 1000000));
            } else if (workload == "chain") {
                tasks = run_chain(get("n", 1000000));
            } else {  // fib
                long long n = get("n", 30);
                tbb::task_group tg;
                tg.run([&] { result = fib(n); });  // the root call is a task too
                tg.wait();
                tasks = 2 * fib_seq(n + 1) - 1;  // a task per call
            }
        });
        wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }

    std::string extra;
    char buf[128];
    if (workload == "spawn") {
        std::snprintf(buf, sizeof buf, " tasks_per_s=%.0f ns_per_task=%.2f", tasks / wall,
                      wall * 1e9 / tasks);
    } else if (workload == "chain") {
        std::snprintf(buf, sizeof buf, " tasks_per_s=%.0f", tasks / wall);
    } else {
        std::snprintf(buf, sizeof buf, " result=%lld tasks_per_s=%.0f", result, tasks / wall);
    }
    std::printf("RESULT workload=%s workers=%d wall_s=%.6f tasks=%lld peak_rss_kb=%ld%s\n",
                workload.c_str(), workers, wall, tasks, peak_rss_kb(), buf);
    return 0;
}
