#!/usr/bin/env python3
# tests/fleet/workers.py: myriad-fleet worker processes against a real
# redis-server: SIGKILL mid-run loses nothing, a lease keeps a long task,
# a takeover resumes from its checkpoint, dead letters with their reason,
# SIGTERM drains, clear errors for a bad URL, an unreachable Redis and a
# missing queue. The test starts its own redis-server on a unix socket in
# a temporary directory (--port 0: no TCP; --save '' --appendonly no) and
# kills it however the test ends. Asserts what is guaranteed, never a
# duration: waits are bounded only to fail instead of hanging.
#   workers.py MYRIAD_FLEET    (exit 0 pass, 1 fail, 77 skip)
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

FLEET = sys.argv[1]
SCALE = float(os.environ.get("MYRIAD_TEST_SCALE", "1"))
SLOW = 4 if SCALE < 0.5 else 2 if SCALE < 1 else 1
procs = []
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr, flush=True)


def require(cond, msg):
    if not cond:
        fail(msg)
        raise SystemExit(1)


class Redis:
    def __init__(self, d):
        self.sock = os.path.join(d, "redis.sock")
        self.url = "unix://" + self.sock
        self.p = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.sock,
             "--save", "", "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(self.p)
        for _ in range(200):
            if os.path.exists(self.sock) and self.cmd("PING") == ["PONG"]:
                return
            time.sleep(0.05)
        require(False, "redis-server did not start")

    def cmd(self, *args):
        r = subprocess.run(["redis-cli", "-s", self.sock] + list(args),
                           capture_output=True, text=True)
        return r.stdout.splitlines()


def fleet(url, *args, inp=None, check=True):
    r = subprocess.run([FLEET, "--url", url] + list(args), input=inp,
                       capture_output=True, text=True, timeout=120 * SLOW)
    if check and r.returncode != 0:
        fail("myriad-fleet %s: exit %d: %s" % (args, r.returncode,
                                                r.stderr.strip()))
    return r


def worker(url, queue, consumer, *extra):
    p = subprocess.Popen(
        [FLEET, "--url", url, "run", queue, "--workers", "2",
         "--consumer", consumer] + list(extra),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    return p


def stop(w, what):
    """SIGTERM: the worker drains and exits 0; its last words are shown."""
    w.send_signal(signal.SIGTERM)
    rc = w.wait(timeout=60 * SLOW)
    err = w.stderr.read()
    print(err.strip(), flush=True)
    if rc != 0:
        fail("%s: a worker's drain exited %d: %s" % (what, rc, err))


def submit(url, queue, entries, shards=4):
    text = "".join(json.dumps(e) + "\n" for e in entries)
    r = fleet(url, "submit", queue, "-", "--shards", str(shards), inp=text)
    return r


def results(url, queue):
    r = fleet(url, "results", queue)
    out = {}
    for line in r.stdout.splitlines():
        j = json.loads(line)
        out.setdefault(j["id"], []).append(j)
    return out


def wait_for(pred, what, limit=90):
    end = time.monotonic() + limit * SLOW
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.1)
    fail("timed out waiting for " + what)
    return False


def stream_ids_to_task_ids(redis, key, eids):
    tids = set()
    for eid in eids:
        f = redis.cmd("XRANGE", key, eid, eid)
        # [id, 'id', tid, 'kind', ...] one per line
        if len(f) >= 3 and f[1] == "id":
            tids.add(f[2])
    return tids


