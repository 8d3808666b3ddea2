#!/usr/bin/env bash
# tests/trace/cli.sh: myriad-trace's refusals (exit 2 with a message) and
# its text screen against a running myriad-bench.
#   cli.sh MYRIAD_TRACE MYRIAD_BENCH
# Refused: a process that is not myriad's (PID 1), a PID that does not
# exist, arguments that are not a PID, and (as root, when setpriv and the
# user nobody exist) another user's process. Not refused: a myriad-bench
# started with MYRIAD_STATS_SHM=1; its text screen names the source, has a
# row per worker and a total, and says the histograms are unavailable
# without eBPF.
trace=$1
bench=$2
fail=0
tmp=$(mktemp -d)
bpid=
cleanup() {
	[ -n "$bpid" ] && kill -9 "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
	[ -n "$bpid" ] && rm -f /dev/shm/myriad."$bpid".*
	rm -rf "$tmp"
}
trap cleanup EXIT

# expect_refused WHAT PATTERN ARGS...: exit 2, and PATTERN on stderr.
expect_refused() {
	local what=$1 pat=$2
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	local rc=$?
	if [ $rc -ne 2 ]; then
		echo "FAIL: $what: exit $rc, want 2" >&2
		fail=1
	elif ! grep -Eq "$pat" "$tmp/err"; then
		echo "FAIL: $what: stderr lacks /$pat/:" >&2
		cat "$tmp/err" >&2
		fail=1
	else
		echo "ok: $what: $(head -1 "$tmp/err")"
	fi
}

# PID 1 is not a myriad process (as root), or not ours (otherwise).
expect_refused "pid 1" "refused: .*(not a myriad process|not to you)" \
	"$trace" --duration 1 1
# pid_max itself is never a process id.
nopid=$(cat /proc/sys/kernel/pid_max)
expect_refused "nonexistent pid $nopid" "refused: no process $nopid" \
	"$trace" --duration 1 "$nopid"
expect_refused "not a pid" "not a process id" "$trace" abc
expect_refused "no pid" "usage" "$trace" --json
expect_refused "bad --interval" "interval" "$trace" --interval 0 1

MYRIAD_STATS_SHM=1 "$bench" yield --tasks 1000 --yields 2000000 \
	--workers 2 >/dev/null 2>&1 &
bpid=$!
# Its shared counters once it runs (a sanitizer build starts slowly on a
# loaded machine: a minute at most).
for _ in $(seq 1200); do
	ls /dev/shm/myriad."$bpid".* >/dev/null 2>&1 && break
	sleep 0.05
done

# Another user's process, as that user: refused even though it is myriad's.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null &&
	id nobody >/dev/null 2>&1 &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		test -x "$trace" 2>/dev/null; then
	expect_refused "another user's process" "belongs to uid 0, not to you" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$trace" --duration 1 "$bpid"
else
	echo "skipped: another user's process (needs root, setpriv, nobody" \
		"and a build tree nobody can read)"
fi

# The text screen, without eBPF: a table every 0.4 s, then the note.
"$trace" --duration 1.2 --interval 0.4 --no-bpf --histograms "$bpid" \
	>"$tmp/screen" 2>"$tmp/err"
rc=$?
cat "$tmp/screen"
if [ $rc -ne 0 ]; then
	echo "FAIL: text mode: exit $rc" >&2
	cat "$tmp/err" >&2
	fail=1
fi
check() {
	if ! grep -Eq "$2" "$tmp/screen"; then
		echo "FAIL: text mode: $1: no line matching /$2/" >&2
		fail=1
	fi
}
check "header names the source" "^myriad-trace: pid $bpid \(myriad-bench\), source shm\+proc: eBPF not tried"
check "column header" "^WORKER +TID +CPU +%CPU +RUN/s +STEAL/s +PARK/s +WAKE/s +QUEUE +PREEMPT/s +RQDLY ms/s"
check "row of worker 0" "^w0 +[0-9]+ +[0-9]+ "
check "row of worker 1" "^w1 +[0-9]+ +[0-9]+ "
check "totals row" "^total "
check "histograms unavailable" "^histograms unavailable with source shm\+proc"
# The tool sleeps to absolute times, 0.4 s apart, and stops at 1.2 s: 3
# tables, fewer when it woke late (a loaded machine), never more; their
# intervals (printed to 0.01 s) cover the 1.2 s.
n=$(grep -c "^WORKER" "$tmp/screen")
if [ "$n" -lt 1 ] || [ "$n" -gt 3 ]; then
	echo "FAIL: text mode: $n tables in 1.2 s at 0.4 s, want 1 to 3" >&2
	fail=1
fi
covered=$(sed -n 's/.*  interval \([0-9.]*\) s  .*/\1/p' "$tmp/screen" |
	awk '{ s += $1 } END { print (s >= 1.2 - 0.005 * NR) ? "yes" : s }')
if [ "$covered" != yes ]; then
	echo "FAIL: text mode: the intervals cover $covered s, want 1.2" >&2
	fail=1
fi
exit $fail
