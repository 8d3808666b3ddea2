#!/usr/bin/env bash
# tests/servers/llm_server.sh: the mock servers of servers/ over
# loopback, with curl and bash's /dev/tcp (python3 reads the JSON).
#   bash tests/servers/llm_server.sh GROUP LLM_SERVER TOOL_SERVER [SDK_CACHE]
# GROUP: basic (chat, embeddings, streaming, stats, keep-alive, bad
# requests), concurrency (the batch limit, the FIFO, 429 overload, client
# closes), faults (every fault mode, --fail-first, fractions), tool (the
# tool server), api (n, embeddings in batch/base64/dimensions, usage in
# streams, --models, x-request-id, error bodies), toolcalls (the tool-call
# rule, llm_tools.py), sdk (the official OpenAI Node SDK; a 4th argument,
# the folder to install it in). Each server runs on an ephemeral port
# (--port 0, "PORT n").
# Exit 0 pass, 1 fail, 77 skip (no curl or python3; sdk: no node/npm or
# no registry).
set -uo pipefail
group=${1:?group}
LLM=${2:?llm-server}
TOOL=${3:?tool-server}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
command -v curl >/dev/null 2>&1 || { echo "SKIP: no curl"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }

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
ok() {
	echo "ok: $*"
}

# start PROGRAM ARGS...: runs it on port 0; sets PID and PORT.
nstart=0
start() {
	local out=$tmp/server.$nstart i
	nstart=$((nstart + 1))
	"$@" --port 0 >"$out" 2>"$out.err" &
	PID=$!
	pids+=("$PID")
	PORT=
	for i in $(seq 100); do
		PORT=$(awk '$1 == "PORT" { print $2 }' "$out" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.05
	done
	if [ -z "$PORT" ]; then
		echo "FAIL: $* printed no PORT line" >&2
		cat "$out.err" >&2
		exit 1
	fi
	URL=http://127.0.0.1:$PORT
	ERR=$out.err
}

# stop [SIGNAL]: SIGTERM (or SIGNAL) the last server; it must exit 0.
stop() {
	local rc sig=${1:-TERM}
	kill -"$sig" "$PID"
	wait "$PID"
	rc=$?
	# Reaped: its pid may be another process's soon; cleanup() must not
	# signal it.
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$PID" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
	[ "$rc" -eq 0 ] || fail "server exited $rc on SIG$sig, expected 0"
	if [ -s "$ERR" ]; then
		fail "server wrote on stderr:"
		head -40 "$ERR" >&2
	fi
}

# py 'CODE' < json: run CODE with d = the parsed stdin; exit 1 on an
# AssertionError, printing it.
py() {
	python3 -c "
import json, sys
raw = sys.stdin.read()
try:
    d = json.loads(raw)
except Exception as e:
    d = None
try:
$(printf '%s\n' "$1" | sed 's/^/    /')
except AssertionError as e:
    print('assertion failed:', e, '| data:', raw[:400], file=sys.stderr)
    sys.exit(1)
"
}

# bg CMD...: a client in the background; waitc waits for them all and
# fails if any failed.
cpids=()
bg() {
	"$@" &
	cpids+=($!)
}
waitc() {
	local p rc=0
	for p in "${cpids[@]}"; do
		wait "$p" || rc=1
	done
	cpids=()
	return $rc
}

# tool_say TEXT N: send TEXT on a new connection, print N answer lines.
tool_say() {
	local i l
	exec 4<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	printf '%s' "$1" >&4
	for ((i = 0; i < $2; i++)); do
		IFS= read -r -t 5 l <&4 || break
		echo "$l"
	done
	exec 4<&-
}

tool_check() { # tool_check WORD: one call, answered "ok WORD"
	[ "$(tool_say "$1"$'\n' 1)" = "ok $1" ]
}

timed_chat() { # timed_chat I: a chat into f$I, its end time into t$I
	chat "{\"messages\":[$MSG1]}" -o "$tmp/f$1"
	date +%s%N >"$tmp/t$1"
}

stats() {
	curl -s "$URL/stats"
}

# stat FIELD: one counter of /stats
stat() {
	stats | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

chat() { # chat BODY [curl args...]: POST to /v1/chat/completions
	local body=$1
	shift
	curl -s "$@" -H 'Content-Type: application/json' -d "$body" \
		"$URL/v1/chat/completions"
}

MSG1='{"role":"user","content":"hello"}'
MSG2='{"role":"system","content":"be brief"}'

group_basic() {
	local t0 t1 out code body

	start "$LLM" --llm-ms 100
	# A chat round trip, field by field, and the service time.
	t0=$(date +%s%N)
	out=$(chat "{\"model\":\"test-model\",\"messages\":[$MSG2,$MSG1]}")
	t1=$(date +%s%N)
	echo "$out" | py '
assert d is not None, "not JSON"
assert d["id"] == "chatcmpl-1", d["id"]
assert d["object"] == "chat.completion"
assert isinstance(d["created"], int) and d["created"] > 1600000000
assert d["model"] == "test-model"
c = d["choices"]
assert len(c) == 1 and c[0]["index"] == 0
assert c[0]["message"] == {"role": "assistant", "content": "reply 1 to 2 messages"}, c[0]
assert c[0]["finish_reason"] == "stop"
u = d["usage"]
assert u["completion_tokens"] == 5, u
assert u["prompt_tokens"] > 0 and u["total_tokens"] == u["prompt_tokens"] + 5, u
t = d["timings"]
assert t["queue_ms"] == 0, t
assert abs(t["prompt_ms"] + t["predicted_ms"] - 100) < 0.01, t
' && ok "chat round trip" || fail "chat round trip"
	[ $(((t1 - t0) / 1000000)) -ge 95 ] && ok "chat answered after llm_ms" ||
		fail "chat answered after $(((t1 - t0) / 1000000)) ms, llm_ms is 100"

	# No model: "mock"; max_tokens cuts the reply.
	chat "{\"messages\":[$MSG1],\"max_tokens\":2}" | py '
assert d["model"] == "mock", d["model"]
assert d["choices"][0]["message"]["content"] == "reply 2", d
assert d["choices"][0]["finish_reason"] == "length"
assert d["usage"]["completion_tokens"] == 2
' && ok "max_tokens" || fail "max_tokens"

	# Embeddings: a string, an array; deterministic vectors.
	curl -s -d '{"model":"emb","input":"same text"}' "$URL/v1/embeddings" >"$tmp/e1"
	curl -s -d '{"model":"emb","input":["other","same text","third"]}' \
		"$URL/v1/embeddings" >"$tmp/e3"
	python3 - "$tmp/e1" "$tmp/e3" <<'EOF' && ok "embeddings" || fail "embeddings"
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
for d, n in ((a, 1), (b, 3)):
    assert d["object"] == "list" and d["model"] == "emb", d
    assert [x["index"] for x in d["data"]] == list(range(n)), d
    for x in d["data"]:
        assert x["object"] == "embedding"
        assert len(x["embedding"]) == 8
        assert all(isinstance(v, float) and -1 <= v < 1 for v in x["embedding"])
    assert d["usage"]["prompt_tokens"] > 0
    assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"]
assert a["data"][0]["embedding"] == b["data"][1]["embedding"], "not deterministic"
assert a["data"][0]["embedding"] != b["data"][0]["embedding"]
EOF

	# Streaming: headers, the role first, the words in order, [DONE] last,
	# spread over llm_ms.
	t0=$(date +%s%N)
	chat "{\"model\":\"s\",\"messages\":[$MSG1],\"stream\":true}" -N -D "$tmp/sh" >"$tmp/sb"
	t1=$(date +%s%N)
	python3 - "$tmp/sh" "$tmp/sb" <<'EOF' && ok "streaming" || fail "streaming"
import json, sys
h = open(sys.argv[1]).read().lower()
assert "content-type: text/event-stream" in h, h
assert "transfer-encoding: chunked" in h, h
events = [l[6:] for l in open(sys.argv[2]).read().split("\n") if l.startswith("data: ")]
assert events[-1] == "[DONE]", events[-1]
chunks = [json.loads(e) for e in events[:-1]]
assert all(c["object"] == "chat.completion.chunk" and c["model"] == "s" for c in chunks)
assert len({c["id"] for c in chunks}) == 1
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
words = [c["choices"][0]["delta"].get("content", "") for c in chunks[1:-1]]
n = chunks[0]["id"].split("-")[1]
assert words == ["reply", " " + n, " to", " 1", " message"], words
assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
assert chunks[-1]["choices"][0]["delta"] == {}
assert all("usage" not in c for c in chunks), "usage not asked for"
EOF
	[ $(((t1 - t0) / 1000000)) -ge 95 ] && ok "stream spread over llm_ms" ||
		fail "stream took $(((t1 - t0) / 1000000)) ms, llm_ms is 100"

	# Keep-alive: three requests on one curl, one connection.
	local before after
	before=$(stat connections_accepted)
	curl -s -o /dev/null -o /dev/null -o /dev/null \
		-d "{\"messages\":[$MSG1]}" "$URL/v1/chat/completions" \
		"$URL/v1/chat/completions" "$URL/v1/chat/completions"
	after=$(stat connections_accepted)
	[ $((after - before)) -eq 2 ] && ok "keep-alive" ||
		fail "keep-alive: $((after - before - 1)) connections for 3 requests"

	# Expect: 100-continue is answered.
	code=$(chat "{\"messages\":[$MSG1]}" -o /dev/null -w '%{http_code}' \
		-H 'Expect: 100-continue' --expect100-timeout 5)
	[ "$code" = 200 ] && ok "Expect: 100-continue" || fail "Expect: got $code"

	# Bad requests: an OpenAI error body, never a crash.
	check_error() { # check_error STATUS WHAT CURL-ARGS...
		local want=$1 what=$2
		shift 2
		code=$(curl -s -o "$tmp/err" -w '%{http_code}' "$@")
		if [ "$code" = "$want" ] && py 'assert isinstance(d["error"]["message"], str) and d["error"]["type"]' <"$tmp/err"; then
			ok "$what -> $want"
		else
			fail "$what: got $code $(head -c 200 "$tmp/err")"
		fi
	}
	check_error 400 "not JSON" -d '{"messages": [' "$URL/v1/chat/completions"
	check_error 400 "trailing bytes" -d '{"messages":[{}]} x' "$URL/v1/chat/completions"
	check_error 400 "trailing comma" -d '{"messages":[{}],}' "$URL/v1/chat/completions"
	check_error 400 "bad escape" -d '{"messages":[{"content":"\q"}]}' "$URL/v1/chat/completions"
	check_error 400 "no messages" -d '{"model":"m"}' "$URL/v1/chat/completions"
	check_error 400 "empty messages" -d '{"messages":[]}' "$URL/v1/chat/completions"
	check_error 400 "messages not an array" -d '{"messages":"hi"}' "$URL/v1/chat/completions"
	check_error 400 "model not a string" -d '{"model":1,"messages":[{}]}' "$URL/v1/chat/completions"
	check_error 400 "stream not a boolean" -d '{"stream":1,"messages":[{}]}' "$URL/v1/chat/completions"
	check_error 400 "max_tokens 0" -d '{"max_tokens":0,"messages":[{}]}' "$URL/v1/chat/completions"
	check_error 400 "a JSON array body" -d '[1,2]' "$URL/v1/chat/completions"
	check_error 400 "empty body" -d '' "$URL/v1/chat/completions"
	check_error 400 "nested 100000 deep" -d "{\"messages\":$(printf '[%.0s' $(seq 100000))" "$URL/v1/chat/completions"
	check_error 400 "embeddings without input" -d '{"model":"m"}' "$URL/v1/embeddings"
	check_error 400 "embeddings empty input" -d '{"input":[]}' "$URL/v1/embeddings"
	check_error 400 "embeddings input a number" -d '{"input":5}' "$URL/v1/embeddings"
	check_error 404 "unknown path" -d '{}' "$URL/v1/completions"
	check_error 405 "GET a POST endpoint" "$URL/v1/chat/completions"
	check_error 411 "chunked request body" -H 'Transfer-Encoding: chunked' -d '{"messages":[{}]}' "$URL/v1/chat/completions"
	check_error 413 "body over --max-body" -H 'Content-Length: 999999999999' -d '{}' "$URL/v1/chat/completions"
	# A broken request line and a header without a colon, on a raw socket.
	exec 3<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'NONSENSE\r\n\r\n' >&3
	IFS= read -r -t 5 line <&3
	exec 3<&-
	[[ "$line" == "HTTP/1.1 400 "* ]] && ok "bad request line -> 400" || fail "bad request line: '$line'"
	out=$(chat "{\"messages\":[$MSG1]}")
	[[ "$out" == *'"chat.completion"'* ]] && ok "alive after bad requests" || fail "dead after bad requests"

	# /stats and /reset-stats.
	stats | py '
for k in ("requests", "completed", "in_service_max", "queued_max", "rejected_429",
          "client_closed_mid_request", "connections_accepted", "open_connections",
          "in_service", "queued", "bad_requests", "fault_429", "fault_500",
          "fault_reset", "fault_truncate", "fault_oversize", "fault_malformed",
          "fault_slow", "chat", "embeddings", "streams", "slot_gaps",
          "slot_gap_us", "late_us"):
    assert isinstance(d[k], int), k
assert d["completed"] == 10, d["completed"]
assert d["in_service_max"] == 1 and d["queued_max"] == 0
assert d["streams"] == 1 and d["embeddings"] == 5
assert d["bad_requests"] >= 20
assert d["open_connections"] == 1 and d["in_service"] == 0
' && ok "stats" || fail "stats"
	curl -s -X POST "$URL/reset-stats" | py 'assert d == {"ok": True}' || fail "reset-stats answer"
	stats | py '
assert d["requests"] == 0 and d["completed"] == 0 and d["bad_requests"] == 0, d
assert d["connections_accepted"] == 1 and d["open_connections"] == 1, d
' && ok "reset-stats" || fail "reset-stats"
	# A slot freed with nobody queued stands idle until the next request:
	# two requests 300 ms apart make one gap of about 300 ms (not the
	# slots idle since before the reset).
	chat "{\"messages\":[$MSG1]}" >/dev/null
	sleep 0.3
	chat "{\"messages\":[$MSG1]}" >/dev/null
	stats | py '
assert d["slot_gaps"] == 1, d
assert 250000 <= d["slot_gap_us"] <= 2000000, d
assert 0 <= d["late_us"] < 2000000, d
' && ok "slot gaps" || fail "slot gaps"
	stop
}

group_concurrency() {
	local i t0 t1 codes

	# 8 at once against a batch of 4. The check waits until the server
	# holds 4 in service and 4 queued (all 8 arrived within the first
	# round's 3 s), so what follows is what the server guarantees then:
	# exactly 4 served at once, the other 4 waited for a slot, two rounds.
	start "$LLM" --llm-ms 3000 --concurrency 4
	t0=$(date +%s%N)
	for i in $(seq 8); do
		bg chat "{\"messages\":[$MSG1]}" -o "$tmp/c$i"
	done
	for i in $(seq 600); do
		stats | py 'assert d["in_service"] == 4 and d["queued"] == 4' \
			2>/dev/null && break
		sleep 0.01
	done
	stats | py '
assert d["in_service_max"] == 4 and d["queued_max"] == 4, d
' && ok "concurrency 4: 4 in service, 4 queued" || fail "concurrency limit"
	waitc
	t1=$(date +%s%N)
	stats | py '
assert d["in_service_max"] == 4 and d["queued_max"] == 4, d
assert d["completed"] == 8, d["completed"]
assert d["in_service"] == 0 and d["queued"] == 0
' && ok "concurrency 4: in_service_max 4, all completed" || fail "concurrency after"
	cat "$tmp"/c* | python3 -c '
import json, sys
q = sorted(json.loads(l)["timings"]["queue_ms"] for l in sys.stdin.read().replace("}{", "}\n{").split("\n"))
assert len(q) == 8
assert q[:4] == [0, 0, 0, 0] and min(q[4:]) > 0, q
' && ok "queue_ms: 4 served at once, the rest waited" || fail "queue_ms"
	[ $(((t1 - t0) / 1000000)) -ge 5990 ] && ok "8 requests took 2 rounds" ||
		fail "8 requests on 4 slots took $(((t1 - t0) / 1000000)) ms"

	stop

	# FIFO: one slot, a second each; answers end in the order the
	# requests arrived (their ids), whatever order the clients started
	# in. (A client that reads its answer over a second late could show
	# it out of order: the margin.)
	start "$LLM" --llm-ms 1000 --concurrency 1
	for i in 1 2 3 4 5; do
		bg timed_chat "$i"
		sleep 0.015
	done
	waitc
	for i in 1 2 3 4 5; do
		echo "$(cat "$tmp/t$i") $(py 'print(d["id"])' <"$tmp/f$i")"
	done | sort -n | awk '{ print $2 }' | tr '\n' ' ' >"$tmp/order"
	python3 -c '
import sys
ids = [int(x.split("-")[1]) for x in open(sys.argv[1]).read().split()]
assert ids == sorted(ids) and len(ids) == 5, ids
' "$tmp/order" && ok "FIFO order" || fail "FIFO order: $(cat "$tmp/order")"
	stop

	# A client gone while in service and while queued: counted, slot back.
	start "$LLM" --llm-ms 2000 --concurrency 1
	bg chat "{\"messages\":[$MSG1]}" --max-time 0.3 -o /dev/null
	sleep 0.1
	chat "{\"messages\":[$MSG1]}" --max-time 0.3 -o /dev/null
	waitc
	sleep 0.2
	stats | py '
assert d["client_closed_mid_request"] == 2, d
assert d["in_service"] == 0 and d["queued"] == 0, d
assert d["in_service_max"] == 1 and d["queued_max"] == 1, d
assert d["open_connections"] == 1, d
' && ok "client closes while in service and queued" || fail "client closed mid request"
	stop

	# Overload 429: 2 slots, 6 requests -> 2 answers, 4 429s with
	# Retry-After. The four are sent once both slots are seen taken, and
	# a service of 5 s keeps them taken however slowly a loaded machine
	# starts the clients (what the server guarantees: a request that finds
	# every slot busy is refused, not how fast clients arrive).
	start "$LLM" --llm-ms 5000 --concurrency 2 --overload 429 --retry-after 1
	for i in 1 2; do
		bg chat "{\"messages\":[$MSG1]}" -D "$tmp/h$i" -o /dev/null
	done
	for i in $(seq 500); do
		[ "$(stat in_service)" = 2 ] && break
		sleep 0.01
	done
	for i in $(seq 3 6); do
		bg chat "{\"messages\":[$MSG1]}" -D "$tmp/h$i" -o /dev/null
	done
	waitc
	codes=$(head -qn1 "$tmp"/h[1-6] | awk '{print $2}' | sort | uniq -c | tr -s ' ' | tr '\n' ';')
	[ "$codes" = " 2 200; 4 429;" ] && ok "overload 429" || fail "overload 429: $codes"
	# Collected, not piped into "grep -q": under pipefail its early exit
	# could fail the pipe and turn a missing header into a pass.
	missing=$(grep -l ' 429 ' "$tmp"/h[1-6] | while read -r f; do
		grep -q '^Retry-After: 1' "$f" && grep -q '^retry-after-ms: 1000' "$f" ||
			echo "no Retry-After in $f"
	done)
	[ -z "$missing" ] && ok "429 with Retry-After: 1, retry-after-ms: 1000" || fail "429 without Retry-After: $missing"
	[ "$(stat rejected_429)" = 4 ] && ok "rejected_429 = 4" || fail "rejected_429 = $(stat rejected_429)"
	stop
}

group_faults() {
	local code rc i

	# 429 with Retry-After in seconds, then as an HTTP-date.
	start "$LLM" --llm-ms 10 --fault-429 1 --retry-after 2
	chat "{\"messages\":[$MSG1]}" -D "$tmp/h" -o "$tmp/b"
	grep -q '^HTTP/1.1 429' "$tmp/h" && grep -q '^Retry-After: 2' "$tmp/h" &&
		grep -q '^retry-after-ms: 2000' "$tmp/h" &&
		py 'assert d["error"]["code"] == "rate_limit_exceeded"' <"$tmp/b" &&
		ok "fault 429, Retry-After seconds" || fail "fault 429: $(cat "$tmp/h")"
	[ "$(stat fault_429)" = 1 ] && [ "$(stat rejected_429)" = 1 ] || fail "fault_429 counter"
	stop
	start "$LLM" --llm-ms 10 --fault-429 1 --retry-after 3 --retry-after-date
	# The date is the server's clock (whole seconds) + 3, read between
	# t0 (before the request) and now: bracketed, however loaded the
	# machine.
	t0=$(date +%s)
	chat "{\"messages\":[$MSG1]}" -D "$tmp/h" -o /dev/null
	python3 - "$tmp/h" "$t0" <<'EOF' && ok "fault 429, Retry-After HTTP-date" || fail "429 date: $(cat "$tmp/h")"
import email.utils, sys, time
h = dict(l.split(": ", 1) for l in open(sys.argv[1]).read().splitlines()[1:] if ": " in l)
t = email.utils.parsedate_to_datetime(h["Retry-After"]).timestamp()
assert h["Retry-After"].endswith(" GMT"), h
assert int(sys.argv[2]) + 3 <= t <= time.time() + 3, (t, sys.argv[2], time.time())
assert h["retry-after-ms"] == "3000"
EOF
	stop

	# 500 then success (--fail-first), and --fault-500.
	start "$LLM" --llm-ms 10 --fail-first 2
	codes=
	for i in 1 2 3 4; do
		codes+=$(chat "{\"messages\":[$MSG1]}" -o "$tmp/b$i" -w '%{http_code} ')
	done
	[ "$codes" = "500 500 200 200 " ] && ok "fail-first 2" || fail "fail-first 2: $codes"
	py 'assert d["error"]["type"] == "server_error"' <"$tmp/b1" || fail "500 body"
	stop
	start "$LLM" --llm-ms 10 --fault-500 1
	code=$(chat "{\"messages\":[$MSG1]}" -o /dev/null -w '%{http_code}')
	[ "$code" = 500 ] && ok "fault 500" || fail "fault 500: $code"
	stop

	# Reset: curl sees "connection reset" (56), also mid-stream.
	start "$LLM" --llm-ms 10 --fault-reset 1
	chat "{\"messages\":[$MSG1]}" -o /dev/null
	rc=$?
	[ $rc = 56 ] && ok "fault reset (curl 56)" || fail "fault reset: curl exit $rc"
	chat "{\"messages\":[$MSG1],\"stream\":true}" -N -o "$tmp/sb"
	rc=$?
	[ $rc = 56 ] && grep -q '"role":"assistant"' "$tmp/sb" && ok "fault reset mid-stream" ||
		fail "fault reset mid-stream: curl exit $rc"
	[ "$(stat fault_reset)" = 2 ] || fail "fault_reset counter"
	stop

	# Truncated: a Content-Length larger than what comes (curl 18).
	start "$LLM" --llm-ms 10 --fault-truncate 1
	chat "{\"messages\":[$MSG1]}" -o "$tmp/b"
	rc=$?
	[ $rc = 18 ] && [ -s "$tmp/b" ] && ok "fault truncate (curl 18)" || fail "fault truncate: curl exit $rc"
	chat "{\"messages\":[$MSG1],\"stream\":true}" -N -o "$tmp/sb"
	rc=$?
	[ $rc = 18 ] && ! grep -q DONE "$tmp/sb" && ok "fault truncate mid-stream" ||
		fail "fault truncate stream: curl exit $rc"
	stop

	# Oversized: a valid body of --oversize-bytes (default 8 MiB).
	start "$LLM" --llm-ms 10 --fault-oversize 1
	chat "{\"messages\":[$MSG1]}" -o "$tmp/b"
	python3 -c '
import json, sys
raw = open(sys.argv[1]).read()
assert len(raw) >= 8 << 20, len(raw)
d = json.loads(raw)
assert len(d["choices"][0]["message"]["content"]) >= (8 << 20) - 4096
' "$tmp/b" && ok "fault oversize (8 MiB, valid JSON)" || fail "fault oversize"
	curl -s -d '{"input":"x"}' "$URL/v1/embeddings" | py '
assert len(d["data"]) > 10000 and len(d["data"][0]["embedding"]) == 8
' && ok "fault oversize embeddings" || fail "fault oversize embeddings"
	# A client that stops reading at a bound closes mid-answer: counted.
	curl -s --max-filesize 100000 -d "{\"messages\":[$MSG1]}" "$URL/v1/chat/completions" -o /dev/null
	rc=$?
	sleep 0.2
	[ $rc = 63 ] && [ "$(stat client_closed_mid_request)" = 1 ] &&
		ok "oversize cut off by the client: counted" ||
		fail "oversize cut off: curl $rc, closed $(stat client_closed_mid_request)"
	stop
	start "$LLM" --llm-ms 10 --fault-oversize 1 --oversize-bytes 100000
	chat "{\"messages\":[$MSG1],\"stream\":true}" -N -o "$tmp/sb"
	python3 - "$tmp/sb" <<'EOF' && ok "fault oversize stream" || fail "fault oversize stream"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]"
c = json.loads(ev[1])["choices"][0]["delta"]["content"]
assert len(c) >= 100000, len(c)
EOF
	stop

	# Malformed: 200 with a non-JSON body, then JSON without "choices".
	start "$LLM" --llm-ms 10 --fault-malformed 1
	code=$(chat "{\"messages\":[$MSG1]}" -o "$tmp/b1" -w '%{http_code}')
	chat "{\"messages\":[$MSG1]}" -o "$tmp/b2"
	[ "$code" = 200 ] && ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$tmp/b1" 2>/dev/null &&
		ok "fault malformed: not JSON" || fail "fault malformed 1: $(cat "$tmp/b1")"
	py 'assert d is not None and "choices" not in d and d["object"] == "chat.completion"' <"$tmp/b2" &&
		ok "fault malformed: no choices" || fail "fault malformed 2"
	chat "{\"messages\":[$MSG1],\"stream\":true}" -N -o "$tmp/sb"
	python3 - "$tmp/sb" <<'EOF' && ok "fault malformed stream event" || fail "fault malformed stream"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
try:
    json.loads(ev[1])
    raise SystemExit("event 1 parsed")
except ValueError:
    pass
EOF
	stop

	# Slow: the body drips; a client with a timeout gives up (and is
	# counted), a patient one gets all of it.
	start "$LLM" --llm-ms 10 --fault-slow 1 --drip-ms 20 --drip-bytes 16
	chat "{\"messages\":[$MSG1]}" --max-time 0.2 -o /dev/null
	rc=$?
	sleep 0.1
	[ $rc = 28 ] && [ "$(stat client_closed_mid_request)" = 1 ] &&
		ok "fault slow: past a 0.2 s timeout, close counted" ||
		fail "fault slow timeout: curl $rc, closed $(stat client_closed_mid_request)"
	t0=$(date +%s%N)
	chat "{\"messages\":[$MSG1]}" -o "$tmp/b"
	t1=$(date +%s%N)
	py 'assert d["choices"][0]["message"]["content"].startswith("reply")' <"$tmp/b" &&
		[ $(((t1 - t0) / 1000000)) -ge 300 ] &&
		ok "fault slow: whole body in $(((t1 - t0) / 1000000)) ms" ||
		fail "fault slow: $(((t1 - t0) / 1000000)) ms"
	stop INT

	# An error event on a 200 stream: some content, then the API's error
	# object, the chunked body ended (curl exits 0), no [DONE]; the same
	# for a stream of tool calls; a non-streamed answer is not touched.
	start "$LLM" --llm-ms 10 --fault-stream-error 1
	chat "{\"messages\":[$MSG1],\"stream\":true}" -N -D "$tmp/sh" -o "$tmp/sb"
	rc=$?
	chat "{\"messages\":[$MSG1],\"stream\":true,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"calc\"}}]}" \
		-N -o "$tmp/sb2"
	rc=$rc$?
	code=$(chat "{\"messages\":[$MSG1]}" -o "$tmp/b" -w '%{http_code}')
	python3 - "$tmp/sh" "$tmp/sb" "$tmp/sb2" <<'EOF' && [ "$rc" = 00 ] && ok "fault stream-error" ||
import json, sys
assert open(sys.argv[1]).read().startswith("HTTP/1.1 200 ")
for f, key in ((sys.argv[2], "content"), (sys.argv[3], "tool_calls")):
    ev = [l[6:] for l in open(f).read().split("\n") if l.startswith("data: ")]
    assert "[DONE]" not in ev, ev
    ch = [json.loads(e) for e in ev]
    err = ch[-1]
    assert err == {"error": {"message": err["error"]["message"], "type": "server_error",
                             "param": None, "code": None}}, err
    body = ch[1:-1]
    assert body and all(key in c["choices"][0]["delta"] for c in body), ch
    assert all(c["choices"][0]["finish_reason"] is None for c in ch[:-1])
EOF
		fail "fault stream-error: curl $rc"
	[ "$code" = 200 ] && py 'assert d["choices"][0]["message"]["content"].startswith("reply")' <"$tmp/b" &&
		ok "fault stream-error: non-streamed answered" || fail "stream-error non-streamed: $code"
	stats | py 'assert d["fault_stream_error"] == 2 and d["completed"] == 1 and d["connections_accepted"] == 4, d' &&
		ok "fault_stream_error counted" || fail "fault_stream_error counter"
	stop

	# Fractions: with --fault-500 0.5 about half fail; same seed, same ones.
	for i in 1 2; do
		start "$LLM" --llm-ms 0 --fault-500 0.5 --fault-429 0.1 --seed 42
		python3 - "$PORT" >"$tmp/frac$i" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
out = []
for i in range(200):
    c.request("POST", "/v1/chat/completions", '{"messages":[{}]}')
    r = c.getresponse()
    r.read()
    out.append(str(r.status))
print(" ".join(out))
EOF
		stop
	done
	python3 - "$tmp/frac1" "$tmp/frac2" <<'EOF' && ok "fault fractions, seeded" || fail "fault fractions"
import sys
a = open(sys.argv[1]).read().split()
b = open(sys.argv[2]).read().split()
assert a == b, "same seed, different faults"
n5, n4 = a.count("500"), a.count("429")
assert 60 <= n5 <= 140 and 5 <= n4 <= 40 and a.count("200") + n5 + n4 == 200, (n5, n4)
EOF
}

group_tool() {
	local line t0 t1 i

	start "$TOOL" --tool-ms 50
	t0=$(date +%s%N)
	exec 3<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'search the web\n' >&3
	IFS= read -r -t 5 line <&3
	t1=$(date +%s%N)
	[ "$line" = "ok search the web" ] && [ $(((t1 - t0) / 1000000)) -ge 45 ] &&
		ok "tool echo after tool_ms" || fail "tool echo: '$line' in $(((t1 - t0) / 1000000)) ms"
	# Several lines on the same connection (keep-alive), in order.
	printf 'one\ntwo\nthree\n' >&3
	for i in one two three; do
		IFS= read -r -t 5 line <&3
		[ "$line" = "ok $i" ] || fail "pipelined: '$line' for $i"
	done
	printf 'STATS\n' >&3
	IFS= read -r -t 5 line <&3
	echo "$line" | py '
assert d["requests"] == 4 and d["completed"] == 4, d
assert d["connections_accepted"] == 1 and d["open_connections"] == 1, d
assert d["in_service"] == 0 and d["in_service_max"] == 1, d
' && ok "tool keep-alive and STATS" || fail "tool stats: $line"
	exec 3<&-

	# A line over 1 KiB: an error, then the server closes.
	line=$(tool_say "$(head -c 2000 /dev/zero | tr '\0' a)" 2)
	[ "$line" = "err line too long" ] && ok "tool line too long" || fail "tool long line: '$line'"
	stop

	# 20 connections at once: all wait together. A call of 3 s (the
	# clients wait 5) overlaps the others however slowly a loaded machine
	# starts them: calls are served concurrently, not one by one.
	start "$TOOL" --tool-ms 3000
	for i in $(seq 20); do
		bg tool_check "x$i"
	done
	waitc || fail "20 parallel tool calls"
	tool_say $'STATS\n' 1 | py 'assert d["in_service_max"] >= 10 and d["requests"] == 20, d' &&
		ok "tool concurrency" || fail "tool concurrency"
	stop

	# A client gone mid-call is counted; RESET-STATS; two threads.
	start "$TOOL" --tool-ms 1000 --threads 2
	exec 3<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'slow tool\n' >&3
	sleep 0.1
	exec 3<&-
	sleep 0.1
	tool_say $'STATS\n' 1 | py 'assert d["client_closed_mid_request"] == 1 and d["in_service"] == 0 and d["threads"] == 2, d' &&
		ok "tool client closed mid-call (2 threads)" || fail "tool client closed"
	line=$(tool_say $'RESET-STATS\nSTATS\n' 2 | tr '\n' ' ')
	[[ "$line" == 'ok RESET-STATS {"requests":0,'* ]] && ok "tool RESET-STATS" || fail "RESET-STATS: $line"
	line=$(tool_say $'two threads\n' 1)
	[ "$line" = "ok two threads" ] && ok "tool --threads 2 echo" || fail "tool threads echo '$line'"
	stop INT
}

# err_shape STATUS CODE PARAM WHAT CURL-ARGS...: the answer must have
# STATUS, an x-request-id, and exactly the API's error body {"error":
# {"message","type","param","code"}} with that code and param (null: JSON
# null). Kept in $tmp/err.N (and $tmp/eb, the last body); err_check checks
# them all in one python run.
nerr=0
err_shape() {
	local want=$1 ecode=$2 param=$3 what=$4
	shift 4
	nerr=$((nerr + 1))
	curl -s -D "$tmp/err.$nerr.h" -o "$tmp/err.$nerr.b" -w '%{http_code}' "$@" >"$tmp/err.$nerr.s"
	printf '%s\t%s\t%s\t%s\t%s\n' "$nerr" "$want" "$ecode" "$param" "$what" >>"$tmp/errs"
	cp "$tmp/err.$nerr.b" "$tmp/eb"
}
err_check() {
	local n
	[ -s "$tmp/errs" ] || return 0
	python3 - "$tmp" <<'EOF'
import json, re, sys
t = sys.argv[1]
bad = 0
for line in open(t + "/errs").read().splitlines():
    n, want, code, param, what = line.split("\t")
    raw = ""
    try:
        status = open("%s/err.%s.s" % (t, n)).read()
        head = open("%s/err.%s.h" % (t, n)).read()
        raw = open("%s/err.%s.b" % (t, n)).read()
        assert status == want, (status, want)
        assert re.search(r"(?im)^x-request-id: req_[0-9a-f]{32}\r?$", head), head
        d = json.loads(raw)
        e = d["error"]
        assert list(d) == ["error"], d
        assert sorted(e) == ["code", "message", "param", "type"], e
        assert isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str), e
        for k, w in (("code", code), ("param", param)):
            assert e[k] == (None if w == "null" else w), (k, e[k], w)
        print("ok: %s -> %s (%s)" % (what, want, code))
    except Exception as x:
        bad += 1
        print("FAIL: %s: %r | %s" % (what, x, raw[:300]), file=sys.stderr)
sys.exit(min(bad, 100))
EOF
	n=$?
	failures=$((failures + n))
	: >"$tmp/errs"
}

