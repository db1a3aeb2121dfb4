"""A threaded server under a real load generator: ThreadingHTTPServer (and Flask's threaded server
on Debian's 3.11, which has python3-flask) serves 200 requests from `ab -c 4`, one thread per
connection, each handler waiting on I/O first and computing later. With --entry on the handler,
every request served is exactly one segment, on its own (named) thread, whose duration agrees with
the handler's own clock as closely as sampling allows; nothing is skipped as over --max-parallel
with 4 requests at a time; the thread list churns without ending segments early."""
import json
import os
import shutil
import subprocess
import time

import harness
from harness import expect

SERVER = os.path.join(harness.SAMPLES, "threaded_server.py")
REQUESTS = 200
INTERVAL_MS = 5.0


def run(ctx, name, entry, extra):
    out, port, stats = ctx.path(name + ".swp"), ctx.path(name + ".port"), ctx.path(name + ".jsonl")
    rec = subprocess.Popen([ctx.swprof, "record", "-q", "-i", "%gms" % INTERVAL_MS, "--entry", entry, "-o", out, "--",
                            ctx.python, SERVER, "--port-file", port, "--stats-file", stats] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    summary, handled = harness.serve_under_ab(rec, port, stats, REQUESTS, 4)
    expect(len(handled) == REQUESTS, "%s: the server handled %d requests" % (name, len(handled)))
    return out, handled, summary


def check(ctx, name, out, handled, summary):
    segs = ctx.analyze_json(out, "--segments")["segments"]
    by_thread = {}
    for s in segs:
        by_thread.setdefault(s["thread"], []).append(s)
    # One segment per request: each request ran on its own thread (one per connection). Only a
    # request that began and ended while the recorder itself was held up (a busy machine) may go
    # unseen: the recording says when that was, on the program's own clock.
    rec = ctx.analyze_json(out)["recording"]
    epoch = rec["start_monotonic_ms"]
    stalls = rec["stalls_ms"]
    within_stall = lambda r: any(a - INTERVAL_MS <= r["start"] * 1000 - epoch and r["end"] * 1000 - epoch <= b + INTERVAL_MS
                                 for a, b in stalls)
    unseen = [r for r in handled if r["tid"] not in by_thread]
    expect(all(within_stall(r) for r in unseen), "%s: requests with no segment outside any recorder stall: %s (stalls %s)"
           % (name, [r for r in unseen if not within_stall(r)][:3], stalls[:5]))
    # (What a failure names is all a CI run leaves: its scratch files go with the machine.)
    tids = {r["tid"] for r in handled}
    odd = {t: [(s["id"], round(s["start_ms"], 1), round(s["duration_ms"], 1)) for s in mine]
           for t, mine in by_thread.items() if len(mine) != 1 or t not in tids}
    expect(len(segs) == len(handled) - len(unseen), "%s: %d requests (%d unseen in stalls), %d segments; "
           "threads with other than one segment, or no request (id, start ms, ms): %s; stalls %s"
           % (name, len(handled), len(unseen), len(segs), odd, stalls[:5]))
    worst, wide = 0.0, 0
    lateness = max(0.0, rec["weight_max_ms"] - rec["interval_ms"])
    for r in handled:
        mine = by_thread.get(r["tid"], [])
        if not mine and within_stall(r):
            continue
        expect(len(mine) == 1, "%s: request on thread %d has %d segments" % (name, r["tid"], len(mine)))
        seg = mine[0]
        # (A thread's name is read from threading's own table a tick or more after the thread
        # appears: a short request's thread can end before it is; it then has none, never a wrong one.)
        expect(seg["thread_name"] in (r["name"], ""), "%s: segment %d named %r, thread is %r"
               % (name, seg["id"], seg["thread_name"], r["name"]))
        # Sampling bounds the call between the samples around its start and its end. The handler's
        # clock covers all of it but the frame's own setup and teardown (under a microsecond, or a
        # GIL switch interval when four threads contend: 5 ms).
        lo, hi = seg["duration_min_ms"] - 0.5 - 5.0, harness.duration_max_ms(seg) + 0.5
        expect(lo <= r["ms"] <= hi, "%s: segment %d lasted %.1f (allowed %.1f .. %.1f), the handler measured %.1f"
               % (name, seg["id"], seg["duration_ms"], lo, hi, r["ms"]))
        worst = max(worst, abs(seg["duration_ms"] - r["ms"]))
        # The bounds are two sample spacings wide: two intervals, more when the recorder was held up
        # (by as much as its latest sample was late, at each end).
        wide += harness.duration_max_ms(seg) - seg["duration_min_ms"] > 4 * INTERVAL_MS + 1 + 2 * lateness
    expect(wide <= len(segs) // 20, "%s: %d of %d segments have bounds over 4 intervals wide" % (name, wide, len(segs)))
    seen = len(segs)
    expect("%d seen, %d kept" % (seen, seen) in summary and " 0 skipped" in summary, "%s: summary: %s" % (name, summary))
    print("ok: %s: %d requests, %d segments (%d unseen in recorder stalls), worst |segment - handler| %.1f ms"
          % (name, len(handled), len(segs), len(unseen), worst))


def test(ctx):
    if not shutil.which("ab") or not shutil.which("curl"):
        print("SKIP: ab (apache2-utils) and curl are needed")
        raise SystemExit(harness.SKIP)
    out, handled, summary = run(ctx, "stdlib", "do_GET", [])
    check(ctx, "ThreadingHTTPServer", out, handled, summary)
    flask = subprocess.run([ctx.python, "-c", "import flask"], capture_output=True).returncode == 0
    if flask:
        # Flask's view is `handle`; werkzeug's request handler has a `handle` too: name the file.
        out, handled, summary = run(ctx, "flask", "threaded_server.py:handle", ["--flask"])
        check(ctx, "Flask", out, handled, summary)
    else:
        print("note: Flask is not installed for %s (Debian's python3-flask is for 3.11): its case not run" % ctx.python)


if __name__ == "__main__":
    harness.main(test, __doc__)
