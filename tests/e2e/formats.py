"""What the export tests share: the per-function numbers `swprof analyze --format json` implies
(what pprof's -top and speedscope's sandwich view show: flat = self time of every node of the
function, cum = total time counting recursion once), the Trace Event format's rules, and readers
of go tool pprof's text output.
"""
import os
import re
import shutil
import subprocess

from harness import expect

GO = shutil.which("go") or "/usr/lib/go/bin/go"


def per_function(roots, unique=False):
    """{function: (flat_ms, cum_ms)} from analyze's JSON tree. With `unique`, only the names that
    belong to one function (one file): viewers that list functions by name show those unambiguously."""
    flat, cum, files = {}, {}, {}
    stack = [(r, frozenset()) for r in roots]
    while stack:  # iterative: deep recursion makes deep trees
        node, open_names = stack.pop()
        name = node["function"]
        flat[name] = flat.get(name, 0.0) + node["self_ms"]
        files.setdefault(name, set()).add(node["file"])
        if name not in open_names:
            cum[name] = cum.get(name, 0.0) + node["total_ms"]
        stack.extend((c, open_names | {name}) for c in node["children"])
    return {name: (flat[name], cum[name]) for name in flat if not unique or len(files[name]) == 1}


def total_ms(roots, key="total_ms"):
    return sum(r[key] for r in roots)


# --- Chrome's Trace Event format ----------------------------------------------------------------

def trace_slices(doc):
    """The trace's duration events as complete ones: each begin ("B") and its end ("E") become one
    dict like an "X" event, with its "dur", where the begin was; metadata as it is. An end must close
    the innermost open event of its track, by name (as speedscope's importer requires)."""
    out, open_events = [], {}
    for e in doc["traceEvents"]:
        if e.get("ph") == "B":
            x = dict(e, ph="X")
            open_events.setdefault(e.get("tid"), []).append(x)
            out.append(x)
        elif e.get("ph") == "E":
            stack = open_events.get(e.get("tid")) or []
            expect(stack, "an end with no open event on its track: %r" % e)
            begun = stack.pop()
            expect(begun["name"] == e.get("name"), "%r ends %r, the innermost open event of its track" % (e, begun))
            begun["dur"] = e["ts"] - begun["ts"]
        else:
            out.append(e)
    expect(not any(open_events.values()), "every begun event ends: %s" % {t: len(v) for t, v in open_events.items() if v})
    return out


def check_trace_format(doc):
    """The Trace Event format's rules for what swprof writes; returns {tid: [events in order]}, each
    begin and end made one complete event (trace_slices)."""
    expect(isinstance(doc, dict) and isinstance(doc.get("traceEvents"), list), "an object with a traceEvents array")
    expect(doc.get("displayTimeUnit") in ("ms", "ns"), "displayTimeUnit: %r" % doc.get("displayTimeUnit"))
    for e in doc["traceEvents"]:
        expect(e.get("ph") in ("M", "B", "E"), "only metadata, begin and end events: %r" % e)
        expect(isinstance(e.get("pid"), int) and isinstance(e.get("tid"), int), "integer pid/tid: %r" % e)
        expect(isinstance(e.get("name"), str), "a name: %r" % e)
        if e["ph"] != "M":
            expect(isinstance(e.get("ts"), (int, float)) and e["ts"] >= 0, "ts: %r" % e)
    named, tracks = set(), {}
    for e in trace_slices(doc):
        if e["ph"] == "M":
            expect(e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str), "metadata %r" % e)
            if e["name"] == "thread_name":
                named.add(e["tid"])
            continue
        expect(isinstance(e.get("dur"), (int, float)) and e["dur"] > 0, "dur: %r" % e)
        tracks.setdefault(e["tid"], []).append(e)
    for tid, events in tracks.items():
        expect(tid in named, "track %d has no thread_name" % tid)
        open_ends = []  # the enclosing events' ends
        last_ts = -1
        for e in events:
            expect(e["ts"] >= last_ts, "track %d: ts goes back at %r" % (tid, e))
            last_ts = e["ts"]
            while open_ends and open_ends[-1] <= e["ts"]:
                open_ends.pop()
            expect(not open_ends or e["ts"] + e["dur"] <= open_ends[-1],
                   "track %d: %r overlaps its enclosing event (ends %s)" % (tid, e, open_ends[-1:]))
            open_ends.append(e["ts"] + e["dur"])
    print("ok: trace format: %d tracks, each named, in time order and properly nested (%d events)"
          % (len(tracks), sum(len(v) for v in tracks.values())))
    return tracks


