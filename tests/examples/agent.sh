#!/usr/bin/env bash
# tests/examples/agent.sh: examples/agent end to end against llm-server
# (which answers with tool calls by the rule of servers/README.md) and
# tool-server, both on ephemeral ports (--port 0, "PORT n"):
# 1. a prompt that calls calc, fetch twice and read_file: every call and
#    its result in the transcript, the fetches seen by the tool server
#    (both in service at once: they run as parallel child tasks), the
#    final answer made of the results, exit 0;
# 2. --turns 1 and --budget 1: stopped before running the calls, exit 3;
# 3. tools that fail (a bad expression, a division by zero, a missing
#    file, a path outside the directory, a tool server that is gone): each
#    error goes back to the model as the tool's message, exit 0.
#   bash tests/examples/agent.sh AGENT LLM_SERVER TOOL_SERVER
# Exit 0 pass, 1 fail.
set -uo pipefail
# Absolute: the runs are in a temporary directory.
AGENT=$(readlink -f "${1:?agent}")
LLM=$(readlink -f "${2:?llm-server}")
TOOL=$(readlink -f "${3:?tool-server}")

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() {
	echo "FAIL: $*" >&2
	failures=$((failures + 1))
}

# start NAME PROGRAM ARGS...: runs it on port 0; sets PORT and PID.
start() {
	local name=$1 i
	shift
	"$@" --port 0 >"$tmp/$name.out" 2>"$tmp/$name.err" &
	PID=$!
	pids+=("$PID")
	PORT=
	for i in $(seq 200); do
		PORT=$(awk '$1 == "PORT" { print $2 }' "$tmp/$name.out")
		[ -n "$PORT" ] && return
		sleep 0.05
	done
	echo "FAIL: $name printed no PORT line" >&2
	cat "$tmp/$name.err" >&2
	exit 1
}

# tool_stat KEY: a counter of the tool server's STATS line.
tool_stat() {
	local line
	exec 3<>"/dev/tcp/127.0.0.1/$TOOL_PORT" || return 1
	printf 'STATS\n' >&3
	IFS= read -r line <&3
	exec 3<&-
	sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" <<<"$line"
}

# The fetches last 3 s each: two run in parallel only if both are sent
# before the first is answered, which leaves a slow machine seconds.
start llm "$LLM"
LLM_PORT=$PORT
start tool "$TOOL" --tool-ms 3000
TOOL_PORT=$PORT
export MYRIAD_BASE_URL=http://127.0.0.1:$LLM_PORT/v1
export TOOL_SERVER=127.0.0.1:$TOOL_PORT
unset OPENAI_API_KEY MYRIAD_MODEL

cd "$tmp" || exit 1
printf 'The meeting moved to Thursday.\n' >notes.txt

# agent EXPECTED_STATUS ARGS...: runs it; the transcript in $tmp/out.
agent() {
	local want=$1 rc
	shift
	"$AGENT" "$@" >out 2>err
	rc=$?
	[ "$rc" = "$want" ] || fail "agent $*: exit $rc, expected $want"
	if grep -q 'Sanitizer\|runtime error' err; then
		fail "agent $*: sanitizer report"
		cat err >&2
	fi
}

# has LINE: the transcript has this exact line.
has() {
	grep -qxF -- "$1" out || fail "no line '$1' in the transcript"
}

dump() {
	echo "--- transcript:" >&2
	cat out >&2
	echo "--- stderr:" >&2
	cat err >&2
}

# 1. calc, fetch (twice) and read_file, then the final answer.
PROMPT='Work it out: calc {"expression":"(2+3)*4.5"}, fetch {"query":"weather in Paris"}, fetch {"query":"time in Tokyo"} and read_file {"path":"notes.txt"}.'
before=$(tool_stat requests)
agent 0 "$PROMPT"
grep -qE '^turn 1: 4 tool calls \(finish_reason tool_calls, [0-9]+ tokens\)$' out ||
	fail "turn 1 is not 4 tool calls"
has '  calc {"expression":"(2+3)*4.5"}'
has '  -> 22.5'
has '  fetch {"query":"weather in Paris"}'
has '  -> ok weather in Paris'
has '  fetch {"query":"time in Tokyo"}'
has '  -> ok time in Tokyo'
has '  read_file {"path":"notes.txt"}'
has '  -> The meeting moved to Thursday.'
grep -q '^turn 2: an answer (finish_reason stop, ' out ||
	fail "turn 2 is not the final answer"
has 'answer: tool results: 22.5; ok weather in Paris; ok time in Tokyo; The meeting moved to Thursday.'
grep -qE '^turns 2, tokens [1-9][0-9]* \(prompt [1-9][0-9]*, completion [1-9][0-9]*\)$' out ||
	fail "no 'turns 2, tokens ...' line"
[ "$(grep -c '^  -> ' out)" = 4 ] || fail "not 4 results"
after=$(tool_stat requests)
[ $((after - before)) = 2 ] || fail "tool server saw $((after - before)) requests, expected 2"
[ "$(tool_stat in_service_max)" = 2 ] ||
	fail "the fetches did not run in parallel (in_service_max $(tool_stat in_service_max))"
[ "$failures" = 0 ] && echo "ok: calc, fetch, read_file and the final answer" || dump

# 2. The turn limit and the token budget come before the calls run.
n=$failures
before=$(tool_stat requests)
agent 3 --turns 1 "$PROMPT"
has '  fetch {"query":"weather in Paris"} (not run)'
has 'stopped: the turn limit'
grep -q '^turns 1, ' out || fail "not 1 turn"
grep -q '^  -> ' out && fail "a tool ran past the turn limit"
agent 3 --budget 1 "$PROMPT"
has '  calc {"expression":"(2+3)*4.5"} (not run)'
has 'stopped: the token budget'
grep -q '^turns 1, ' out || fail "not 1 turn"
[ "$(tool_stat requests)" = "$before" ] || fail "a fetch ran past a limit"
[ "$failures" = "$n" ] && echo "ok: the turn limit and the token budget" || dump

# 3. Failing tools: the error is the tool's message; the agent goes on.
n=$failures
kill "$PID"
wait "$PID" 2>/dev/null
agent 0 'Try calc {"expression":"2+*3"} and calc {"expression":"1/(2-2)"} and read_file {"path":"missing.txt"} and read_file {"path":"../notes.txt"} and fetch {"query":"anyone?"}'
has '  -> error: expected a number or '\''('\'' at offset 2 of "2+*3"'
has '  -> error: division by zero at offset 7 of "1/(2-2)"'
has "  -> error: 'missing.txt': No such file or directory"
has "  -> error: '../notes.txt': only relative paths without '..'"
has "  -> error: tool server $TOOL_SERVER: Connection refused"
has "answer: tool results: error: expected a number or '(' at offset 2 of \"2+*3\"; error: division by zero at offset 7 of \"1/(2-2)\"; error: 'missing.txt': No such file or directory; error: '../notes.txt': only relative paths without '..'; error: tool server $TOOL_SERVER: Connection refused"
grep -q '^turns 2, ' out || fail "not 2 turns"
[ "$failures" = "$n" ] && echo "ok: tool errors go back to the model" || dump

[ "$failures" = 0 ] && echo "examples/agent: all passed"
[ "$failures" = 0 ]