U='{"role":"user","content":"hello"}'

# The API's surface: n, embeddings (batch, token arrays, base64,
# dimensions), usage in streams, --models, x-request-id, error bodies.
group_api() {
	local i v

	start "$LLM" --llm-ms 5 --models gpt-mock,emb-mock
	# n = 3: three choices, indexes 0..2, each with finish_reason; the
	# usage counts them all.
	chat "{\"model\":\"gpt-mock\",\"n\":3,\"messages\":[$U]}" | py '
c = d["choices"]
assert [x["index"] for x in c] == [0, 1, 2], c
for x in c:
    assert x["finish_reason"] == "stop", x
    assert x["message"] == {"role": "assistant", "content": "reply 1 to 1 message"}, x
assert d["usage"]["completion_tokens"] == 15, d["usage"]
assert d["usage"]["total_tokens"] == d["usage"]["prompt_tokens"] + 15
' && ok "n=3" || fail "n=3"
	chat "{\"n\":2,\"max_tokens\":2,\"messages\":[$U]}" | py '
assert [(x["index"], x["message"]["content"], x["finish_reason"]) for x in d["choices"]] == \
    [(0, "reply 2", "length"), (1, "reply 2", "length")], d
assert d["usage"]["completion_tokens"] == 4
' && ok "n=2 with max_tokens" || fail "n=2 max_tokens"
	chat "{\"n\":3,\"stream\":true,\"messages\":[$U]}" -N >"$tmp/sb"
	python3 - "$tmp/sb" <<'EOF' && ok "n=3 streamed: a chunk per choice" || fail "n=3 streamed"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]", ev[-1]
