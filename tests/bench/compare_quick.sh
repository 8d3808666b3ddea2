#!/usr/bin/env bash
# Runs `bench/compare --quick` on the peers (go, tokio, tbb; and myriad when
# build/bench/myriad-bench exists) into a temporary folder and checks, with
# bench/lib/results.py, that every runtime printed a well-formed RESULT line
# with the right keys for every workload it supports, that the counts match
# the parameters, and that bench-results.json was written. Then runs
# `bench/compare --workload park --workload echo --quick` (the opt-in
# workloads) and checks myriad's (when built), go's and tokio's lines the
# same way, and that tbb says unsupported; then `bench/compare --workload
# noisy --quick` (a CPU hog pinned to CPU 0 by every runner; myriad as two
# rows, --policy default and kernel) and checks every row's line (policy,
# counts, hog_cpu, p99_us) and the kernel-vs-default summary. Also checks
# the command-line contract of the peers (unknown workload or flag: exit 2;
# unsupported workload: an unsupported=1 line and exit 0) and of
# myriad-bench's noisy flags.
#   bash tests/bench/compare_quick.sh      (from anywhere)
# Exit 0 pass, 1 fail, 77 skip (a peer toolchain is missing).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1

missing=()
command -v go >/dev/null 2>&1 || missing+=("go (golang-go)")
[ -x "${MYRIAD_PEER_CARGO:-/usr/bin/cargo}" ] || missing+=("/usr/bin/cargo (cargo)")
[ -x "${MYRIAD_PEER_RUSTC:-/usr/bin/rustc}" ] || missing+=("/usr/bin/rustc (rustc)")
[ -d /usr/share/cargo/registry ] && ls -d /usr/share/cargo/registry/tokio-1.* >/dev/null 2>&1 \
    || missing+=("tokio crate in /usr/share/cargo/registry (librust-tokio-dev)")
