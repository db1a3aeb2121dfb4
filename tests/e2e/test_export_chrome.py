"""Chrome trace export (Trace Event JSON), checked against the format's rules and by speedscope's
importer of this format (its own app, in headless Chromium): every event has the fields the format
requires; each track is named, in time order and properly nested; a frame on consecutive samples
is one event (methodB spans the whole run of nested_sleeps, methodC is one event per iteration);
per-function event time matches analyze; each segment is one complete event named after the entry
function with its id, duration (as analyze --segments says) and CPU time, enclosing its stacks;
under gevent, requests that overlap on one thread each get a track of their own."""
import json
import os
import sys

import browser as webdriver
import formats
import harness
import speedscope_app
from harness import expect, expect_close

ITERATIONS = 8


def outermost_time(events, name):
    """Total duration of the events named `name` not inside another one of that name, in ms."""
    total, end = 0.0, -1
    for e in events:
        if e["name"] == name and e["ts"] >= end:
            total += e["dur"]
            end = e["ts"] + e["dur"]
    return total / 1e3


def test_gevent(ctx):
    """Under gevent, requests' segments overlap on one thread: each greenlet gets its own track."""
    import subprocess
    if ctx.version < (3, 11) or subprocess.run([ctx.python, "-c", "import gevent"], capture_output=True).returncode:
        print("note: gevent tracks not checked: needs gevent on CPython 3.11+ (debian-3.11 has it)")
        return
    swp, port = ctx.path("gevent.swp"), ctx.path("gevent.port")
    requests = 6
    ctx.record_with_client(swp, [ctx.python, os.path.join(harness.SAMPLES, "gevent_server.py"), "--port", "0",
                                 "--port-file", port, "--requests", str(requests)],
                           [sys.executable, os.path.join(harness.SAMPLES, "gevent_client.py"), "--port-file", port,
                            "--count", str(requests)], ["--entry", "handle", "--max-parallel", str(requests)], timeout=60)
    doc = export(ctx, swp, ctx.path("gevent.trace.json"))
    tracks = formats.check_trace_format(doc)
    segs = {e["args"]["segment"]: tid for tid, events in tracks.items() for e in events if e.get("cat") == "segment"}
    rows = ctx.analyze_json(swp, "--segments")["segments"]
    expect(len(segs) == len(rows) == requests, "%d segments, %d segment events" % (len(rows), len(segs)))
    expect(len(set(segs.values())) == requests, "each concurrent request on its own track: %s" % segs)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    expect(all("greenlet" in names[tid] for tid in segs.values()), "greenlet tracks named: %s" % names)
    print("ok: gevent: %d overlapping requests, one track each (%s, ...)" % (requests, names[segs[1]]))


def export(ctx, swp, out, *options):
    proc = ctx.run_swprof("export", swp, "--format", "chrome", "-o", out, *options)
    expect(proc.returncode == 0, "export: %s" % proc.stderr)
    return json.load(open(out, encoding="utf-8"))


