#!/usr/bin/env python3
"""Tests of bench/lib/results.py (the RESULT-line parser that bench/compare
uses). Standalone: `python3 tests/bench/test_results_parser.py`; exit 0 when
all pass, 1 with what was expected and what came otherwise."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench", "lib"))
import results  # noqa: E402

failures = []


def check(name, cond, expected, got):
    if not cond:
        failures.append("%s\n    expected: %s\n    got:      %s" % (name, expected, got))


def good(line, **expect):
    try:
        rec = results.validate(results.parse_result_line(line))
    except ValueError as e:
        check("accepts %r" % line, False, "a valid record", "ValueError: %s" % e)
        return None
    for k, v in expect.items():
        check("%r: %s" % (line, k), rec.get(k) == v and type(rec.get(k)) is type(v),
              "%s=%r (%s)" % (k, v, type(v).__name__),
              "%s=%r (%s)" % (k, rec.get(k), type(rec.get(k)).__name__))
    return rec


def bad(line, reason_word, stage="either"):
    """The line must be refused (by parse or by validate), with a reason that
    mentions reason_word."""
    try:
        rec = results.parse_result_line(line)
        if stage == "parse":
            check("parse refuses %r" % (line,), False, "ValueError (%s)" % reason_word,
                  "parsed to %r" % (rec,))
            return
        results.validate(rec)
    except ValueError as e:
        check("reason for refusing %r" % (line,), reason_word in str(e),
              "a reason mentioning %r" % reason_word, repr(str(e)))
        return
    check("refuses %r" % (line,), False, "ValueError (%s)" % reason_word, "accepted")


BASE = "RESULT workload=%s workers=2 wall_s=0.5 tasks=1000 peak_rss_kb=4096 "

# --- good lines -------------------------------------------------------------
good(BASE % "spawn" + "tasks_per_s=2000 ns_per_task=500.00",
     workload="spawn", workers=2, wall_s=0.5, tasks=1000, peak_rss_kb=4096,
     tasks_per_s=2000, ns_per_task=500.0)
good(BASE % "chain" + "tasks_per_s=2000.5", tasks_per_s=2000.5)
good("RESULT workload=fib workers=2 wall_s=0.843 tasks=2692537 peak_rss_kb=5000 "
     "result=832040 tasks_per_s=3193998\n", result=832040, tasks=2692537)
good(BASE % "yield" + "switches_per_s=1.5e7", switches_per_s=1.5e7)
good(BASE % "pingpong" + "msgs_per_s=10000000", msgs_per_s=10000000)
good(BASE % "park" + "alive_max=1000 bytes_per_task=96.5 spawn_s=0.2 late_ms=3 minflt=120",
     bytes_per_task=96.5)
good(BASE % "noisy" + "policy=fifo tasks_per_s=10 p99_us=40", policy="fifo")
good(BASE % "echo" + "msgs_per_s=10 p99_us=40 extra_detail=abc", extra_detail="abc")
good("RESULT workload=park unsupported=1", workload="park", unsupported=1)
good("RESULT workload=yield unsupported=1\r\n", unsupported=1)
good("RESULT  workload=fib   workers=1 wall_s=1 tasks=1 peak_rss_kb=1 result=1 tasks_per_s=1  ",
     workers=1)

rec = results.parse_result_line(BASE % "fib" + "result=1 tasks_per_s=7")
check("headline of fib", results.headline(rec) == ("tasks_per_s", 7, "higher"),
      ("tasks_per_s", 7, "higher"), results.headline(rec))
rec = results.parse_result_line(BASE % "park" + "bytes_per_task=90")
check("headline of park", results.headline(rec)[2] == "lower", "lower", results.headline(rec))
check("result_lines", results.result_lines("progress\nRESULT workload=x\n\n") == ["RESULT workload=x"],
      ["RESULT workload=x"], results.result_lines("progress\nRESULT workload=x\n\n"))

# park and echo as the Go and Tokio peers print them (echo adds a diagnostic key)
good("RESULT workload=park workers=2 wall_s=28.962364 tasks=1000000 peak_rss_kb=2653704 "
     "alive_max=1000000 bytes_per_task=2714.1 spawn_s=8.961206 late_ms=125.312 minflt=656443",
     alive_max=1000000, bytes_per_task=2714.1, spawn_s=8.961206, late_ms=125.312, minflt=656443)
good(BASE % "park" + "alive_max=1000 bytes_per_task=96.5 spawn_s=0.2 late_ms=-0.5 minflt=120",
     late_ms=-0.5)
good("RESULT workload=echo workers=2 wall_s=9.900933 tasks=9992 peak_rss_kb=39512 "
     "msgs_per_s=100920 p99_us=603380.7 listen_overflows=4255",
     msgs_per_s=100920, p99_us=603380.7, listen_overflows=4255)
rec = results.parse_result_line(BASE % "echo" + "msgs_per_s=10 p99_us=40")
check("headline of echo", results.headline(rec) == ("msgs_per_s", 10, "higher"),
      ("msgs_per_s", 10, "higher"), results.headline(rec))

# --- malformed lines --------------------------------------------------------
bad("", "empty", "parse")
bad("   \n", "empty", "parse")
bad("hello world", "not a RESULT line", "parse")
bad("xx RESULT workload=chain workers=2 wall_s=1 tasks=1 peak_rss_kb=1 tasks_per_s=1",
    "junk before RESULT", "parse")
bad("RESULTworkload=chain", "no space after RESULT", "parse")
bad("RESULT", "no key=value", "parse")
bad("RESULT workers=2 workload=chain wall_s=1 tasks=1 peak_rss_kb=1 tasks_per_s=1",
    "expected workload", "parse")
bad(BASE % "chain" + "tasks_per_s=1 tasks_per_s=2", "duplicate key", "parse")
bad("RESULT workload=chain workers=2 workers=3 wall_s=1 tasks=1 peak_rss_kb=1 tasks_per_s=1",
    "duplicate key", "parse")
bad(BASE % "chain" + "tasks_per_s", "not key=value", "parse")
bad(BASE % "chain" + "tasks_per_s=", "empty value", "parse")
bad(BASE % "chain" + "Tasks_Per_S=3", "bad key", "parse")
# missing keys
bad("RESULT workload=chain wall_s=1 tasks=1 peak_rss_kb=1 tasks_per_s=1", "missing key 'workers'")
bad("RESULT workload=chain workers=1 tasks=1 peak_rss_kb=1 tasks_per_s=1", "missing key 'wall_s'")
bad("RESULT workload=chain workers=1 wall_s=1 peak_rss_kb=1 tasks_per_s=1", "missing key 'tasks'")
bad("RESULT workload=chain workers=1 wall_s=1 tasks=1 tasks_per_s=1", "missing key 'peak_rss_kb'")
bad(BASE % "spawn" + "tasks_per_s=1", "missing key 'ns_per_task'")
bad(BASE % "fib" + "tasks_per_s=1", "missing key 'result'")
bad(BASE % "yield" + "tasks_per_s=1", "missing key 'switches_per_s'")
bad(BASE % "pingpong", "missing key 'msgs_per_s'")
bad(BASE % "park" + "bytes_per_task=96.5 spawn_s=0.2 late_ms=3 minflt=120", "missing key 'alive_max'")
bad(BASE % "park" + "alive_max=1000 bytes_per_task=96.5 spawn_s=0.2 minflt=120",
    "missing key 'late_ms'")
bad(BASE % "park" + "alive_max=1000 bytes_per_task=96.5 spawn_s=0.2 late_ms=3", "missing key 'minflt'")
bad(BASE % "park" + "alive_max=99.5 bytes_per_task=96.5 spawn_s=0.2 late_ms=3 minflt=120",
    "whole number")
bad(BASE % "park" + "alive_max=1000 bytes_per_task=-3 spawn_s=0.2 late_ms=3 minflt=120", "negative")
bad(BASE % "echo" + "msgs_per_s=10", "missing key 'p99_us'")
bad(BASE % "echo" + "p99_us=40", "missing key 'msgs_per_s'")
bad("RESULT workload=pingpong", "missing key")
# non-numeric values
bad(BASE.replace("wall_s=0.5", "wall_s=fast") % "chain" + "tasks_per_s=1", "not a number")
bad(BASE % "chain" + "tasks_per_s=12abc", "not a number")
bad(BASE % "chain" + "tasks_per_s=nan", "not a number")
bad(BASE % "chain" + "tasks_per_s=inf", "not a number")
bad(BASE.replace("tasks=1000", "tasks=10.5") % "chain" + "tasks_per_s=1", "whole number")
bad(BASE % "fib" + "result=2.5 tasks_per_s=1", "whole number")
bad(BASE.replace("workers=2", "workers=0") % "chain" + "tasks_per_s=1", "workers")
bad(BASE % "chain" + "tasks_per_s=-5", "negative")
bad(BASE % "noisy" + "policy=3 tasks_per_s=1 p99_us=1", "should be a name")
# unknown workload, bad unsupported
bad(BASE % "bogus" + "tasks_per_s=1", "unknown workload")
bad("RESULT workload=bogus unsupported=1", "unknown workload")
bad("RESULT workload=3 unsupported=1", "unknown workload")
bad("RESULT workload=park unsupported=yes", "unsupported")
bad("RESULT workload=park unsupported=0", "unsupported")

if failures:
    print("FAIL: %d check(s) of bench/lib/results.py failed" % len(failures))
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("PASS: bench/lib/results.py")
sys.exit(0)
