"""The seed demo server under a few POSTs: per request, method3/method2/method1 total about
60/40/20 ms (±1 interval each) and the handler's time.sleep(0.5) line about 500 ms (each against what the program measured). Time the
recorder was held up for (the recording's not_sampled_ms, 0 on a quiet machine) is shown as
<not sampled> under the frames common to the samples around it: a function may be short of its
measure by that much (CI: a 146 ms stall as the first request began took its methods)."""
import os
import sys

import harness
from harness import expect, expect_close, find_path

REQUESTS = 3
INTERVAL_MS = 10.0
# A call spans k or k+1 ticks, so sampling bounds its time to ±1 interval; ticks are 10 ms apart
# only on average, so the bound gets the timer's jitter on top (0.5 ms is 5 % of an interval).
JITTER = 0.5


def test(ctx):
    server = os.path.join(harness.SAMPLES, "seed_server.py")
    client = os.path.join(harness.SAMPLES, "seed_client.py")
    out, port_file, timings = ctx.path("seed.swp"), ctx.path("port"), ctx.path("timings")
    ctx.record_with_client(out, [ctx.python, server, "--port", "0", "--port-file", port_file, "--requests", str(REQUESTS),
                                 "--timings-file", timings],
                           [sys.executable, client, "--port-file", port_file, "--count", str(REQUESTS)])

    doc = ctx.analyze_json(out)
    # (Per request: all of it may have fallen in one request.)
    unsampled = doc["recording"]["not_sampled_ms"] / REQUESTS
    path = find_path(doc["roots"], ["Handler.do_POST", "method3", "method2", "method1"], ctx.version)
    expect(path is not None, "no do_POST -> method3 -> method2 -> method1 path")
    defs = harness.def_lines(server)
    for node, name in zip(path, ["Handler.do_POST", "method3", "method2", "method1"]):
        expect(node["file"] == server and node["line"] == defs[name],
               "%s at %s:%d, expected line %d" % (name, node["file"], node["line"], defs[name]))
    do_post, m3, m2, m1 = path
    # Against what the methods measured (60, 40 and 20 ms asleep; a sleeper woken late takes longer).
    measured = harness.seed_timings(timings)
    expect(len(measured) == REQUESTS, "the server measured %d requests" % len(measured))
    for node, name in ((m3, "method3"), (m2, "method2"), (m1, "method1")):
        expect_close(node["total_ms"] / REQUESTS, sum(m[name] for m in measured) / REQUESTS,
                     INTERVAL_MS + JITTER + unsampled, "%s ms per request" % name)
    # Against the handler's whole time, reply included (CI: 130 ms off-CPU in send_response).
    expect_close(do_post["total_ms"] / REQUESTS, sum(m["handler_ms"] for m in measured) / REQUESTS,
                 2 * INTERVAL_MS + JITTER + unsampled, "do_POST ms per request")

    doc = ctx.analyze_json(out, "--lines")
    sleep_line = harness.line_of(server, "time.sleep(0.5)")
    posts = [n for n in harness.all_nodes(doc["roots"])
             if harness.name_matches(n, "Handler.do_POST", ctx.version) and n["line"] == sleep_line]
    expect(posts, "no do_POST node at the time.sleep(0.5) line %d" % sleep_line)
    # Against the sleep's own measure: on a busy machine a sleeper is woken late (CI: 513.8 ms).
    expect_close(sum(n["total_ms"] for n in posts) / REQUESTS, sum(m["sleep"] for m in measured) / REQUESTS,
                 INTERVAL_MS + JITTER + unsampled, "time.sleep(0.5) ms per request")


if __name__ == "__main__":
    harness.main(test, __doc__)