def test_kill(redis, rnd):
    """N tasks through 3 workers, one SIGKILLed mid-run.

    At-least-once promises no lost id, and a second result only from a
    takeover: every id with more than one result has one whose attempt is
    2 or more. Which entries get a second run is not promised: on a loaded
    machine a live worker's lease can lapse too, so the entries the killed
    one held are only counted, not compared with the duplicates."""
    q = "kill%d" % rnd
    n = max(200, int(3000 * SCALE))
    lease = ["--lease-ms", "1000", "--max-inflight", "32"]
    submit(redis.url, q, [{"id": "t%d" % i, "kind": "sleep", "input": "20"}
                          for i in range(n)])
    ws = [worker(redis.url, q, "w%d" % i, *lease) for i in range(3)]

    def w0_holds():  # redis-cli prints an empty array as an empty line
        return any(any(redis.cmd("XPENDING", "{%s:%d}" % (q, k), "myriad",
                                 "-", "+", "1", "w0")) for k in range(4))

    def done():
        return int(redis.cmd("XLEN", "{%s}:results" % q)[0]) >= n
    # Killed the first time it is seen holding entries; a queue that
    # empties first is still checked for losses (said below).
    wait_for(lambda: w0_holds() or done(), "the worker to kill holding "
             "entries")
    ws[0].send_signal(signal.SIGKILL)
    ws[0].wait()
    # What the killed consumer held: frozen until taken over.
    held = set()
    for k in range(4):
        key = "{%s:%d}" % (q, k)
        lines = redis.cmd("XPENDING", key, "myriad", "-", "+", "100000",
                          "w0")
        eids = [lines[i] for i in range(0, len(lines), 4)]
        held |= stream_ids_to_task_ids(redis, key, eids)
    wait_for(lambda: len(results(redis.url, q)) >= n, "every result")
    res = results(redis.url, q)
    missing = [i for i in range(n) if "t%d" % i not in res]
    if missing:
        fail("round %d: %d ids without a result, e.g. t%d" %
             (rnd, len(missing), missing[0]))
    dups = {t for t, r in res.items() if len(r) > 1}
    bad = [t for t in sorted(dups)
           if not any(x["attempt"] >= 2 for x in res[t])]
    if bad:
        fail("round %d: duplicates without a takeover (no attempt >= 2): "
             "%s" % (rnd, [res[t] for t in bad[:3]]))
    for w in ws[1:]:
        stop(w, "round %d" % rnd)
    print("kill round %d: %d tasks, %d lost, %d duplicated (%d held by the "
          "killed one, %d of the duplicates among them)%s" %
          (rnd, n, len(missing), len(dups), len(held), len(dups & held),
           "" if held else " (killed after the queue emptied)"),
          flush=True)


def test_lease(redis):
    """A task longer than the lease, on a live worker, is not stolen.

    What it needs: worker a refreshes its lease every third of it (2 s), so
    b takes the entry over only if a's refreshes stop reaching Redis for
    more than 4 s (a lease of 6 s less one refresh interval) while the
    10 s task runs: a process stalled that long is what the lease is for
    telling from a dead one, not a loaded machine's scheduling."""
    q = "lease"
    submit(redis.url, q, [{"id": "long", "kind": "sleep", "input": "10000"}],
           shards=1)
    a = worker(redis.url, q, "a", "--lease-ms", "6000")
    wait_for(lambda: redis.cmd("XPENDING", "{lease:0}", "myriad")[0] == "1",
             "the long task to be taken")
    b = worker(redis.url, q, "b", "--lease-ms", "6000")
    wait_for(lambda: "long" in results(redis.url, q), "the long result")
    r = results(redis.url, q).get("long", [])
    if len(r) != 1 or r[0]["attempt"] != 1 or r[0]["consumer"] != "a":
        fail("lease: the long task ran elsewhere or again: %s" % r)
    for w in (a, b):
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=60 * SLOW)


def test_checkpoint(redis):
    """A task taken over resumes from its last checkpoint.

    What it needs: a is killed after its second checkpoint of twenty (the
    remaining 18 steps of 200 ms give the kill 3.6 s), and a's own lease of
    3 s refreshed every second does not lapse while a runs."""
    q = "ckpt"
    submit(redis.url, q, [{"id": "agent", "kind": "steps",
                           "input": "20:200"}], shards=1)
    a = worker(redis.url, q, "a", "--lease-ms", "3000")

    def two_steps():
        v = redis.cmd("HGET", "{ckpt:0}:ckpt", "agent")
        return v and v[0].isdigit() and int(v[0]) >= 2
    wait_for(two_steps, "two checkpoints")
    a.send_signal(signal.SIGKILL)
    a.wait()
    # A checkpoint the killed worker sent last may still sit in Redis's
    # socket buffer: the takeover starts from this one or a later one.
    saved = int(redis.cmd("HGET", "{ckpt:0}:ckpt", "agent")[0])
    b = worker(redis.url, q, "b", "--lease-ms", "3000")
    wait_for(lambda: "agent" in results(redis.url, q), "the agent's result")
    r = results(redis.url, q).get("agent", [])
    start = -1
    if len(r) == 1 and r[0]["output"].startswith("start="):
        start = int(r[0]["output"].split()[0][6:])
    if len(r) != 1 or not saved <= start < 20 or \
            r[0]["output"] != "start=%d steps=20" % start or \
            r[0]["attempt"] != 2:
        fail("checkpoint: expected one result from step %d or later, "
             "attempt 2: %s" % (saved, r))
    if redis.cmd("HEXISTS", "{ckpt:0}:ckpt", "agent") != ["0"]:
        fail("checkpoint: not deleted with the result")
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=60 * SLOW)