command -v "${CXX:-g++}" >/dev/null 2>&1 || missing+=("g++")
[ -e /usr/include/oneapi/tbb.h ] || [ -e /usr/include/tbb/tbb.h ] || missing+=("oneTBB headers (libtbb-dev)")
command -v python3 >/dev/null 2>&1 || missing+=("python3")
if [ ${#missing[@]} -gt 0 ]; then
    echo "SKIP: missing ${missing[*]}"
    exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# --- the peers' command-line contract -------------------------------------------
for peer in go tokio tbb; do
    run=bench/peers/$peer/run
    if ! "$run" --build 2>"$tmp/build.err"; then
        echo "FAIL: $peer peer does not build:"; cat "$tmp/build.err"; fail=1; continue
    fi
    expect_exit() { # expected-status description args...
        local want=$1 what=$2; shift 2
        "$run" "$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
        if [ "$got" != "$want" ]; then
            echo "FAIL: $peer $what ($*): expected exit $want, got $got"; fail=1
        elif [ "$want" = 2 ] && { [ -s "$tmp/out" ] || [ ! -s "$tmp/err" ]; }; then
            echo "FAIL: $peer $what ($*): expected a message on stderr and nothing on stdout"; fail=1
        fi
    }
    expect_exit 2 "no workload"
    expect_exit 2 "unknown workload" nosuch
    expect_exit 2 "unknown flag" fib --bogus 3
    expect_exit 2 "flag of another workload" fib --pairs 3
    expect_exit 2 "non-numeric value" fib --n abc
    expect_exit 2 "zero workers" chain --workers 0
    expect_exit 2 "missing value" chain --n
    if [ "$peer" != tbb ]; then
        expect_exit 2 "flag of another workload" park --conns 3
        expect_exit 2 "flag of another workload" echo --sleep-ms 3
        expect_exit 2 "zero value" park --sleep-ms 0
        expect_exit 2 "flag of another workload" agents --conns 3 --tool-port 1 --llm-port 2
        expect_exit 2 "no server ports" agents --agents 3
        expect_exit 2 "port out of range" agents --tool-port 70000 --llm-port 2
    fi
    if [ "$peer" = tbb ]; then
        expect_exit 0 "unsupported workload" noisy
        if [ "$(cat "$tmp/out")" != "RESULT workload=noisy unsupported=1" ]; then
            echo "FAIL: $peer noisy: expected 'RESULT workload=noisy unsupported=1', got '$(cat "$tmp/out")'"
            fail=1
        fi
    else
        expect_exit 2 "a policy it does not have" noisy --policy kernel
        expect_exit 2 "fib below 2" noisy --n 1
        expect_exit 2 "hog CPU below -1" noisy --hog-cpu -2
        expect_exit 2 "flag of another workload" noisy --conns 3
        expect_exit 2 "policy of another workload" fib --policy default
    fi
done
if [ -x build/bench/myriad-bench ]; then
    for args in "noisy --policy bogus" "noisy --n 1" "noisy --hog-cpu -2" "noisy --conns 3" \
            "fib --policy kernel" "fib --hog-cpu 0"; do
        # shellcheck disable=SC2086
        build/bench/myriad-bench $args >"$tmp/out" 2>"$tmp/err"; got=$?
        if [ "$got" != 2 ] || [ -s "$tmp/out" ] || [ ! -s "$tmp/err" ]; then
            echo "FAIL: myriad-bench $args: expected exit 2 with a message on stderr only, got $got"
            fail=1
        fi
    done
fi

# --- bench/compare --quick ---------------------------------------------------------
args=(--quick --peer go,tokio,tbb --out "$tmp/out-dir")
with_myriad=0
if [ -x build/bench/myriad-bench ]; then
    with_myriad=1
else
    args+=(--peers-only)
    echo "note: build/bench/myriad-bench not built: checking the peers only"
fi
bench/compare "${args[@]}" >"$tmp/table" 2>"$tmp/log"
status=$?
cat "$tmp/table"
if [ "$status" != 0 ]; then
    echo "FAIL: bench/compare ${args[*]} exited $status; its log:"
    tail -n 40 "$tmp/log"
    fail=1
fi

python3 - "$tmp/out-dir/bench-results.json" "$with_myriad" <<'PY' || fail=1
import json, os, sys
sys.path.insert(0, os.path.join("bench", "lib"))
import results

path, with_myriad = sys.argv[1], sys.argv[2] == "1"
errors = []
try:
    with open(path) as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print("FAIL: bench-results.json: %s" % e)
    sys.exit(1)

def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

# What --quick asks for, and what each runtime must say.
quick = {"spawn": {"tasks": 20000}, "chain": {"tasks": 20000},
         "fib": {"tasks": 2 * fib(19) - 1, "result": fib(18)},
         "yield": {"tasks": 100}, "pingpong": {"tasks": 200}}
supports = {"go": set(quick), "tokio": set(quick), "tbb": {"spawn", "chain", "fib"},
            "myriad": set(quick)}
runtimes = ["go", "tokio", "tbb"] + (["myriad"] if with_myriad else [])
workers = report["meta"]["workers"]

for rt in runtimes:
    for wl in quick:
        runs = [r for r in report["runs"] if r["runtime"] == rt and r["workload"] == wl]
        where = "%s %s" % (rt, wl)
        if len(runs) != 1:
            errors.append("%s: expected 1 run in the json, found %d" % (where, len(runs)))
            continue
        run = runs[0]
        line = run.get("line")
        if not isinstance(line, str):
            errors.append("%s: expected one RESULT line, got %r (status %s)"
                          % (where, line, run.get("status")))
            continue
        try:
            rec = results.validate(results.parse_result_line(line))
        except ValueError as e:
            errors.append("%s: malformed RESULT line %r: %s" % (where, line, e))
            continue
        if rec["workload"] != wl:
            errors.append("%s: workload=%s in %r" % (where, rec["workload"], line))
        if wl not in supports[rt]:
            if not results.is_unsupported(rec):
                errors.append("%s: expected unsupported=1, got %r" % (where, line))
            continue
        if results.is_unsupported(rec):
            errors.append("%s: expected a result, got unsupported: %r" % (where, line))
            continue
        if rec["workers"] != workers:
            errors.append("%s: expected workers=%d, got %r" % (where, workers, line))
        # Exact counts for the peers; for myriad only what cannot differ.
        for key, want in quick[wl].items():
            if rt == "myriad" and key == "tasks":
                continue
            if rec.get(key) != want:
                errors.append("%s: expected %s=%s, got %s=%s in %r"
                              % (where, key, want, key, rec.get(key), line))
        if run["status"] != "ok":
            errors.append("%s: bench/compare says %r" % (where, run["status"]))

for wl in quick:
    summ = report["summary"].get(wl)
    if summ is None:
        errors.append("summary: no entry for %s" % wl)
        continue
    for rt in runtimes:
        s = summ["runtimes"].get(rt)
        if s is None or (wl in supports[rt]) != (s.get("median") is not None):
            errors.append("summary %s %s: median %r does not fit support %s"
                          % (wl, rt, s and s.get("median"), wl in supports[rt]))
    if with_myriad and not summ["ratios"] and report["summary"][wl]["runtimes"]["myriad"]["median"]:
        errors.append("summary %s: no ratios although myriad ran" % wl)

if errors:
    print("FAIL: %d problem(s) in %s" % (len(errors), os.path.basename(path)))
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("RESULT lines and bench-results.json: ok (%s)" % ", ".join(runtimes))
PY

# --- park, echo and agents (opt-in workloads) --------------------------------------
pe_args=(--workload park --workload echo --workload agents --quick --peer go,tokio,tbb
         --out "$tmp/out-park-echo")
[ "$with_myriad" = 1 ] || pe_args+=(--peers-only)
bench/compare "${pe_args[@]}" >"$tmp/table" 2>"$tmp/log"
status=$?
cat "$tmp/table"
if [ "$status" != 0 ]; then
    echo "FAIL: bench/compare ${pe_args[*]} exited $status; its log:"
    tail -n 40 "$tmp/log"
    fail=1
fi

python3 - "$tmp/out-park-echo/bench-results.json" "$with_myriad" <<'PY' || fail=1
import json, os, sys
sys.path.insert(0, os.path.join("bench", "lib"))
import results

path = sys.argv[1]
errors = []
try:
    with open(path) as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print("FAIL: bench-results.json: %s" % e)
    sys.exit(1)

# What --quick asks for (bench/compare: park --n 10000 --sleep-ms 500,
# echo --conns 100 --rounds 50, agents --agents 100 --steps 2 with docs/bench.md's
# tool_ms 2, llm_ms 20, llm_concurrency 256).
N, SLEEP_S, CONNS, ROUNDS = 10000, 0.5, 100, 50
AGENTS, STEPS, TOOL_MS, LLM_MS, LLM_CONC = 100, 2, 2, 20, 256
params = report["meta"]["params"]
if params.get("park") != ["--n", str(N), "--sleep-ms", "500"] or \
        params.get("echo") != ["--conns", str(CONNS), "--rounds", str(ROUNDS)] or \
        params.get("agents") != ["--agents", str(AGENTS), "--steps", str(STEPS),
                                 "--tool-ms", str(TOOL_MS), "--llm-ms", str(LLM_MS),
                                 "--llm-concurrency", str(LLM_CONC)]:
    errors.append("unexpected --quick parameters: %r" % params)
ports = report.get("servers", {}).get("agents", {}).get("ports", {})
if not all(isinstance(ports.get(n), int) and 0 < ports[n] < 65536 for n in ("tool", "llm")):
    errors.append("agents: bench/compare recorded no server ports: %r" % report.get("servers"))
workers = report["meta"]["workers"]

def check_park(where, rec):
    if rec["tasks"] != N or rec["alive_max"] != N:
        errors.append("%s: expected tasks=alive_max=%d, got %d, %d" % (where, N, rec["tasks"],
                                                                      rec["alive_max"]))
    if not SLEEP_S <= rec["wall_s"] < SLEEP_S + 30:
        errors.append("%s: wall_s=%r, expected >= the sleep (%g s)" % (where, rec["wall_s"], SLEEP_S))
    if not 0 < rec["spawn_s"] <= rec["wall_s"]:
        errors.append("%s: spawn_s=%r not in (0, wall_s]" % (where, rec["spawn_s"]))
    if not 0 <= rec["late_ms"] < 30000:
        errors.append("%s: late_ms=%r, expected >= 0 (a sleep never ends early)" % (where, rec["late_ms"]))
    if not 0 < rec["bytes_per_task"] < 1e6 or rec["minflt"] <= 0 or rec["peak_rss_kb"] <= 0:
        errors.append("%s: implausible memory figures" % where)

def check_echo(where, rec):
    if rec["tasks"] != CONNS:
        errors.append("%s: expected tasks=%d, got %d" % (where, CONNS, rec["tasks"]))
    want = CONNS * ROUNDS / rec["wall_s"]  # a round trip is one message
    if abs(rec["msgs_per_s"] - want) > 0.01 * want + 1:
        errors.append("%s: msgs_per_s=%r, expected conns*rounds/wall_s = %.0f"
                      % (where, rec["msgs_per_s"], want))
    if not 0 < rec["p99_us"] <= rec["wall_s"] * 1e6:
        errors.append("%s: p99_us=%r not in (0, wall_s]" % (where, rec["p99_us"]))

def check_agents(where, rec):
    if rec["tasks"] != AGENTS:
        errors.append("%s: expected tasks=%d, got %d" % (where, AGENTS, rec["tasks"]))
    want = AGENTS * STEPS / rec["wall_s"]
    if abs(rec["steps_per_s"] - want) > 0.01 * want + 1:
        errors.append("%s: steps_per_s=%r, expected agents*steps/wall_s = %.1f"
                      % (where, rec["steps_per_s"], want))
    bound = LLM_CONC * 1000.0 / LLM_MS
    # A step waits tool_ms and llm_ms at least: nothing beats the bound.
    if rec["steps_per_s"] > 1.02 * bound:
        errors.append("%s: steps_per_s=%r over the bound %g" % (where, rec["steps_per_s"], bound))
    if "bound_frac" in rec and abs(rec["bound_frac"] - rec["steps_per_s"] / bound) > 0.001:
        errors.append("%s: bound_frac=%r, expected steps_per_s/%g" % (where, rec["bound_frac"], bound))
    if not 0.9 * (TOOL_MS + LLM_MS) <= rec["p50_ms"] <= rec["p99_ms"] <= rec["wall_s"] * 1e3:
        errors.append("%s: expected %g <= p50_ms (%r) <= p99_ms (%r) <= wall_s" % (
            where, 0.9 * (TOOL_MS + LLM_MS), rec["p50_ms"], rec["p99_ms"]))
    cpus = os.cpu_count() or 1
    if not 0 < rec["cpu_s_per_step"] * AGENTS * STEPS <= rec["wall_s"] * cpus * 1.1 + 0.2:
        errors.append("%s: cpu_s_per_step=%r: more CPU than %d CPUs have in wall_s, or none"
                      % (where, rec["cpu_s_per_step"], cpus))

for rt in (("myriad",) if sys.argv[2] == "1" else ()) + ("go", "tokio", "tbb"):
    for wl, check in (("park", check_park), ("echo", check_echo), ("agents", check_agents)):
        where = "%s %s" % (rt, wl)
        runs = [r for r in report["runs"] if r["runtime"] == rt and r["workload"] == wl]
        if len(runs) != 1 or not isinstance(runs[0].get("line"), str):
            errors.append("%s: expected 1 run with one RESULT line, found %r"
                          % (where, [(r.get("status"), r.get("line")) for r in runs]))
            continue
        line = runs[0]["line"]
        try:
            rec = results.validate(results.parse_result_line(line))
        except ValueError as e:
            errors.append("%s: malformed RESULT line %r: %s" % (where, line, e))
            continue
        if rec["workload"] != wl:
            errors.append("%s: workload=%s in %r" % (where, rec["workload"], line))
            continue
        if rt == "tbb":
            if not results.is_unsupported(rec):
                errors.append("%s: expected unsupported=1, got %r" % (where, line))
            continue
        if results.is_unsupported(rec):
            errors.append("%s: expected a result, got unsupported: %r" % (where, line))
            continue
        if rec["workers"] != workers:
            errors.append("%s: expected workers=%d, got %r" % (where, workers, line))
        if runs[0]["status"] != "ok":
            errors.append("%s: bench/compare says %r" % (where, runs[0]["status"]))
        check(where, rec)
    for wl in ("park", "echo", "agents"):
        s = report["summary"].get(wl, {}).get("runtimes", {}).get(rt)
        if s is None or (rt != "tbb") != (s.get("median") is not None):
            errors.append("summary %s %s: median %r" % (wl, rt, s and s.get("median")))
if report["summary"].get("park", {}).get("better") != "lower" or \
        report["summary"]["park"].get("key") != "bytes_per_task":
    errors.append("summary park: headline should be bytes_per_task, lower is better")
if report["summary"].get("echo", {}).get("key") != "msgs_per_s":
    errors.append("summary echo: headline should be msgs_per_s")
agents_summary = report["summary"].get("agents", {})
if agents_summary.get("key") != "steps_per_s" or agents_summary.get("better") != "higher":
    errors.append("summary agents: headline should be steps_per_s, higher is better")
for key in ("cpu_s_per_step", "p99_ms"):
    if key not in agents_summary.get("also", {}):
        errors.append("summary agents: no %s beside the headline" % key)

if errors:
    print("FAIL: %d problem(s) in the park/echo/agents %s" % (len(errors), os.path.basename(path)))
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("park, echo and agents RESULT lines: ok (%s; tbb unsupported)" % ("myriad, go, tokio" if sys.argv[2] == "1" else "go, tokio"))
PY

# --- noisy (opt-in): a CPU hog pinned to CPU 0, myriad as two rows ---------------
nz_args=(--workload noisy --quick --peer go,tokio,tbb --out "$tmp/out-noisy")
[ "$with_myriad" = 1 ] || nz_args+=(--peers-only)
bench/compare "${nz_args[@]}" >"$tmp/table" 2>"$tmp/log"
status=$?
cat "$tmp/table"
if [ "$status" != 0 ]; then
    echo "FAIL: bench/compare ${nz_args[*]} exited $status; its log:"
    tail -n 40 "$tmp/log"
    fail=1
fi

python3 - "$tmp/out-noisy/bench-results.json" "$with_myriad" <<'PY' || fail=1
import json, os, sys
sys.path.insert(0, os.path.join("bench", "lib"))
import results

path, with_myriad = sys.argv[1], sys.argv[2] == "1"
errors = []
try:
    with open(path) as f:
        report = json.load(f)
except (OSError, ValueError) as e:
    print("FAIL: bench-results.json: %s" % e)
    sys.exit(1)

def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

# What --quick asks for (bench/compare: noisy --n 18 --rounds 3): the units
# are the fib(6) calls, fib(13) = 233 of them per round.
N, ROUNDS, UNIT = 18, 3, 6
if report["meta"]["params"].get("noisy") != ["--n", str(N), "--rounds", str(ROUNDS)]:
    errors.append("unexpected --quick parameters: %r" % report["meta"]["params"])
workers = report["meta"]["workers"]
rows = {"go": "go", "tokio": "tokio"}
if with_myriad:
    rows.update({"myriad": "default", "myriad-kernel": "kernel"})
for rt, policy in list(rows.items()) + [("tbb", None)]:
    where = "%s noisy" % rt
    runs = [r for r in report["runs"] if r["runtime"] == rt and r["workload"] == "noisy"]
    if len(runs) != 1 or not isinstance(runs[0].get("line"), str):
        errors.append("%s: expected 1 run with one RESULT line, found %r"
                      % (where, [(r.get("status"), r.get("line")) for r in runs]))
        continue
    line = runs[0]["line"]
    try:
        rec = results.validate(results.parse_result_line(line))
    except ValueError as e:
        errors.append("%s: malformed RESULT line %r: %s" % (where, line, e))
        continue
    if policy is None:
        if not results.is_unsupported(rec):
            errors.append("%s: expected unsupported=1, got %r" % (where, line))
        continue
    if results.is_unsupported(rec) or runs[0]["status"] != "ok":
        errors.append("%s: expected a result, got %r (%s)" % (where, line, runs[0]["status"]))
        continue
    want = {"workers": workers, "policy": policy, "tasks": ROUNDS * (2 * fib(N + 1) - 1),
            "hog_cpu": 0, "unit_n": UNIT, "units": ROUNDS * fib(N - UNIT + 1)}
    for key, value in want.items():
        if rec.get(key) != value:
            errors.append("%s: expected %s=%r, got %r in %r" % (where, key, value, rec.get(key), line))
    tps = rec["tasks"] / rec["wall_s"]
    if abs(rec["tasks_per_s"] - tps) > 0.01 * tps + 1:
        errors.append("%s: tasks_per_s=%r, expected tasks/wall_s = %.0f" % (where, rec["tasks_per_s"], tps))
    if not 0 < rec.get("p50_us", 0) <= rec["p99_us"] <= rec["wall_s"] * 1e6:
        errors.append("%s: expected 0 < p50_us <= p99_us <= wall_s in %r" % (where, line))

summ = report["summary"].get("noisy", {})
if summ.get("key") != "tasks_per_s" or summ.get("better") != "higher":
    errors.append("summary noisy: headline should be tasks_per_s, higher is better")
if "p99_us" not in summ.get("also", {}):
    errors.append("summary noisy: no p99_us beside the headline")
for rt in rows:
    if summ.get("runtimes", {}).get(rt, {}).get("median") is None:
        errors.append("summary noisy %s: no median" % rt)
if with_myriad:
    v = summ.get("variants", {}).get("myriad-kernel", {})
    if not isinstance(v.get("ratio"), float) or v.get("against") != "myriad" or \
            "p99_better_than" not in v:
        errors.append("summary noisy: no myriad-kernel / myriad figures: %r" % summ.get("variants"))

if errors:
    print("FAIL: %d problem(s) in the noisy %s" % (len(errors), os.path.basename(path)))
    for e in errors:
        print("  " + e)
    sys.exit(1)
print("noisy RESULT lines: ok (%s; tbb unsupported)" % ", ".join(rows))
PY

if [ "$fail" != 0 ]; then
    echo "FAIL: tests/bench/compare_quick.sh"
    exit 1
fi
echo "PASS: tests/bench/compare_quick.sh"
