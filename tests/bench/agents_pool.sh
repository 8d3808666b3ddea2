#!/usr/bin/env bash
# myriad-bench agents with a shared pool of tool connections (bench agents,
# --tool-conns), against the real servers it starts (servers/):
# 1. --tool-conns 8 for 300 agents x 3 steps: every step done (exit 0, one
#    RESULT line, tasks=300), tool_conns=8, bytes_per_agent reported;
# 2. a descriptor limit too small for one connection per agent (ulimit -n
#    400 for 1000 agents): the benchmark says so, pools, and completes;
# 3. bad input: --tool-conns 0 and --tool-conns for another workload exit 2.
#   bash tests/bench/agents_pool.sh BUILD_DIR
# Exit 0 pass, 1 fail.
set -uo pipefail
build=${1:?usage: agents_pool.sh BUILD_DIR}
bench="$build/bench/myriad-bench"
export MYRIAD_BENCH_SERVERS="$build/servers"
fail=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

key() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" "$out" | head -1; }

check_run() { # name, expected tasks, expected tool_conns
	local rc=$1 name=$2 tasks=$3 conns=$4
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: exit $rc"; cat "$err"; fail=1; return
	fi
	if [ "$(grep -c '^RESULT workload=agents' "$out")" != 1 ]; then
		echo "FAIL $name: not one RESULT line"; cat "$out"; fail=1; return
	fi
	[ "$(key tasks)" = "$tasks" ] || { echo "FAIL $name: tasks=$(key tasks), want $tasks"; fail=1; }
	[ "$(key tool_conns)" = "$conns" ] || { echo "FAIL $name: tool_conns=$(key tool_conns), want $conns"; fail=1; }
	local bpa; bpa=$(key bytes_per_agent)
	[ -n "$bpa" ] && [ "${bpa%.*}" -gt 0 ] || { echo "FAIL $name: bytes_per_agent '$bpa'"; fail=1; }
	local sps; sps=$(key steps_per_s)
	[ -n "$sps" ] || { echo "FAIL $name: no steps_per_s"; fail=1; }
	echo "ok $name: $(cat "$out")"
}

"$bench" agents --agents 300 --steps 3 --tool-conns 8 --llm-ms 2 >"$out" 2>"$err"
check_run $? "pool of 8" 300 8

# One connection each would need 1000 + 256 + spare descriptors.
(ulimit -n 400 && exec "$bench" agents --agents 1000 --steps 2 --llm-ms 2) >"$out" 2>"$err"
rc=$?
conns=$(sed -n 's/.* tool_conns=\([0-9]*\).*/\1/p' "$out")
if ! grep -q 'share a pool of' "$err"; then
	echo "FAIL low limit: no word of the pool on stderr"; cat "$err"; fail=1
fi
if [ -z "$conns" ] || [ "$conns" -ge 1000 ] || [ "$conns" -lt 16 ]; then
	echo "FAIL low limit: tool_conns=$conns"; fail=1
fi
check_run $rc "low limit" 1000 "$conns"

"$bench" agents --tool-conns 0 --tool-port 1 --llm-port 2 >"$out" 2>"$err"
rc=$?
[ $rc = 2 ] && grep -q 'tool-conns' "$err" || { echo "FAIL --tool-conns 0: exit $rc"; cat "$err"; fail=1; }
"$bench" spawn --n 10 --tool-conns 4 >"$out" 2>"$err"
rc=$?
[ $rc = 2 ] || { echo "FAIL --tool-conns on spawn: exit $rc"; fail=1; }

[ $fail = 0 ] && echo "agents_pool: all passed"
exit $fail
