#!/usr/bin/env python3
# tests/servers/llm_tools.py: llm-server's tool-call rule (servers/README.md)
# over HTTP, non-streamed and streamed, field by field.
#   python3 tests/servers/llm_tools.py URL
# URL: a server started with --llm-ms small. Prints "ok: ..." per check and
# "FAIL: ..." for each failed one; exits 1 if any failed.
import http.client
import json
import re
import sys
import urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
failures = 0
CALL_ID = re.compile(r"call_[0-9a-f]{24}")


def post(body):
    conn.request("POST", "/v1/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read().decode()


def chat(body):
    status, raw = post(body)
    assert status == 200, (status, raw)
    return json.loads(raw)


def stream(body):
    status, raw = post(dict(body, stream=True))
    assert status == 200, (status, raw)
    ev = [l[6:] for l in raw.split("\n") if l.startswith("data: ")]
    assert ev[-1] == "[DONE]", ev[-1]
    return [json.loads(e) for e in ev[:-1]]


def check(what, fn):
    global failures
    try:
        fn()
        print("ok:", what)
    except Exception as e:  # an assertion, a KeyError: the check failed
        failures += 1
        print("FAIL: %s: %r" % (what, e), file=sys.stderr)


def fn(name, props=None, required=None):
    par = {"type": "object", "properties": props or {}}
    if required is not None:
        par["required"] = required
    return {"type": "function",
            "function": {"name": name, "description": name, "parameters": par}}


CALC = fn("calc", {"expression": {"type": "string"}}, ["expression"])
LOOKUP = fn("lookup", {"q": {"type": "string"}, "k": {"type": "integer"}})
WEATHER = fn("weather", {"city": {"type": "string"}}, ["city"])
TOOLS = [CALC, LOOKUP, WEATHER]


def user(text):
    return [{"role": "system", "content": "be brief"},
            {"role": "user", "content": text}]


def calls(d, choice=0):
    """[(name, arguments)] of a choice; checks the message's shape."""
    c = d["choices"][choice]
    m = c["message"]
    assert c["finish_reason"] == "tool_calls", c
    assert m["role"] == "assistant" and m["content"] is None, m
    out = []
    for t in m["tool_calls"]:
        assert sorted(t) == ["function", "id", "type"], t
        assert t["type"] == "function" and CALL_ID.fullmatch(t["id"]), t
        assert sorted(t["function"]) == ["arguments", "name"], t
        assert isinstance(t["function"]["arguments"], str)
        out.append((t["function"]["name"], t["function"]["arguments"]))
    return out


def usage_ok(d, n=1):
    u = d["usage"]
    want = n * sum(3 + len(a.encode()) // 4 for _, a in calls(d))
    assert u["completion_tokens"] == want, (u, want)
    assert u["total_tokens"] == u["prompt_tokens"] + want


def t_one():
    d = chat({"model": "m", "messages": user('calc {"expression": "6*7"}'), "tools": TOOLS})
    assert calls(d) == [("calc", '{"expression":"6*7"}')], calls(d)
    assert d["object"] == "chat.completion" and d["model"] == "m"
    usage_ok(d)


def t_several():
    text = ('first lookup {"q": "myriad", "k": 3} then calc  {"expression":"1+1"}, '
            'and lookup{"q":"é \\"quoted\\""} again; notcalc {"expression":"x"}')
    d = chat({"messages": user(text), "tools": TOOLS})
    assert calls(d) == [("lookup", '{"q":"myriad","k":3}'),
                        ("calc", '{"expression":"1+1"}'),
                        ("lookup", '{"q":"é \\"quoted\\""}')], calls(d)
    ids = [t["id"] for t in d["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 3, ids
    usage_ok(d)


def t_substring():
    # no `name {...}`: every tool named anywhere, in tools order, with
    # arguments from its schema
    d = chat({"messages": user("ask the weather or a lookup"), "tools": TOOLS})
    assert calls(d) == [("lookup", '{"q":"x","k":1}'),
                        ("weather", '{"city":"x"}')], calls(d)


def t_none_named():
    d = chat({"messages": user("hello there"), "tools": TOOLS})
    assert calls(d) == [("calc", '{"expression":"x"}')], calls(d)


def t_schema():
    t = fn("mk", {"s": {"type": "string"}, "i": {"type": "integer"},
                  "f": {"type": "number"}, "b": {"type": "boolean"},
                  "a": {"type": "array", "items": {"type": "string"}},
                  "o": {"type": "object"}, "opt": {"type": "string"}},
           ["s", "i", "f", "b", "a", "o"])
    d = chat({"messages": user("make it"), "tools": [t]})
    assert calls(d) == [("mk", '{"s":"x","i":1,"f":1.0,"b":true,"a":[],"o":{}}')], calls(d)
    t2 = fn("all", {"x": {"type": ["string", "null"]}, "y": {"type": "integer"}})
    d = chat({"messages": user("x"), "tools": [t2]})
    assert calls(d) == [("all", '{"x":"x","y":1}')], calls(d)
    t3 = {"type": "function", "function": {"name": "bare"}}
    d = chat({"messages": user("x"), "tools": [t3]})
    assert calls(d) == [("bare", "{}")], calls(d)


def t_forced():
    text = 'calc {"expression":"2+2"} and lookup {"q":"z"} and lookup {"q":"w"}'
    choice = {"type": "function", "function": {"name": "lookup"}}
    d = chat({"messages": user(text), "tools": TOOLS, "tool_choice": choice})
    assert calls(d) == [("lookup", '{"q":"z"}')], calls(d)
    choice = {"type": "function", "function": {"name": "weather"}}
    d = chat({"messages": user(text), "tools": TOOLS, "tool_choice": choice})
    assert calls(d) == [("weather", '{"city":"x"}')], calls(d)
    for tc in ("auto", "required"):
        d = chat({"messages": user(text), "tools": TOOLS, "tool_choice": tc})
        assert [n for n, _ in calls(d)] == ["calc", "lookup", "lookup"], (tc, calls(d))


def t_choice_none():
    d = chat({"messages": user('calc {"expression":"1"}'), "tools": TOOLS, "tool_choice": "none"})
    c = d["choices"][0]
    assert c["finish_reason"] == "stop" and "tool_calls" not in c["message"], c
    assert c["message"]["content"].startswith("reply "), c


def t_parallel_false():
    text = 'lookup {"q":"a"} calc {"expression":"3"}'
    d = chat({"messages": user(text), "tools": TOOLS, "parallel_tool_calls": False})
    assert calls(d) == [("lookup", '{"q":"a"}')], calls(d)
    d = chat({"messages": user(text), "tools": TOOLS, "parallel_tool_calls": True})
    assert len(calls(d)) == 2


def t_final():
    first = chat({"messages": user('calc {"expression":"6*7"} lookup {"q":"x"}'), "tools": TOOLS})
    msg = first["choices"][0]["message"]
    msgs = user("old question") + [
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "old", "content": "stale"},
        {"role": "user", "content": 'calc {"expression":"6*7"} lookup {"q":"x"}'},
        msg,
        {"role": "tool", "tool_call_id": msg["tool_calls"][0]["id"], "content": "42"},
        {"role": "tool", "tool_call_id": msg["tool_calls"][1]["id"],
         "content": [{"type": "text", "text": "a \"quoted\" result"}]},
        {"role": "tool", "tool_call_id": "long", "content": "y" * 300},
    ]
    d = chat({"messages": msgs, "tools": TOOLS})
    c = d["choices"][0]
    want = 'tool results: 42; a "quoted" result; ' + "y" * 200
    assert c["finish_reason"] == "stop" and c["message"]["content"] == want, c
    assert "tool_calls" not in c["message"]
    assert d["usage"]["completion_tokens"] == len(want.split(" ")), d["usage"]
    # cut at max_tokens like any text
    d = chat({"messages": msgs, "tools": TOOLS, "max_tokens": 3})
    c = d["choices"][0]
    assert c["message"]["content"] == "tool results: 42;" and c["finish_reason"] == "length", c
    # 200 bytes, back to a character's start
    d = chat({"messages": user("q") + [{"role": "tool", "tool_call_id": "u",
                                         "content": "a" + "é" * 150}], "tools": TOOLS})
    got = d["choices"][0]["message"]["content"]
    assert got == "tool results: a" + "é" * 99, got


def t_n():
    d = chat({"n": 3, "messages": user('calc {"expression":"1"} lookup {"q":"2"}'), "tools": TOOLS})
    per = [calls(d, i) for i in range(3)]
    assert per[0] == per[1] == per[2] == [("calc", '{"expression":"1"}'), ("lookup", '{"q":"2"}')], per
    ids = [t["id"] for c in d["choices"] for t in c["message"]["tool_calls"]]
    assert len(set(ids)) == 6, ids
    assert [c["index"] for c in d["choices"]] == [0, 1, 2]
    usage_ok(d, 3)


def t_ids_unique():
    ids = set()
    for _ in range(5):
        d = chat({"messages": user("calc"), "tools": TOOLS})
        ids.add(d["choices"][0]["message"]["tool_calls"][0]["id"])
    assert len(ids) == 5, ids


def t_errors():
    for body, param in (
            ({"messages": user("x"), "tools": TOOLS,
              "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
            ({"messages": user("x"), "tool_choice": "auto"}, "tool_choice"),
            ({"messages": user("x"), "tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
            ({"messages": user("x"), "parallel_tool_calls": False}, "parallel_tool_calls"),
            ({"messages": user("x"), "tools": [{"type": "function"}]}, "tools"),
            ({"messages": user("x"), "tools": {"calc": 1}}, "tools")):
        status, raw = post(body)
        e = json.loads(raw)["error"]
        assert status == 400 and e["param"] == param and e["type"] == "invalid_request_error", (body, raw)
        assert sorted(e) == ["code", "message", "param", "type"], e
    # an empty tools list is no tools
    d = chat({"messages": user("calc"), "tools": []})
    assert d["choices"][0]["message"]["content"].startswith("reply "), d


def reassemble(chunks):
    """Per choice: the tool calls rebuilt from the deltas as an SDK does,
    with the stream's rule-3 shape checked on the way."""
    out = {}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    for c in chunks:
        assert len(c["choices"]) == 1, c
        ch = c["choices"][0]
        st = out.setdefault(ch["index"], {"calls": [], "fin": None, "first": None})
        delta = ch["delta"]
        if st["first"] is None:
            st["first"] = delta
            assert delta == {"role": "assistant", "content": None}, delta
            continue
        assert st["fin"] is None, "a chunk after finish_reason"
        if ch["finish_reason"]:
            assert delta == {}, delta
            st["fin"] = ch["finish_reason"]
            continue
        tc = delta["tool_calls"]
        assert list(delta) == ["tool_calls"] and len(tc) == 1, delta
        tc = tc[0]
        if "id" in tc:
            assert tc["index"] == len(st["calls"]), tc
            assert tc["type"] == "function" and CALL_ID.fullmatch(tc["id"]), tc
            assert tc["function"]["arguments"] == "", tc
            st["calls"].append([tc["function"]["name"], "", tc["id"]])
        else:
            assert sorted(tc) == ["function", "index"] and list(tc["function"]) == ["arguments"], tc
            assert tc["index"] == len(st["calls"]) - 1, tc
            piece = tc["function"]["arguments"]
            assert 0 < len(piece.encode()) <= 7, piece
            st["calls"][-1][1] += piece
    return out


def t_stream_vs_plain():
    for body in ({"messages": user('lookup {"q": "myriad", "k": 3} then calc {"expression":"1+1"} '
                                   'and lookup {"q":"é ü ñ \\"long\\" text"}'), "tools": TOOLS},
                 {"messages": user("weather?"), "tools": TOOLS},
                 {"messages": user('calc {"expression":"9"}'), "tools": TOOLS,
                  "tool_choice": {"type": "function", "function": {"name": "lookup"}}},
                 {"messages": user('lookup {"q":"a"} calc {"expression":"3"}'), "tools": TOOLS,
                  "parallel_tool_calls": False},
                 {"messages": user("calc {} and lookup {}"), "tools": TOOLS, "n": 2}):
        plain = chat(body)
        got = reassemble(stream(body))
        n = body.get("n", 1)
        assert sorted(got) == list(range(n)), got
        for i in range(n):
            assert got[i]["fin"] == "tool_calls", got[i]
            assert [(a, b) for a, b, _ in got[i]["calls"]] == calls(plain, i), (got[i], calls(plain, i))
        if n > 1:
            ids = [x[2] for i in range(n) for x in got[i]["calls"]]
            assert len(set(ids)) == len(ids), ids


def t_stream_usage():
    body = {"messages": user('calc {"expression":"6*7"}'), "tools": TOOLS,
            "stream_options": {"include_usage": True}}
    plain = chat(dict(body, stream_options=None))
    ch = stream(body)
    assert ch[-1]["choices"] == [] and ch[-1]["usage"]["completion_tokens"] == \
        plain["usage"]["completion_tokens"], (ch[-1], plain["usage"])
    assert all(c["usage"] is None for c in ch[:-1])
    got = reassemble(ch[:-1])
    assert [(a, b) for a, b, _ in got[0]["calls"]] == calls(plain)


def t_stream_final():
    msgs = user("q") + [{"role": "assistant", "content": None},
                        {"role": "tool", "tool_call_id": "a", "content": "42 and more"},
                        {"role": "tool", "tool_call_id": "b", "content": "sunny"}]
    plain = chat({"messages": msgs, "tools": TOOLS})
    ch = stream({"messages": msgs, "tools": TOOLS})
    assert ch[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}, ch[0]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in ch)
    assert text == plain["choices"][0]["message"]["content"] == "tool results: 42 and more; sunny", text
    assert ch[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("tool_calls" not in c["choices"][0]["delta"] for c in ch)


for name, f in (("one call", t_one), ("several calls in text order", t_several),
                ("named without arguments: tools order, schema arguments", t_substring),
                ("none named: the first tool", t_none_named),
                ("arguments built from the schema", t_schema),
                ("tool_choice forces one function; auto, required", t_forced),
                ("tool_choice none: a plain answer", t_choice_none),
                ("parallel_tool_calls false: the first call only", t_parallel_false),
                ("final answer after tool messages", t_final),
                ("n=3: the same calls, ids per choice", t_n),
                ("call ids unique across requests", t_ids_unique),
                ("400s of tools and tool_choice", t_errors),
                ("streamed calls reassemble to the plain answer", t_stream_vs_plain),
                ("streamed calls with include_usage", t_stream_usage),
                ("streamed final answer", t_stream_final)):
    check(name, f)
sys.exit(1 if failures else 0)
