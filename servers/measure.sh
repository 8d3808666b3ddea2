#!/usr/bin/env bash
# servers/measure.sh: how fast the mock servers are, with loadgen
# (closed loop: C keep-alive connections, one request in flight each).
#   servers/measure.sh [BUILD_DIR] [DURATION_S]
# (default build, 10). For each setting: loadgen's RESULT line, then the
# server's own CPU time over the run (utime + stime from /proc) per second
# and per request. The settings: the agents step's LLM server (llm_ms 20,
# concurrency 256: the bound is 12,800/s) with 10,000 and 1,000
# connections; the server's ceiling (llm_ms 0) with 10,000 and 100; a
# streamed answer; the tool server (tool_ms 2, and 0) with 10,000.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
dur=${2:-10}
bin=$build/servers
for p in llm-server tool-server loadgen; do
	[ -x "$bin/$p" ] || {
		echo "no $bin/$p: build first (ninja -C $build)" >&2
		exit 1
	}
done
tck=$(getconf CLK_TCK)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# run LABEL "SERVER ARGS" "LOADGEN ARGS"
run() {
	local label=$1 server=$2 lg=$3 pid port c0 c1 line req
	# shellcheck disable=SC2086
	"$bin"/$server --port 0 >"$tmp/out" &
	pid=$!
	for _ in $(seq 100); do
		port=$(awk '$1 == "PORT" { print $2 }' "$tmp/out")
		[ -n "$port" ] && break
		sleep 0.05
	done
	c0=$(cpu_ticks "$pid")
	# shellcheck disable=SC2086
	line=$("$bin"/loadgen --port "$port" --duration "$dur" $lg)
	c1=$(cpu_ticks "$pid")
	kill "$pid"
	wait "$pid" 2>/dev/null
	req=$(echo "$line" | sed -n 's/.* requests=\([0-9]*\).*/\1/p')
	echo "# $label: $server | loadgen $lg"
	echo "$line"
	# The server's CPU over warm-up and window together: per request
	# it is an upper bound.
	awk -v t=$((c1 - c0)) -v hz="$tck" -v d="$dur" -v r="$req" 'BEGIN {
		printf "server_cpu_s=%.2f server_cpu_per_s=%.3f server_cpu_us_per_req<=%.1f\n",
			t / hz, t / hz / (d + 2), r ? t / hz * 1e6 / r : 0 }'
}

echo "# $(nproc) CPUs, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
run "agents LLM, 10k conns" "llm-server --llm-ms 20 --concurrency 256" \
	"--conns 10000 --warmup 2"
run "agents LLM, 1k conns" "llm-server --llm-ms 20 --concurrency 256" \
	"--conns 1000 --warmup 2"
run "LLM ceiling, 10k conns" "llm-server --llm-ms 0 --concurrency 256" \
	"--conns 10000 --warmup 2"
run "LLM ceiling, 100 conns" "llm-server --llm-ms 0 --concurrency 256" \
	"--conns 100 --warmup 2"
run "LLM streamed, 10k conns" "llm-server --llm-ms 20 --concurrency 256" \
	"--conns 10000 --warmup 2 --mode stream"
run "tool, 10k conns" "tool-server --tool-ms 2" \
	"--conns 10000 --warmup 2 --mode tool"
run "tool ceiling, 10k conns" "tool-server --tool-ms 0" \
	"--conns 10000 --warmup 2 --mode tool"
