"""--entry: one segment per call of the entry function, analysed alone or merged.

The seed server under sequential POSTs gives one segment per request lasting 560 ms ± 2 intervals
with method3/method2/method1 at 60/40/20 ms ± 1 interval in each (on a busy machine, ± the
recording's heaviest sample, and a call shorter than that may fall between two samples); two requests back to back on one
thread (keep-alive) give two segments; --min-duration above the request time keeps none;
--max-segments 2 keeps two; a threaded server with concurrent requests gives one segment per
request, each on its own thread with no cross-talk; --max-parallel skips the excess."""
import os
import sys

import harness
from harness import expect, expect_close, find_path

INTERVAL = 10.0
# A call spans k or k+1 ticks, so sampling bounds its time to ±1 interval; ticks are 10 ms apart
# only on average, so the bound gets the timer's jitter on top (0.5 ms is 5 % of an interval).
JITTER = 0.5
SERVER = os.path.join(harness.SAMPLES, "seed_server.py")
CLIENT = os.path.join(harness.SAMPLES, "seed_client.py")


def serve(ctx, name, requests, options=(), server_args=(), client_args=()):
    """Records the seed server under `requests` POSTs; returns (file, client output, summary)."""
    out, port = ctx.path(name + ".swp"), ctx.path(name + ".port")
    err, client = ctx.record_with_client(
        out, [ctx.python, SERVER, "--port", "0", "--port-file", port, "--requests", str(requests)] + list(server_args),
        [sys.executable, CLIENT, "--port-file", port, "--count", str(requests)] + list(client_args), options)
    return out, client, err


def segments(ctx, swp):
    return ctx.analyze_json(swp, "--segments")["segments"]


def server_ms(client_output):
    """The handler's own measured time per request ("ok 64 bytes in 561.2 ms")."""
    return [float(line.rsplit(" in ", 1)[1].split()[0]) for line in client_output.splitlines() if " in " in line]


def tolerance(doc):
    """Sampling bounds a call's time to ± one sample's weight: the interval on a quiet machine, the
    recording's heaviest sample on a busy one, where ticks come late (plus the timer's jitter)."""
    return max(INTERVAL, doc["recording"]["weight_max_ms"]) + JITTER


def check_request_tree(ctx, swp, segment_id, oversleep=0.0):
    """The tree of one request. `oversleep`: how much longer than asked the handler's sleeps took
    in all (its measured time less 560 ms; a busy machine wakes sleepers late): each method's
    calls may take that much longer."""
    doc = ctx.analyze_json(swp, "--segment", str(segment_id))
    expect(len(doc["roots"]) == 1 and harness.name_matches(doc["roots"][0], "Handler.do_POST", ctx.version),
           "segment %d starts at the entry: roots %s" % (segment_id, [r["function"] for r in doc["roots"]]))
    node, tol = doc["roots"][0], tolerance(doc)
    for name, want in (("method3", 60.0), ("method2", 40.0), ("method1", 20.0)):
        child = [c for c in node["children"] if harness.name_matches(c, name, ctx.version)]
        if not child:
            # Only a call shorter than the longest gap between two samples can fall between them.
            expect(want < doc["recording"]["weight_max_ms"],
                   "segment %d: %s (%.0f ms) missing under %s, yet no gap between samples was that long (%.1f ms)"
                   % (segment_id, name, want, node["function"], doc["recording"]["weight_max_ms"]))
            print("note: segment %d: %s fell between two samples %.1f ms apart" % (segment_id, name,
                                                                                 doc["recording"]["weight_max_ms"]))
            break
        node = child[0]
        expect_close(node["total_ms"], want + oversleep / 2, tol + oversleep / 2, "segment %d %s" % (segment_id, name))
    return doc


