"""A recorder held up (a busy machine, a VM's stolen time, here SIGSTOP) while a sync worker
serves requests one after another: each request's segment is no longer than what its handler
measured, give or take the sampling interval, however the stalls fall. A request that began while
the recorder was stopped after the previous one was last seen does not get the stall's time: the
handler's frame is the same function called from the same line as the previous request's, so the
stacks on both sides of the stall match, but the new call began only after the old one ended.
(Before this, a gunicorn worker with its recorder stopped 70 ms of every 170 had a ~30 ms request
estimated at 86 ms.)

The worker waits for its next client outside the handler (2 ms), and each handler waits on I/O
before it computes, as real handlers do: 4 ms asleep, 12 ms of CPU, 4 ms asleep. swprof is
stopped for 70 ms every 170 ms, so about one request in eight begins in a stall that the previous
request's last sample preceded.

On Debian's python3.11, the same with a real server and client: gunicorn with one sync worker
(samples/wsgi_app.py: 20 ms waiting on a backend, then 10 ms of work) under ab -c 1, attached
with --subprocesses: no segment longer than the longest request the app measured."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import harness
from harness import expect

INTERVAL_MS = 5.0
REQUESTS = 120
STOP_MS, PERIOD_MS = 70, 170

PROGRAM = r'''
import json, sys, time

def spin(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass

def handle(request, report):
    start = time.monotonic()
    time.sleep(0.004)   # read the body, ask the database
    spin(0.012)         # render
    time.sleep(0.004)   # write the reply
    report.append({"request": request, "start": start, "end": time.monotonic()})

def serve(requests, path):
    report = []
    for request in range(requests):
        time.sleep(0.002)  # accept the next client
        handle(request, report)
    with open(path, "w") as f:
        json.dump(report, f)

serve(int(sys.argv[1]), sys.argv[2])
'''


class Stopper:
    """While in its `with`, SIGSTOPs `pid` for STOP_MS of every PERIOD_MS; leaves it running."""

    def __init__(self, pid):
        self.pid, self.done = pid, threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.done.wait((PERIOD_MS - STOP_MS) / 1000.0):
            try:
                os.kill(self.pid, signal.SIGSTOP)
                time.sleep(STOP_MS / 1000.0)
            finally:
                os.kill(self.pid, signal.SIGCONT)

    def __enter__(self):
        self.thread.start()

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def test(ctx):
    sync_worker(ctx)
    if os.path.realpath(ctx.python) == os.path.realpath("/usr/bin/python3.11"):
        gunicorn_worker(ctx)


def sync_worker(ctx):
    program, out, report = ctx.path("worker.py"), ctx.path("stall.swp"), ctx.path("handled.json")
    with open(program, "w") as f:
        f.write(PROGRAM)
    rec = subprocess.Popen([ctx.swprof, "record", "-q", "-i", "%gms" % INTERVAL_MS, "--entry", "handle", "-o", out,
                            "--", ctx.python, program, str(REQUESTS), report],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Stopper(rec.pid):
            _, err = rec.communicate(timeout=120)
    finally:
        harness.kill_quietly(rec)
    expect(rec.returncode == 0, "swprof record exited %d: %s" % (rec.returncode, err))
    handled = json.load(open(report))
    expect(len(handled) == REQUESTS, "the worker handled %d of %d requests" % (len(handled), REQUESTS))

    recording = ctx.analyze_json(out)["recording"]
    epoch = recording["start_monotonic_ms"]
    expect(len(recording["stalls_ms"]) >= 5, "the recorder was seen held up: stalls %s" % recording["stalls_ms"])
    segs = ctx.analyze_json(out, "--segments")["segments"]
    # Requests that began and ended within a stall are not seen; every other is one segment.
    spans = [(h["start"] * 1000 - epoch, h["end"] * 1000 - epoch, h) for h in handled]
    stall_covers = lambda a, b: any(s - INTERVAL_MS <= a and b <= e + INTERVAL_MS for s, e in recording["stalls_ms"])
    visible = [h for a, b, h in spans if not stall_covers(a, b)]
    expect(len(visible) <= len(segs) <= len(handled),
           "%d segments for %d requests (%d not within a stall)" % (len(segs), len(handled), len(visible)))
    # A sample on time weighs up to two intervals, and the handler's clock misses its first and
    # last statements. (Not harness.unmeasured_ms: the recorder's late samples here are its own
    # stops, not the program's preemptions.)
    slack = 2 * INTERVAL_MS + 2.0
    worst, after_stall = 0.0, 0
    for seg in segs:
        # Requests follow each other: the one whose time the segment's overlaps most.
        start, end = seg["start_ms"], seg["start_ms"] + seg["duration_ms"]
        overlap = lambda span: min(end, span[1]) - max(start, span[0])
        a, b, h = max(spans, key=overlap)
        expect(overlap((a, b)) > 0, "segment %d (%.1f ms from %.1f ms) overlaps no request" % (seg["id"], seg["duration_ms"], start))
        measured = b - a
        lo, hi = seg["duration_min_ms"] - 0.5 - harness.unmeasured_ms(recording), harness.duration_max_ms(seg) + 0.5
        expect(lo <= measured <= hi, "segment %d (request %d): measured %.1f ms, the segment allows %.1f .. %.1f"
               % (seg["id"], h["request"], measured, lo, hi))
        # The estimate is the call's, not the stall's: never longer than the call by more than the
        # sampling interval allows (a call first seen after a stall may be shown shorter: when in
        # the stall it began is not known).
        expect(seg["duration_ms"] <= measured + slack,
               "segment %d (request %d) lasted %.1f ms, the handler measured %.1f (%.1f .. %.1f after the recording began)"
               % (seg["id"], h["request"], seg["duration_ms"], measured, a, b))
        worst = max(worst, seg["duration_ms"] - measured)
        after_stall += any(s <= a <= e for s, e in recording["stalls_ms"])
    # The case this is about happened: requests that began while the recorder was stopped.
    expect(after_stall >= 3, "only %d segments' requests began in a stall" % after_stall)
    print("ok: %d requests, %d segments (%d began in one of %d stalls), the longest estimate %.1f ms past its handler's"
          % (len(handled), len(segs), after_stall, len(recording["stalls_ms"]), worst))


def gunicorn_worker(ctx):
    gunicorn = shutil.which("gunicorn")
    if not gunicorn or not shutil.which("ab"):
        print("SKIP (gunicorn part): Debian's gunicorn and ab (apache2-utils) are needed")
        return
    log, out = ctx.path("requests.jsonl"), ctx.path("gunicorn.swp")

    def drive(url, rec):
        with Stopper(rec.pid):
            harness.run_ab(url, 80, 1)

    harness.record_gunicorn(ctx, out, log, 1, "%gms" % INTERVAL_MS, drive)
    served = [json.loads(l) for l in open(log)]
    longest = max(r["ms"] for r in served)
    recording = ctx.analyze_json(out)["recording"]
    segs = ctx.analyze_json(out, "--segments")["segments"]
    expect(len(recording["stalls_ms"]) >= 5, "the recorder was seen held up: stalls %s" % recording["stalls_ms"])
    expect(0 < len(segs) <= len(served), "%d segments for %d requests" % (len(segs), len(served)))
    # ab sends the next request as soon as the reply is read: when a stall hides the end of one
    # request and the start of the next, and the next one's handler is in the same frame with its
    # arguments at the same (freed and reused) addresses and the same locals bound, the two are one
    # call to a sampler, and even what the samples saw of it (duration_min_ms) is longer than any
    # request. Those are known merges (one or two a run here); every other segment is one request
    # and no longer than the longest, give or take the sampling interval.
    slack = 2 * INTERVAL_MS + 2.0
    merged = [s for s in segs if s["duration_min_ms"] > longest + slack]
    stretched = [s for s in segs if s not in merged and s["duration_ms"] > longest + slack]
    expect(not stretched, "segments estimated longer than the longest request (%.1f ms): %s" % (longest, stretched))
    expect(len(merged) <= max(2, len(served) // 20), "%d segments of several requests: %s" % (len(merged), merged))
    worst = max(s["duration_ms"] for s in segs if s not in merged)
    print("ok: gunicorn, one sync worker under ab -c 1: %d requests (the longest %.1f ms), %d segments "
          "(the longest %.1f ms; %d of requests back to back in a stall), %d stalls"
          % (len(served), longest, len(segs), worst, len(merged), len(recording["stalls_ms"])))


if __name__ == "__main__":
    harness.main(test, __doc__)