# --- go tool pprof ------------------------------------------------------------------------------

def go_missing():
    if os.access(GO, os.X_OK):
        return None
    return "go not installed (apt-get install golang-go): go tool pprof is the pprof consumer"


def pprof(*args, timeout=120):
    env = dict(os.environ, HOME=os.environ.get("HOME", "/root"), GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    proc = subprocess.run([GO, "tool", "pprof"] + list(args), capture_output=True, text=True, timeout=timeout, env=env)
    expect(proc.returncode == 0, "go tool pprof %s failed (%d): %s" % (" ".join(args), proc.returncode, proc.stderr[-2000:]))
    return proc


UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3, "": 0.0}
VALUE = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|)"
TOP_ROW = re.compile(r"^\s*" + VALUE + r"\s+\S+%\s+\S+%\s+" + VALUE + r"\s+\S+%\s+(.*)$")


def ms_of(number, unit):
    value = float(number)
    return value * UNITS_MS[unit] if unit else value  # a bare number: 0, or already in -unit's scale


def top(path, sample_index):
    """go tool pprof -top in milliseconds: ({function: (flat_ms, cum_ms)}, total_ms, the output)."""
    out = pprof("-top", "-sample_index=" + sample_index, "-unit=ms", "-nodefraction=0", "-nodecount=100000", path).stdout
    rows, total = {}, None
    m = re.search(r"of " + VALUE + r" total", out)
    if m:
        total = ms_of(*m.groups())
    for line in out.splitlines():
        r = TOP_ROW.match(line)
        if r:
            rows[r.group(5)] = (ms_of(r.group(1), r.group(2)), ms_of(r.group(3), r.group(4)))
    expect(total is not None, "no total in go tool pprof -top's output:\n" + out)
    return rows, total, out


RAW_SAMPLE = re.compile(r"^\s+(-?\d+(?:\s+-?\d+)*):((?:\s+\d+)*)\s*$")


def raw(path):
    """go tool pprof -raw: {"types": [...], "samples": [{"values", "locations", "labels"}], "locations": {id: text}}."""
    out = pprof("-raw", path).stdout
    lines = out.splitlines()
    expect("Samples:" in lines, "no Samples: section in -raw output:\n" + out[:2000])
    i = lines.index("Samples:") + 1
    types = lines[i].replace("[dflt]", "").split()
    samples, locations = [], {}
    i += 1
    while i < len(lines) and not lines[i].startswith("Locations"):
        m = RAW_SAMPLE.match(lines[i])
        if m:
            samples.append({"values": [int(v) for v in m.group(1).split()],
                            "locations": [int(v) for v in m.group(2).split()], "labels": {}})
        elif samples and lines[i].strip():
            # label lines: "key:[value]" pairs (strings) or "key:[123]" (numbers)
            for key, value in re.findall(r"(\S+?):\[(.*?)\]", lines[i]):
                samples[-1]["labels"][key] = value
        i += 1
    i += 1
    while i < len(lines) and not lines[i].startswith("Mappings"):
        m = re.match(r"^\s+(\d+): (.*)$", lines[i])
        if m:
            locations[int(m.group(1))] = m.group(2)
        i += 1
    return {"types": types, "samples": samples, "locations": locations, "text": out}


def expect_top_matches(rows, expected, what, count=8, tolerance_ms=0.05):
    """Every one of pprof's `count` largest functions by flat time has the flat and cum values analyze
    implies, within pprof's printed rounding (two decimals of a millisecond)."""
    largest = sorted(rows, key=lambda f: -rows[f][0])[:count]
    for name in largest:
        expect(name in expected, "%s: pprof shows %r, which analyze does not have (analyze: %s)" % (what, name, sorted(expected)[:20]))
        (pf, pc), (af, ac) = rows[name], expected[name]
        expect(abs(pf - af) <= tolerance_ms + 1e-4 * af and abs(pc - ac) <= tolerance_ms + 1e-4 * ac,
               "%s: %s flat/cum %.2f/%.2f ms in pprof, %.3f/%.3f in analyze" % (what, name, pf, pc, af, ac))
    print("ok: %s: pprof's top %d functions have analyze's flat and cum: %s" %
          (what, len(largest), ", ".join("%s %.2f/%.2f" % (n, rows[n][0], rows[n][1]) for n in largest[:4])))