def test(ctx):
    # Sequential requests: one segment each, 560 ms, the per-request tree.
    swp, client, summary = serve(ctx, "sequential", 3, ["--entry", "do_POST", "--min-duration", "100ms"])
    segs = segments(ctx, swp)
    expect(len(segs) == 3, "3 requests, %d segments" % len(segs))
    for seg, measured in zip(segs, server_ms(client)):
        # The handler measures from after reading the body: about 560 ms of the call.
        doc = check_request_tree(ctx, swp, seg["id"], max(0.0, measured - 560.0))
        expect_close(seg["duration_ms"], 560.0, 2 * tolerance(doc), "segment %d duration" % seg["id"])
    expect("3 seen, 3 kept" in summary, "summary counts segments: %s" % summary)
    text = ctx.run_swprof("analyze", swp, "--segments").stdout
    expect(text.splitlines()[0].split()[:5] == ["ID", "Thread", "Start", "Duration", "Samples"], "segment table header")
    merged = ctx.analyze_json(swp)
    m3 = find_path(merged["roots"], ["Handler.do_POST", "method3"], ctx.version)
    expect_close(m3[-1]["total_ms"], 180.0, 3 * tolerance(merged), "all segments merged: method3")
    slowest = ctx.analyze_json(swp, "--slowest", "1")
    expect(slowest["roots"][0]["samples"] <= max(s["samples"] for s in segs), "--slowest 1 analyses one segment")
    sw = ctx.analyze_json(swp, "--segment", "1", "--estimator", "skywalking")
    root = sw["roots"][0]
    expect_close(root["total_ms"], 560.0 - INTERVAL, 2 * tolerance(sw), "skywalking: do_POST duration (first to last dump)")
    expect(root["samples"] == segs[0]["samples"], "skywalking: do_POST is in every dump of its segment")
    full = ctx.analyze_json(swp, "--segment", "1", "--full-stack")
    expect(not harness.name_matches(full["roots"][0], "Handler.do_POST", ctx.version),
           "--full-stack keeps the frames above the entry")

    # Two requests back to back on one thread and one connection: two segments.
    swp, client, _ = serve(ctx, "keepalive", 2, ["--entry", "do_POST"], ["--keep-alive"], ["--keep-alive"])
    segs = segments(ctx, swp)
    expect(len(segs) == 2, "keep-alive: 2 requests on one thread, %d segments" % len(segs))
    expect(segs[0]["thread"] == segs[1]["thread"], "both on one thread")
    keepalive = ctx.analyze_json(swp)
    for seg in segs:
        expect_close(seg["duration_ms"], 560.0, 2 * tolerance(keepalive), "keep-alive segment %d" % seg["id"])

    # --min-duration above the request time keeps none.
    swp, _, summary = serve(ctx, "tooshort", 2, ["--entry", "Handler.do_POST", "--min-duration", "1s"])
    expect(segments(ctx, swp) == [], "--min-duration 1s keeps no 560 ms request")
    expect("2 shorter than 1.00s" in summary, "summary: %s" % summary)

    # --max-segments 2 keeps two (recording stops; the server runs on to its end).
    swp, _, summary = serve(ctx, "max", 4, ["--entry", "seed_server.py:do_POST", "--max-segments", "2"])
    expect(len(segments(ctx, swp)) == 2, "--max-segments 2 keeps two")
    expect("--max-segments reached" in summary, "summary says why recording stopped")

    # Threaded server, concurrent requests: one segment per request, each on its own thread.
    swp, client, _ = serve(ctx, "threaded", 4, ["--entry", "do_POST"], ["--threaded"], ["--concurrency", "4"])
    oversleep = max([0.0] + [m - 560.0 for m in server_ms(client)])
    segs = segments(ctx, swp)
    expect(len(segs) == 4, "4 concurrent requests, %d segments" % len(segs))
    expect(len({s["thread"] for s in segs}) == 4, "each request on its own thread")
    for seg in segs:
        doc = check_request_tree(ctx, swp, seg["id"], oversleep)
        expect_close(seg["duration_ms"], 560.0 + oversleep / 2, 2 * tolerance(doc) + oversleep / 2,
                     "concurrent segment %d" % seg["id"])
        threads = ctx.analyze_json(swp, "--segment", str(seg["id"]), "--by-thread")["roots"]
        expect(len(threads) == 1 and threads[0]["function"].startswith("thread %d" % seg["thread"]),
               "segment %d holds only its own thread's samples" % seg["id"])
        expect(doc["roots"][0]["samples"] == seg["samples"], "segment %d: every sample is under its do_POST" % seg["id"])

    # --max-parallel 2 with 4 concurrent requests: two sampled, two skipped.
    swp, _, summary = serve(ctx, "parallel", 4, ["--entry", "do_POST", "--max-parallel", "2"], ["--threaded"],
                            ["--concurrency", "4"])
    expect(len(segments(ctx, swp)) == 2, "--max-parallel 2: two segments sampled")
    expect("2 skipped" in summary, "summary counts the skipped: %s" % summary)

    # A spec that can never match is refused up front.
    for bad in ("", "do POST", "server.py:", ":do_POST", "Handler..do_POST", "1abc"):
        proc = ctx.run_swprof("record", "--entry", bad, "-o", ctx.path("bad.swp"), "--", ctx.python, "-c", "pass")
        expect(proc.returncode != 0 and "--entry" in proc.stderr, "--entry %r refused: %s" % (bad, proc.stderr))


if __name__ == "__main__":
    harness.main(test, __doc__)
