"""A process stopped while it is recorded (SIGSTOP, as Ctrl-Z or a debugger does, then SIGCONT):
every thread's time while stopped is under `<off-CPU: stopped>` in `analyze --mode offcpu`, as
long as the stop lasted within the sampling tolerance, and no thread has that reason outside it.

The threads are what a service has: one computing, one sleeping in short naps, one waiting on a
lock another thread releases now and then, two taking the GIL from each other, and the main one
joining them; every one of them is somewhere else when the stop comes (running, asleep, blocked in
a futex), and most of them wake at the stop and go back to sleep at once (the kernel wakes a
sleeping thread to stop it).
"""
import os
import signal
import subprocess
import time

import harness
from harness import expect

PROGRAM = '''
import threading, time

def compute():
    while True:
        sum(i * i for i in range(2000))

def nap():
    while True:
        time.sleep(0.002)

lock = threading.Lock()

def hold():
    while True:
        with lock:
            time.sleep(0.05)
        time.sleep(0.001)

def wait_lock():
    while True:
        with lock:
            pass

def share_gil():
    while True:
        x = 0
        for i in range(500):
            x += i

for f in (compute, nap, hold, wait_lock, share_gil, share_gil):
    threading.Thread(target=f, name=f.__name__, daemon=True).start()
print("ready", flush=True)
time.sleep(60)
'''


def test(ctx):
    program, out = ctx.path("stopped.py"), ctx.path("stopped.swp")
    with open(program, "w") as f:
        f.write(PROGRAM)
    prog = subprocess.Popen([ctx.python, program], stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().strip() == "ready", "the program started")
        rec = subprocess.Popen([ctx.swprof, "record", "-q", "-o", out, "-i", "1ms", "--duration", "2.5s",
                                "--pid", str(prog.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        stopped_at = time.monotonic()
        os.kill(prog.pid, signal.SIGSTOP)
        time.sleep(0.6)
        continued_at = time.monotonic()
        os.kill(prog.pid, signal.SIGCONT)
        _, err = rec.communicate(timeout=60)
        expect(rec.returncode == 0, "swprof record: %s" % err)
    finally:
        harness.kill_quietly(prog)
    stop_ms = (continued_at - stopped_at) * 1e3
    off = ctx.analyze_json(out, "--mode", "offcpu", "--by-thread", "--min-percent", "0")
    # Two switches per thread (into the stop and out of it), and the stop's edges as the test saw
    # them (the signals take effect a scheduler's wake-up later).
    tolerance = harness.sampling_tolerance(off, transitions=2) + 5
    expect(off["recording"]["errors"] <= max(2, off["recording"]["samples"] // 200),
           "errors: %d of %d samples" % (off["recording"]["errors"], off["recording"]["samples"]))

    def stopped_ms(node):
        if node["function"] == "<off-CPU: stopped>":
            return node["total_ms"]
        return sum(stopped_ms(c) for c in node["children"])

    names = {"compute", "nap", "hold", "wait_lock", "share_gil", "MainThread"}
    seen = 0
    for root in off["roots"]:
        name = root["function"]
        label = next((n for n in names if "(%s)" % n in name), None)
        if label is None:
            continue
        seen += 1
        got = stopped_ms(root)
        expect(abs(got - stop_ms) <= tolerance,
               "%s: %.1f ms under <off-CPU: stopped>, stopped for %.1f ms (±%.1f)" % (name, got, stop_ms, tolerance))
        print("ok: %-40s %.1f ms stopped of %.1f (±%.1f)" % (name[:40], got, stop_ms, tolerance))
    expect(seen == 7, "7 threads in the recording, not %d" % seen)


if __name__ == "__main__":
    harness.main(test, __doc__)