def test_dead(redis):
    """Malformed entries and unknown kinds: dead letters with a reason."""
    q = "dead"
    submit(redis.url, q, [{"id": "u1", "kind": "nosuch", "input": "x"},
                          {"id": "ok", "kind": "fib", "input": "10"}],
           shards=1)
    redis.cmd("XADD", "{dead:0}", "*", "id", "m1", "input", "x")
    redis.cmd("XADD", "{dead:0}", "*", "kind", "fib", "input", "3")
    a = worker(redis.url, q, "a")
    wait_for(lambda: int(redis.cmd("XLEN", "{dead}:dead")[0]) >= 3,
             "three dead letters")
    lines = redis.cmd("XRANGE", "{dead}:dead", "-", "+")
    reasons = [lines[i + 1] for i, v in enumerate(lines) if v == "reason"]
    for want in ("unknown kind: nosuch", "malformed entry: no kind",
                 "malformed entry: no id"):
        if want not in reasons:
            fail("dead: no dead letter '%s' in %s" % (want, reasons))
    wait_for(lambda: "ok" in results(redis.url, q), "the good result")
    wait_for(lambda: redis.cmd("XLEN", "{dead:0}") == ["0"],
             "the shard emptied (dead letters acked and deleted)")
    a.send_signal(signal.SIGTERM)
    a.wait(timeout=60 * SLOW)


def test_drain(redis):
    """SIGTERM: stop pulling, finish what runs, ack, exit 0."""
    q = "drain"
    n = 40
    submit(redis.url, q, [{"id": "d%d" % i, "kind": "sleep", "input": "300"}
                          for i in range(n)], shards=2)
    a = worker(redis.url, q, "a", "--max-inflight", "8")
    wait_for(lambda: int(redis.cmd("XPENDING", "{drain:0}", "myriad")[0]) +
             int(redis.cmd("XPENDING", "{drain:1}", "myriad")[0]) > 0,
             "tasks running")
    a.send_signal(signal.SIGTERM)
    rc = a.wait(timeout=60 * SLOW)
    if rc != 0:
        fail("drain: exit %d: %s" % (rc, a.stderr.read()))
    pend = sum(int(redis.cmd("XPENDING", "{drain:%d}" % k, "myriad")[0])
               for k in range(2))
    if pend:
        fail("drain: %d entries still pending after the drain" % pend)
    got = len(results(redis.url, q))
    left = sum(int(redis.cmd("XLEN", "{drain:%d}" % k)[0]) for k in range(2))
    # Entries were pending when SIGTERM came: those finish (got > 0). How
    # many more ran before the signal is the machine's business.
    if got + left != n or got == 0:
        fail("drain: %d results + %d waiting != %d (or nothing drained)" %
             (got, left, n))
    print("drain: %d finished, %d left waiting" % (got, left), flush=True)


def test_errors(redis, d):
    r = fleet("redis//nope", "status", "q", check=False)
    if r.returncode != 2 or "malformed URL" not in r.stderr:
        fail("bad URL: exit %d, %s" % (r.returncode, r.stderr))
    r = fleet("unix://" + os.path.join(d, "none.sock"), "status", "q",
              check=False)
    if r.returncode != 3 or "unreachable" not in r.stderr:
        fail("unreachable: exit %d, %s" % (r.returncode, r.stderr))
    r = fleet(redis.url, "status", "nosuchqueue", check=False)
    if r.returncode != 4 or "does not exist" not in r.stderr:
        fail("no queue: exit %d, %s" % (r.returncode, r.stderr))
    r = fleet(redis.url, "run", "nosuchqueue", check=False)
    if r.returncode != 4:
        fail("run, no queue: exit %d, %s" % (r.returncode, r.stderr))


def test_late_redis(d):
    """Redis unreachable at start: the worker retries until it is there."""
    sock = os.path.join(d, "late.sock")
    url = "unix://" + sock
    p = subprocess.Popen([FLEET, "--url", url, "submit", "late", "-"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    procs.append(p)
    time.sleep(0.3)  # not a check: gives the retries something to do
    rp = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
         "--appendonly", "no", "--dir", d],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(rp)
    out, err = p.communicate(
        json.dumps({"id": "x", "kind": "fib", "input": "5"}) + "\n",
        timeout=60 * SLOW)
    if p.returncode != 0 or "submitted 1" not in out:
        fail("late Redis: exit %d: %s %s" % (p.returncode, out, err))
    rp.kill()


def main():
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("SKIP: no redis-server")
        return 77
    d = tempfile.mkdtemp(prefix="myriad-fleet-")
    try:
        redis = Redis(d)
        test_errors(redis, d)
        test_dead(redis)
        test_lease(redis)
        test_checkpoint(redis)
        test_drain(redis)
        for rnd in range(max(1, int(3 * SCALE))):
            test_kill(redis, rnd)
        test_late_redis(d)
    except SystemExit:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)
    if failures:
        print("fleet/workers: FAIL (%d)" % len(failures), file=sys.stderr)
        return 1
    print("fleet/workers: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