ch = [json.loads(e) for e in ev[:-1]]
assert all(len(c["choices"]) == 1 for c in ch)
text, fin = {}, {}
for c in ch:
    x = c["choices"][0]
    text[x["index"]] = text.get(x["index"], "") + (x["delta"].get("content") or "")
    if x["finish_reason"]:
        fin[x["index"]] = x["finish_reason"]
n = ch[0]["id"].split("-")[1]
assert text == {i: "reply %s to 1 message" % n for i in range(3)}, text
assert fin == {0: "stop", 1: "stop", 2: "stop"}, fin
EOF
	err_shape 400 integer_below_min_value n "n=0" -d "{\"n\":0,\"messages\":[$U]}" "$URL/v1/chat/completions"
	err_shape 400 integer_above_max_value n "n=129" -d "{\"n\":129,\"messages\":[$U]}" "$URL/v1/chat/completions"
	err_shape 400 invalid_type n "n a string" -d "{\"n\":\"2\",\"messages\":[$U]}" "$URL/v1/chat/completions"
	chat "{\"n\":128,\"messages\":[$U]}" | py 'assert len(d["choices"]) == 128' &&
		ok "n=128" || fail "n=128"

	# Usage in a stream only when asked, in its own last chunk.
	chat "{\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[$U]}" -N >"$tmp/sb"
	python3 - "$tmp/sb" <<'EOF' && ok "include_usage: its own chunk, choices []" || fail "include_usage"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]", ev[-1]