def test(ctx):
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    swp = ctx.path("nested.swp")
    ctx.record(swp, [ctx.python, sample, str(ITERATIONS)])
    doc = export(ctx, swp, ctx.path("nested.trace.json"))
    tracks = formats.check_trace_format(doc)
    events = [e for t in tracks.values() for e in t]
    analyzed = formats.per_function(ctx.analyze_json(swp)["roots"])
    # A busy machine can hold the recorder up: the time it missed is a <not sampled> event under
    # the frames known to have been there throughout (methodB's line changed across it, so methodA),
    # and only there may a frame's run be split or two calls be joined.
    gaps = [e for e in events if e["name"] == "<not sampled>"]
    covered = lambda start, end: any(g["ts"] <= end and start <= g["ts"] + g["dur"] for g in gaps)
    b = sorted((e for e in events if e["name"] == "methodB"), key=lambda e: e["ts"])
    splits = [(x, y) for x, y in zip(b, b[1:])]
    expect(b and all(covered(x["ts"] + x["dur"], y["ts"]) for x, y in splits),
           "methodB stays on every sample of the loop: one event but where the recorder was held up, got %d "
           "with %d <not sampled>" % (len(b), len(gaps)))
    c = [e for e in events if e["name"] == "methodC"]
    expect(abs(len(c) - ITERATIONS) <= len(gaps), "methodC: one event per iteration, got %d (%d <not sampled>)"
           % (len(c), len(gaps)))
    for name in ("methodB", "methodC", "methodD"):
        expect_close(outermost_time(events, name), analyzed[name][1], 0.05, "%s's event time (ms) vs analyze" % name)
    # A call's event spans its samples: off by up to a sample's weight at each end.
    recording = ctx.analyze_json(swp)["recording"]
    tolerance = 2 * max(recording["interval_ms"], recording["weight_max_ms"]) + 2
    for e in c:
        if not covered(e["ts"] - 1, e["ts"] + e["dur"] + 1):
            expect_close(e["dur"] / 1e3, 40, tolerance, "one methodC call (ms)")
    if gaps:
        print("note: the recorder was held up %d times (%.1f ms): frames split or joined only there"
              % (len(gaps), sum(g["dur"] for g in gaps) / 1e3))

    # Segments: a complete event per request, enclosing that request's stacks.
    seg_swp = ctx.path("requests.swp")
    ctx.record(seg_swp, [ctx.python, os.path.join(harness.SAMPLES, "release_compare.py"), "2", "5"],
               options=["--entry", "handle"])
    seg_doc = export(ctx, seg_swp, ctx.path("requests.trace.json"))
    seg_tracks = formats.check_trace_format(seg_doc)
    rows = {r["id"]: r for r in ctx.analyze_json(seg_swp, "--segments")["segments"]}
    segs = [e for t in seg_tracks.values() for e in t if e.get("cat") == "segment"]
    expect(sorted(e["args"]["segment"] for e in segs) == sorted(rows), "one event per segment: %s" % [e["args"] for e in segs])
    for e in segs:
        row = rows[e["args"]["segment"]]
        expect(e["name"] == "handle", "a segment is named after its entry function: %r" % e["name"])
        expect(abs(e["args"]["duration_ms"] - row["duration_ms"]) < 0.01 and e["args"]["samples"] == row["samples"],
               "segment %d: %s, analyze --segments says %s" % (row["id"], e["args"], row))
        expect_close(e["dur"] / 1e3, row["duration_ms"], 10.5, "segment %d's event (ms) vs its duration" % row["id"])
        expect(e["args"]["cpu_ms"] >= 0, "cpu_ms")
        inside = [x for x in seg_tracks[e["tid"]] if x is not e and e["ts"] <= x["ts"] < e["ts"] + e["dur"]]
        expect(inside and all(x["ts"] + x["dur"] <= e["ts"] + e["dur"] for x in inside), "stacks inside segment %d" % row["id"])
        expect(inside[0]["name"] == "handle" and inside[0]["cat"] == "python", "the entry frame opens each segment's stack")
    print("ok: %d segment events named after the entry, with analyze's durations, enclosing their stacks" % len(segs))

    test_gevent(ctx)

    root, why = speedscope_app.tools()
    for reason in (why, webdriver.missing()):
        if reason:
            print("SKIP (speedscope's importer not run): " + reason)
            sys.exit(harness.SKIP)
    server = speedscope_app.Server(root, ctx.tmp)
    browser = webdriver.Browser(ctx.tmp)
    try:
        for name, expected_leader in (("nested.trace.json", "methodD"), ("requests.trace.json", "render")):
            result = speedscope_app.open_profile(browser, server, name, view="sandwich")
            speedscope_app.expect_imported(result, name)
            rows = browser.js("""return Array.prototype.map.call(document.querySelectorAll('table tr'), function (tr) {
                return tr.innerText; });""")
            text = "\n".join(rows)
            expect(expected_leader in text, "speedscope's sandwich view of %s lists %s:\n%s" % (name, expected_leader, text[:1500]))
            speedscope_app.expect_imported(speedscope_app.open_profile(browser, server, name), name)
            shot = ctx.artifact(name + ".png")
            browser.screenshot(shot)
            print("screenshot: %s" % shot)
    finally:
        browser.quit()
        server.close()


if __name__ == "__main__":
    harness.main(test, __doc__)
