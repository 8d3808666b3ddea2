#!/usr/bin/env bash
# The README's bpftrace one-liners, each run as written (LIB replaced by a
# program linked with the static libmyriad, tests/trace/usdt_target.c) and
# checked to print a map with a non-zero value: every USDT probe fires and
# every one-liner works. Needs root and bpftrace (exit 77, saying which,
# otherwise). Starts the mock LLM server on an ephemeral port.
#   bash tests/trace/usdt_oneliners.sh README TARGET LLM_SERVER
# Exit 0 pass, 1 fail, 77 skip.
set -uo pipefail
readme=${1:?usage: usdt_oneliners.sh README TARGET LLM_SERVER}
target=${2:?}
llm=${3:?}

if [ "$(id -u)" != 0 ]; then
	echo "skip: bpftrace needs root"
	exit 77
fi
if ! command -v bpftrace >/dev/null 2>&1; then
	echo "skip: no bpftrace (Debian package bpftrace)"
	exit 77
fi
# Not "readelf | grep -q" under pipefail: grep's early exit can kill
# readelf with SIGPIPE, and the pipe then fails with the notes there.
notes=$(readelf -n "$target" 2>&1)
if ! grep -q 'Provider: myriad' <<<"$notes"; then
	echo "FAIL: $target carries no myriad USDT notes"
	exit 1
fi

tmp=$(mktemp -d)
trap 'kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
"$llm" --port 0 --llm-ms 2 >"$tmp/port" 2>"$tmp/llm.err" &
srv=$!
# However slowly a loaded machine starts it: a minute at most.
for _ in $(seq 1200); do
	grep -q '^PORT ' "$tmp/port" && break
	sleep 0.05
done
port=$(sed -n 's/^PORT //p' "$tmp/port")
[ -n "$port" ] || { echo "FAIL: llm-server printed no port"; cat "$tmp/llm.err"; exit 1; }

# The table rows of README.md's "Tracing: USDT probes": probe, one-liner.
grep -E "^\| \`[a-z_]+\`.*\| \`bpftrace -e '" "$readme" >"$tmp/rows"
n=$(wc -l <"$tmp/rows")
[ "$n" -ge 10 ] || { echo "FAIL: $n one-liners found in $readme"; exit 1; }

fail=0
while IFS= read -r row; do
	probe=$(sed -n 's/^| `\([a-z_, `]*\)`.*/\1/p' <<<"$row" | tr -d '`')
	prog=$(sed -n "s/.*| \`bpftrace -e '\\(.*\\)'\` |\$/\\1/p" <<<"$row")
	if [ -z "$prog" ]; then
		echo "FAIL $probe: cannot read the one-liner: $row"
		fail=1
		continue
	fi
	prog=${prog//usdt:LIB:/usdt:$target:}
	# The map the one-liner's last probe writes: its result.
	map=$(grep -o '{ @[a-z_]*' <<<"$prog" | tail -1 | sed 's/{ //')
	out=$(timeout 120 bpftrace -e "$prog" -c "$target $port" 2>&1)
	rc=$?
	# That map with a value above zero: "@x: 5", "@x[0]: 3", or a
	# histogram "@x:" whose buckets "[1K, 2K)   12 |@@@ |" count some.
	if [ $rc -ne 0 ] || ! awk -v m="$map" '
		index($0, m ":") == 1 || index($0, m "[") == 1 {
			inmap = 1
			if ($NF ~ /^[1-9][0-9]*$/) ok = 1
			next
		}
		inmap && /^\[/ { if ($0 ~ /\) +[1-9][0-9]* \|/) ok = 1; next }
		{ inmap = 0 }
		END { exit !ok }' <<<"$out"; then
		echo "FAIL $probe: bpftrace exit $rc, no non-zero $map:"
		echo "$out" | tail -15
		fail=1
	else
		echo "ok $probe: $(grep -E '^@|^\[' <<<"$out" | head -3 | tr '\n' ' ')"
	fi
	if grep -q 'FAIL' <<<"$out"; then
		echo "FAIL $probe: the target failed:"
		grep FAIL <<<"$out"
		fail=1
	fi
done <"$tmp/rows"
[ $fail = 0 ] && echo "usdt_oneliners: $n one-liners fired"
exit $fail