ch = [json.loads(e) for e in ev[:-1]]
u = ch[-1]
assert u["choices"] == [] and u["object"] == "chat.completion.chunk", u
assert u["id"] == ch[0]["id"] and u["model"] == ch[0]["model"]
assert u["usage"]["completion_tokens"] == 5, u
assert u["usage"]["total_tokens"] == u["usage"]["prompt_tokens"] + 5 > 5, u
for c in ch[:-1]:
    assert "usage" in c and c["usage"] is None, c
assert ch[-2]["choices"][0]["finish_reason"] == "stop"
EOF
	for v in false null; do
		chat "{\"stream\":true,\"stream_options\":{\"include_usage\":$v},\"messages\":[$U]}" -N >"$tmp/sb"
		python3 - "$tmp/sb" <<'EOF' && ok "include_usage $v: no usage" || fail "include_usage $v"
import json, sys
ev = [l[6:] for l in open(sys.argv[1]).read().split("\n") if l.startswith("data: ")]
assert ev[-1] == "[DONE]"
ch = [json.loads(e) for e in ev[:-1]]
assert all("usage" not in c and len(c["choices"]) == 1 for c in ch), ch
EOF
	done
	err_shape 400 null stream_options "stream_options without stream" \
		-d "{\"stream_options\":{\"include_usage\":true},\"messages\":[$U]}" "$URL/v1/chat/completions"
	err_shape 400 invalid_type stream_options "include_usage not a boolean" \
		-d "{\"stream\":true,\"stream_options\":{\"include_usage\":1},\"messages\":[$U]}" "$URL/v1/chat/completions"

	# Embeddings: a batch, an index each; token arrays; base64 is the
	# little-endian float32 of the float answer; dimensions.
	curl -s -d '{"model":"emb-mock","input":["alpha","beta",[1,2,3],"alpha"]}' "$URL/v1/embeddings" >"$tmp/ef"
	curl -s -d '{"model":"emb-mock","input":["alpha","beta",[1,2,3],"alpha"],"encoding_format":"base64"}' \
		"$URL/v1/embeddings" >"$tmp/eb64"
	curl -s -d '{"model":"emb-mock","input":"alpha","encoding_format":"float"}' "$URL/v1/embeddings" >"$tmp/e1"
	curl -s -d '{"model":"emb-mock","input":[1,2,3],"dimensions":20,"encoding_format":"base64"}' \
		"$URL/v1/embeddings" >"$tmp/ed"
	curl -s -d '{"model":"emb-mock","input":[[1,2,3]],"dimensions":20}' "$URL/v1/embeddings" >"$tmp/edf"
	python3 - "$tmp" <<'EOF' && ok "embeddings: batch, tokens, base64 = float32 of float, dimensions" || fail "embeddings api"
