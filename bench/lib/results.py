"""Parse and check the RESULT lines that myriad-bench and the peers print.

The format is docs/bench.md's:

    RESULT workload=<name> workers=<W> wall_s=<s> tasks=<n> peak_rss_kb=<kb> <extra keys>

or, from a runner that cannot express a workload:

    RESULT workload=<name> unsupported=1

The per-workload tables below (extra keys, headline figure) are the one place
to edit when a workload is added; bench/compare reads them.
Python 3 standard library only.
"""

import math
import re

# Keys every (supported) RESULT line carries besides `workload`.
REQUIRED_KEYS = ("workers", "wall_s", "tasks", "peak_rss_kb")

# Per workload: the extra keys of docs/bench.md, which of them are not numbers,
# the headline figure bench/compare reports ("higher" or "lower" is
# better), and ("also") further figures it shows in a second table.
WORKLOADS = {
    "spawn": {"extra": ("tasks_per_s", "ns_per_task"),
              "headline": "tasks_per_s", "better": "higher"},
    "chain": {"extra": ("tasks_per_s",),
              "headline": "tasks_per_s", "better": "higher"},
    "fib": {"extra": ("result", "tasks_per_s"),
            "headline": "tasks_per_s", "better": "higher"},
    "yield": {"extra": ("switches_per_s",),
              "headline": "switches_per_s", "better": "higher"},
    "pingpong": {"extra": ("msgs_per_s",),
                 "headline": "msgs_per_s", "better": "higher"},
    "park": {"extra": ("alive_max", "bytes_per_task", "spawn_s", "late_ms", "minflt"),
             "headline": "bytes_per_task", "better": "lower"},
    "echo": {"extra": ("msgs_per_s", "p99_us"),
             "headline": "msgs_per_s", "better": "higher"},
    "agents": {"extra": ("steps_per_s", "cpu_s_per_step", "p50_ms", "p99_ms"),
               "headline": "steps_per_s", "better": "higher",
               # Shown beside the headline by bench/compare (a second table):
               # key -> which way is better. bound_frac = steps_per_s / the
               # LLM server's bound (llm_concurrency / llm_ms); optional.
               "also": (("bound_frac", "higher"), ("cpu_s_per_step", "lower"),
                        ("p50_ms", "lower"), ("p99_ms", "lower"))},
    # p99_us: the latency of a unit of work (myriad-bench and the peers: a
    # fib(n - 12) sub-job, from its first step to its result); p50_us the
    # same, optional.
    "noisy": {"extra": ("policy", "tasks_per_s", "p99_us"), "text": ("policy",),
              "headline": "tasks_per_s", "better": "higher",
              "also": (("p99_us", "lower"), ("p50_us", "lower"))},
}

# Keys whose value must be a whole number (when present).
INTEGER_KEYS = ("workers", "tasks", "peak_rss_kb", "result", "alive_max", "minflt")

_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_INT_RE = re.compile(r"^-?[0-9]+$")
_FLOAT_RE = re.compile(r"^-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def _convert(value):
    """int or float for a number, the string itself otherwise."""
    if _INT_RE.match(value):
        return int(value)
    if _FLOAT_RE.match(value):
        f = float(value)
        if math.isfinite(f):
            return f
    return value


def parse_result_line(line):
    """Parse one RESULT line into a dict (values as int/float where they are
    numbers, strings otherwise). Raises ValueError with a reason when the
    line is not a well-formed RESULT line. Keys are not checked against the
    workload here: see validate()."""
    if not isinstance(line, str):
        raise ValueError("not a string: %r" % (line,))
    text = line.rstrip("\r\n")
    if not text.strip():
        raise ValueError("empty line")
    if not text.startswith("RESULT"):
        if "RESULT" in text:
            raise ValueError("junk before RESULT: %r" % text[:text.index("RESULT")])
        raise ValueError("not a RESULT line: %r" % text[:60])
    tokens = text.split()
    if tokens[0] != "RESULT":
        raise ValueError("no space after RESULT: %r" % tokens[0])
    if len(tokens) < 2:
        raise ValueError("RESULT line with no key=value pairs")
    record = {}
    for i, tok in enumerate(tokens[1:]):
        if "=" not in tok:
            raise ValueError("token %r is not key=value" % tok)
        key, value = tok.split("=", 1)
        if not _KEY_RE.match(key):
            raise ValueError("bad key %r" % key)
        if value == "":
            raise ValueError("empty value for key %r" % key)
        if key in record:
            raise ValueError("duplicate key %r" % key)
        if i == 0 and key != "workload":
            raise ValueError("first key is %r, expected workload" % key)
        record[key] = _convert(value)
    return record


def is_unsupported(record):
    return record.get("unsupported") == 1


def validate(record):
    """Check a parsed record against docs/bench.md: known workload, the required
    keys and the workload's extra keys present, numbers where numbers are
    due. Returns the record; raises ValueError with a reason otherwise.
    Keys beyond those named are allowed (runners may add detail)."""
    if "workload" not in record:
        raise ValueError("missing key 'workload'")
    name = record["workload"]
    if not isinstance(name, str) or name not in WORKLOADS:
        raise ValueError("unknown workload %r" % (name,))
    if "unsupported" in record:
        if record["unsupported"] != 1:
            raise ValueError("unsupported=%r, expected 1" % (record["unsupported"],))
        return record
    spec = WORKLOADS[name]
    text_keys = spec.get("text", ())
    for key in REQUIRED_KEYS + tuple(spec["extra"]):
        if key not in record:
            raise ValueError("%s: missing key %r" % (name, key))
    for key, value in record.items():
        if key == "workload":
            continue
        if key in text_keys:
            if not isinstance(value, str):
                raise ValueError("%s: %s=%r should be a name" % (name, key, value))
            continue
        if isinstance(value, str):
            if key in REQUIRED_KEYS or key in spec["extra"]:
                raise ValueError("%s: %s=%r is not a number" % (name, key, value))
            continue  # an additional key: free form
        if key in INTEGER_KEYS and not isinstance(value, int):
            raise ValueError("%s: %s=%r is not a whole number" % (name, key, value))
        if value < 0 and key != "late_ms":
            raise ValueError("%s: %s=%r is negative" % (name, key, value))
    if record["workers"] < 1:
        raise ValueError("%s: workers=%r, expected >= 1" % (name, record["workers"]))
    return record


def parse_and_validate(line):
    return validate(parse_result_line(line))


def result_lines(text):
    """The lines of a runner's stdout that are (or try to be) RESULT lines."""
    return [l for l in text.splitlines() if "RESULT" in l]


def headline(record):
    """(key, value, better) of the record's headline figure."""
    spec = WORKLOADS[record["workload"]]
    return spec["headline"], record.get(spec["headline"]), spec["better"]
