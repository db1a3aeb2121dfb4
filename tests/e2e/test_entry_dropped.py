"""--entry with --no-idle or --gil: the samples those drop (a thread asleep for a whole interval,
a thread without the GIL) still say which calls run. A handler that waits on I/O before it
computes, called again after a pause, is one segment per call from its start to its return, as
long as the handler's own clock says (before, --gil merged the calls into one, their pauses never
seen); the segment's tree holds only the samples kept: the computing, not the waiting.

The program: six requests, each waits 60 ms (a sleep, which releases the GIL) then computes
30 ms, 20 ms asleep between requests; beside it a thread that waits on a lock the whole time."""
import json
import sys

import harness
from harness import expect

INTERVAL_MS = 10.0
REQUESTS = 6

PROGRAM = r"""
import json, sys, threading, time

def compute(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

def handle():
    time.sleep(0.060)   # the database answers
    compute(0.030)      # then the work

lock = threading.Lock()
lock.acquire()
threading.Thread(target=lock.acquire, name="idle-waiter", daemon=True).start()
with open(sys.argv[1], "w") as report:
    for _ in range(%d):
        start = time.monotonic()
        handle()
        report.write(json.dumps({"ms": (time.monotonic() - start) * 1e3}) + "\n")
        time.sleep(0.020)
""" % REQUESTS


def test(ctx):
    program = ctx.path("wait_then_compute.py")
    with open(program, "w") as f:
        f.write(PROGRAM)
    for option in ("--no-idle", "--gil"):
        out, report = ctx.path("dropped%s.swp" % option), ctx.path("handled%s.jsonl" % option)
        ctx.record(out, [ctx.python, program, report], options=["--entry", "handle", option])
        handled = [json.loads(l)["ms"] for l in open(report)]
        doc = ctx.analyze_json(out)
        recording = doc["recording"]
        segs = ctx.analyze_json(out, "--segments")["segments"]
        expect(len(segs) == REQUESTS, "%s: %d requests, %d segments: %s" % (option, REQUESTS, len(segs), segs))
        for seg, ms in zip(segs, handled):
            harness.expect_duration(seg, ms, "%s segment %d" % (option, seg["id"]),
                                    unmeasured_ms=harness.unmeasured_ms(recording))
            # Kept: the computing (30 ms on a quiet machine; on a busy one longer, as the thread
            # waits for a CPU after its sleep and while it computes), within sampling's two
            # intervals; dropped: the 60 ms asleep.
            tree = ctx.analyze_json(out, "--segment", str(seg["id"]))
            root = tree["roots"][0] if tree["roots"] else {"function": "handle", "total_ms": 0.0}
            expect(root["function"] == "handle", "%s: segment %d's root: %s" % (option, seg["id"], root["function"]))
            expect(root["total_ms"] <= ms - 60 + 2 * INTERVAL_MS + max(0.0, recording["weight_max_ms"] - INTERVAL_MS),
                   "%s: segment %d keeps %.1f ms of the handler's %.1f: more than its computing"
                   % (option, seg["id"], root["total_ms"], ms))
        print("ok: %s: %d segments, kept %.1f ms of the %d requests' time" %
              (option, len(segs), sum(r["total_ms"] for r in doc["roots"]), REQUESTS))


if __name__ == "__main__":
    harness.main(test, __doc__)