import base64, json, struct, sys
t = sys.argv[1]
f, b, one, d, df = (json.load(open(t + "/" + n)) for n in ("ef", "eb64", "e1", "ed", "edf"))
for x in (f, b):
    assert x["object"] == "list" and x["model"] == "emb-mock", x
    assert [e["index"] for e in x["data"]] == [0, 1, 2, 3], x
    assert all(e["object"] == "embedding" for e in x["data"])
    assert x["usage"]["prompt_tokens"] == x["usage"]["total_tokens"] > 0
assert f["usage"] == b["usage"]
def dec(s):
    raw = base64.b64decode(s, validate=True)
    assert len(raw) % 4 == 0
    return list(struct.unpack("<%df" % (len(raw) // 4), raw))
def f32(v):
    return [struct.unpack("<f", struct.pack("<f", x))[0] for x in v]
for ef, eb in zip(f["data"], b["data"]):
    assert isinstance(eb["embedding"], str), eb
    assert len(ef["embedding"]) == 8
    assert dec(eb["embedding"]) == f32(ef["embedding"]), (ef, eb)
v = f["data"]
assert v[0]["embedding"] == v[3]["embedding"] == one["data"][0]["embedding"]
assert v[0]["embedding"] != v[1]["embedding"] != v[2]["embedding"]
dd = dec(d["data"][0]["embedding"])
assert len(dd) == 20 and len(df["data"][0]["embedding"]) == 20, (len(dd),)
assert dd == f32(df["data"][0]["embedding"]), "token array [1,2,3] as one input or in a batch"
assert f32(v[2]["embedding"]) == dd[:8], "the first 8 of 20 dimensions are the 8"
EOF
	err_shape 400 invalid_value encoding_format "encoding_format hex" \
		-d '{"input":"x","encoding_format":"hex"}' "$URL/v1/embeddings"
	err_shape 400 integer_below_min_value dimensions "dimensions 0" \
		-d '{"input":"x","dimensions":0}' "$URL/v1/embeddings"
	err_shape 400 integer_above_max_value dimensions "dimensions 5000" \
		-d '{"input":"x","dimensions":5000}' "$URL/v1/embeddings"
	err_shape 400 invalid_type input "token array with a string" \
		-d '{"input":[1,"a"]}' "$URL/v1/embeddings"
	err_shape 400 invalid_type input "batch with a float token" \
		-d '{"input":[[1,2.5]]}' "$URL/v1/embeddings"
	err_shape 400 invalid_type input "batch with an empty token array" \
		-d '{"input":["a",[]]}' "$URL/v1/embeddings"
	err_shape 400 null input "2049 inputs" \
		-d "{\"input\":[$(printf '"x",%.0s' $(seq 2048))\"x\"]}" "$URL/v1/embeddings"

	# --models: others are 404 model_not_found, for chat and embeddings;
	# no model: the first; /v1/models lists them.
	err_shape 404 model_not_found null "chat, model outside --models" \
		-d "{\"model\":\"gpt-other\",\"messages\":[$U]}" "$URL/v1/chat/completions"
	py 'assert d["error"]["message"] == "The model `gpt-other` does not exist or you do not have access to it.", d' \
		<"$tmp/eb" && ok "model_not_found message" || fail "model_not_found message"
	err_shape 404 model_not_found null "embeddings, model outside --models" \
		-d '{"model":"x","input":"a"}' "$URL/v1/embeddings"
	err_shape 404 model_not_found null "streamed chat, model outside --models" \
		-d "{\"model\":\"x\",\"stream\":true,\"messages\":[$U]}" "$URL/v1/chat/completions"
	chat "{\"messages\":[$U]}" | py 'assert d["model"] == "gpt-mock", d["model"]' &&
		ok "no model: the first of --models" || fail "no model with --models"
	curl -s "$URL/v1/models" | py '
assert [m["id"] for m in d["data"]] == ["gpt-mock", "emb-mock"], d
assert d["object"] == "list" and all(m["object"] == "model" for m in d["data"])
' && ok "/v1/models lists --models" || fail "/v1/models"

	# x-request-id on every answer: 200s, streams, errors; all distinct.
	: >"$tmp/ids"
	for i in 1 2 3; do
		chat "{\"messages\":[$U]}" -D - -o /dev/null >>"$tmp/ids"
	done
	chat "{\"stream\":true,\"messages\":[$U]}" -D - -o /dev/null >>"$tmp/ids"
	curl -s -D - -o /dev/null -d '{"input":"x"}' "$URL/v1/embeddings" >>"$tmp/ids"
	curl -s -D - -o /dev/null "$URL/health" >>"$tmp/ids"
	curl -s -D - -o /dev/null "$URL/stats" >>"$tmp/ids"
	curl -s -D - -o /dev/null -d '{' "$URL/v1/chat/completions" >>"$tmp/ids"
	curl -s -D - -o /dev/null "$URL/nowhere" >>"$tmp/ids"
	python3 - "$tmp/ids" <<'EOF' && ok "x-request-id: on each of 9 answers, distinct" || fail "x-request-id"
import re, sys
heads = [h for h in open(sys.argv[1]).read().split("HTTP/1.1 ") if h.strip()]
assert len(heads) == 9, len(heads)
ids = []
for h in heads:
    m = re.findall(r"(?im)^x-request-id: (\S+)\r?$", h)
    assert len(m) == 1, h
    assert re.fullmatch(r"req_[0-9a-f]{32}", m[0]), m
    ids.append(m[0])
assert len(set(ids)) == 9, ids
EOF

	# Every error in the API's shape.
	err_shape 400 null null "not JSON" -d '{"messages": [' "$URL/v1/chat/completions"
	err_shape 400 null messages "no messages" -d '{"model":"gpt-mock"}' "$URL/v1/chat/completions"
	err_shape 400 null messages "empty messages" -d '{"messages":[]}' "$URL/v1/chat/completions"
	err_shape 400 invalid_type model "model a number" -d "{\"model\":1,\"messages\":[$U]}" "$URL/v1/chat/completions"
	err_shape 400 null max_tokens "max_tokens 0" -d "{\"max_tokens\":0,\"messages\":[$U]}" "$URL/v1/chat/completions"
	err_shape 400 null input "embeddings without input" -d '{}' "$URL/v1/embeddings"
	err_shape 404 unknown_url null "unknown path" -d '{}' "$URL/v1/completions"
	err_shape 405 null null "GET a POST endpoint" "$URL/v1/chat/completions"
	err_shape 405 null null "POST /stats" -X POST "$URL/stats"
	err_shape 411 null null "chunked request body" -H 'Transfer-Encoding: chunked' -d '{}' "$URL/v1/chat/completions"
	err_shape 413 null null "body over --max-body" -H 'Content-Length: 999999999999' -d '{}' "$URL/v1/chat/completions"
	err_shape 431 null null "headers over 16 KiB" -H "X-Big: $(head -c 17000 /dev/zero | tr '\0' a)" "$URL/health"
	stop
	start "$LLM" --llm-ms 5 --fault-429 1
	err_shape 429 rate_limit_exceeded null "fault 429" -d "{\"messages\":[$U]}" "$URL/v1/chat/completions"
	stop
	start "$LLM" --llm-ms 5 --fail-first 1
	err_shape 500 null null "fail-first 500" -d "{\"messages\":[$U]}" "$URL/v1/chat/completions"
	py 'assert d["error"]["type"] == "server_error"' <"$tmp/eb" || fail "500 type"
	stop
	err_check

	# Without --models any model is served.
	start "$LLM" --llm-ms 5
	chat "{\"model\":\"anything-at-all\",\"messages\":[$U]}" | py 'assert d["model"] == "anything-at-all"' &&
		ok "no --models: any model" || fail "no --models: any model"
	curl -s -d '{"model":"whatever","input":"x"}' "$URL/v1/embeddings" | py 'assert d["model"] == "whatever"' &&
		ok "no --models: any embeddings model" || fail "no --models embeddings"
	stop
}

# Tool calls by the rule of servers/README.md: tests/servers/llm_tools.py.
group_toolcalls() {
	start "$LLM" --llm-ms 2
	python3 "$here/llm_tools.py" "$URL" || fail "tool calls (above)"
	stats | py 'assert d["tool_calls"] > 40 and d["bad_requests"] == 6, d' &&
		ok "stats: tool_calls" || fail "stats tool_calls"
	stop
}

# The official OpenAI Node SDK (tests/servers/sdk/package.json, pinned by
# its package-lock.json) against llm-server, installed once into
# SDK_CACHE (the 4th argument: a folder of the build tree). Skips (77)
# where node or npm is missing or npm cannot install it (offline).
group_sdk() {
	local cache=${4:-} want have
	[ -n "$cache" ] || { echo "sdk: no cache folder given (4th argument)" >&2; exit 2; }
	command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
		{ echo "SKIP: no node or npm: the OpenAI SDK check needs them"; exit 77; }
	mkdir -p "$cache" || exit 1
	want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/openai"]["version"])' \
		"$here/sdk/package-lock.json")
	have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
		"$cache/node_modules/openai/package.json" 2>/dev/null)
	if [ "$have" != "$want" ] || ! cmp -s "$here/sdk/package-lock.json" "$cache/package-lock.json"; then
		cp "$here/sdk/package.json" "$here/sdk/package-lock.json" "$cache/" || exit 1
		if ! (cd "$cache" && timeout 120 npm ci --ignore-scripts --no-audit --no-fund \
			--fetch-retries=1 --fetch-timeout=20000 >npm.log 2>&1); then
			echo "SKIP: npm could not install openai@$want into $cache (offline?):"
			tail -5 "$cache/npm.log"
			exit 77
		fi
	fi
	cp "$here/sdk/check.mjs" "$cache/" || exit 1
	echo "openai (Node SDK) $want, node $(node --version)"
	start "$LLM" --llm-ms 5 --models gpt-mock,emb-mock
	timeout 60 node "$cache/check.mjs" "$URL/v1" || fail "the OpenAI SDK (above)"
	stop
	start "$LLM" --llm-ms 5 --fault-stream-error 1
	timeout 60 node "$cache/check.mjs" "$URL/v1" stream-error || fail "the OpenAI SDK, stream error"
	stop
}

case "$group" in
basic | concurrency | faults | tool | api | toolcalls) "group_$group" ;;
sdk) group_sdk "$@" ;;
*)
	echo "unknown group $group" >&2
	exit 2
	;;
esac
if [ "$failures" -ne 0 ]; then
	echo "$failures check(s) failed" >&2
	exit 1
fi
echo "all $group checks passed"
exit 0
