#!/usr/bin/env python3
# tests/fleet/persist.py: no task lost when Redis itself goes away mid-run:
# a clean `redis-cli shutdown` with the AOF on, and a SIGKILL under
# appendfsync always, each then started again on the same socket and dir
# while two myriad-fleet workers run the queue. Asserts what is
# guaranteed: every submitted id has a result, and the queue is empty once
# the workers drained; never a duration (waits are bounded only to fail
# instead of hanging). Uses workers.py's helpers.
#   persist.py MYRIAD_FLEET    (exit 0 pass, 1 fail, 77 skip)
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workers as W  # noqa: E402


def start_redis(d, sock, fsync):
    p = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
         "--appendonly", "yes", "--appendfsync", fsync, "--dir", d],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    W.procs.append(p)
    for _ in range(400):
        if os.path.exists(sock) and cli(sock, "PING") == ["PONG"]:
            return p
        time.sleep(0.05)
    W.require(False, "redis-server did not start")


def cli(sock, *args):
    r = subprocess.run(["redis-cli", "-s", sock] + list(args),
                       capture_output=True, text=True)
    return r.stdout.splitlines()


def case(d, q, fsync, how):
    sub = os.path.join(d, q)
    os.mkdir(sub)
    sock = os.path.join(sub, "redis.sock")
    url = "unix://" + sock
    p = start_redis(sub, sock, fsync)
    n = max(500, int(4000 * W.SCALE))
    # Acknowledged submits: with the AOF written (and, for 'always',
    # fsynced) before each reply, all of them outlive the restart.
    W.submit(url, q, [{"id": "p%d" % i, "kind": "sleep", "input": "20"}
                      for i in range(n)])
    ws = [W.worker(url, q, "w%d" % i, "--max-inflight", "16")
          for i in range(2)]

    def nres():
        v = cli(sock, "XLEN", "{%s}:results" % q)
        return int(v[0]) if v and v[0].isdigit() else 0
    W.wait_for(lambda: nres() >= n // 4, "a quarter of the results")
    before = nres()
    if how == "shutdown":
        cli(sock, "SHUTDOWN")
    else:
        p.kill()
    p.wait(timeout=60 * W.SLOW)
    start_redis(sub, sock, fsync)
    W.wait_for(lambda: nres() >= n, "every result after the restart")
    res = W.results(url, q)
    missing = [i for i in range(n) if "p%d" % i not in res]
    if missing:
        W.fail("%s: %d ids without a result, e.g. p%d" %
               (q, len(missing), missing[0]))
    dups = sum(1 for r in res.values() if len(r) > 1)
    for w in ws:
        W.stop(w, q)
    left = sum(int(cli(sock, "XLEN", "{%s:%d}" % (q, k))[0]) +
               int(cli(sock, "XPENDING", "{%s:%d}" % (q, k), "myriad")[0])
               for k in range(4))
    if left:
        W.fail("%s: %d entries left in the shards or pending" % (q, left))
    print("%s (%s, appendfsync %s): %d tasks, %d results before Redis "
          "went, %d lost, %d duplicated" %
          (q, how, fsync, n, before, len(missing), dups), flush=True)


def main():
    if not shutil.which("redis-server") or not shutil.which("redis-cli"):
        print("SKIP: no redis-server")
        return 77
    d = tempfile.mkdtemp(prefix="myriad-fleet-persist-")
    try:
        case(d, "restart", "everysec", "shutdown")
        case(d, "killed", "always", "SIGKILL")
    except SystemExit:
        pass
    finally:
        for p in W.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(d, ignore_errors=True)
    if W.failures:
        print("fleet/persist: FAIL (%d)" % len(W.failures), file=sys.stderr)
        return 1
    print("fleet/persist: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
