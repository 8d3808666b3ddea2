#!/usr/bin/env bash
# myriad-bench agents --tools (bench/agents_tools.c), a step being model ->
# tool calls -> model, against the real servers it starts (servers/):
# 1. --tools alone: one call a step, a connection per agent; every step
#    done (exit 0, one RESULT line, tasks=A), tools=1, tool_calls_per_s
#    equal to steps_per_s;
# 2. --tools 3: three parallel calls a step on 3 connections per agent,
#    tool_calls_per_s three times steps_per_s;
# 3. --tools 2 --tool-conns 4: the calls share a pool of 4 connections;
# 4. bad input: --tools 0, --tools 9 and --tools for another workload
#    exit 2.
#   bash tests/bench/agents_tools.sh BUILD_DIR
# Exit 0 pass, 1 fail.
set -uo pipefail
build=${1:?usage: agents_tools.sh BUILD_DIR}
bench="$build/bench/myriad-bench"
export MYRIAD_BENCH_SERVERS="$build/servers"
fail=0
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

key() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p" "$out" | head -1; }

# check_run RC NAME TASKS TOOLS TOOL_CONNS
check_run() {
	local rc=$1 name=$2 tasks=$3 tools=$4 conns=$5
	if [ "$rc" != 0 ]; then
		echo "FAIL $name: exit $rc"; cat "$err"; fail=1; return
	fi
	if [ "$(grep -c '^RESULT workload=agents' "$out")" != 1 ]; then
		echo "FAIL $name: not one RESULT line"; cat "$out"; fail=1; return
	fi
	[ "$(key tasks)" = "$tasks" ] || { echo "FAIL $name: tasks=$(key tasks), want $tasks"; fail=1; }
	[ "$(key tools)" = "$tools" ] || { echo "FAIL $name: tools=$(key tools), want $tools"; fail=1; }
	[ "$(key tool_conns)" = "$conns" ] || { echo "FAIL $name: tool_conns=$(key tool_conns), want $conns"; fail=1; }
	# tool_calls_per_s = steps_per_s x tools, both printed to 0.1.
	python3 -c "
import sys
s, c, n = float('$(key steps_per_s)'), float('$(key tool_calls_per_s)'), $tools
sys.exit(0 if s > 0 and abs(c - s * n) <= 0.05 * n + 0.1 else 1)" ||
		{ echo "FAIL $name: tool_calls_per_s=$(key tool_calls_per_s) for steps_per_s=$(key steps_per_s)"; fail=1; }
	echo "ok $name: $(cat "$out")"
}

"$bench" agents --agents 100 --steps 3 --llm-ms 2 --tools >"$out" 2>"$err"
check_run $? "--tools" 100 1 100

"$bench" agents --agents 100 --steps 2 --llm-ms 2 --tools 3 >"$out" 2>"$err"
check_run $? "--tools 3" 100 3 300

"$bench" agents --agents 100 --steps 2 --llm-ms 2 --tools 2 --tool-conns 4 >"$out" 2>"$err"
check_run $? "--tools 2 --tool-conns 4" 100 2 4

for bad in "agents --tools 0" "agents --tools 9" "spawn --n 10 --tools 1" "spawn --n 10 --tools"; do
	# shellcheck disable=SC2086
	"$bench" $bad >"$out" 2>"$err"
	rc=$?
	[ $rc = 2 ] || { echo "FAIL $bad: exit $rc, want 2"; cat "$err"; fail=1; }
done

[ $fail = 0 ] && echo "agents_tools: all passed"
exit $fail
