"""A process stopped while it is recorded (SIGSTOP, as Ctrl-Z or a debugger does, then SIGCONT):
every thread's time while stopped is under `<off-CPU: stopped>` in `analyze --mode offcpu`, as
long as the stop lasted within the sampling tolerance, and no thread has that reason outside it.

The threads are what a service has: one computing, one sleeping in short naps, one waiting on a
lock another thread releases now and then, two taking the GIL from each other, and the main one
joining them; every one of them is somewhere else when the stop comes (running, asleep, blocked in
a futex), and most of them wake at the stop and go back to sleep at once (the kernel wakes a
sleeping thread to stop it).

Two stops: one of the whole process (kill PID) while the main thread waits to read its stdin, and
one sent to a thread (kill TID, as `kill -STOP` of a thread id or a debugger does) while the main
thread is in a system call that does not stop until it returns (posix_spawn waiting, as vfork
does, for a child that blocks opening a FIFO): the other threads stop at once, the main thread
not at all. (A thread blocked in a call was told stopped from its main thread's state alone,
which then lags: none of the six threads' second stop showed.)
"""
import os
import signal
import subprocess
import time

import harness
from harness import expect

PROGRAM = '''
import os, sys, threading, time

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
for line in sys.stdin:
    if line.strip() == "spawn":
        print("spawning", flush=True)
        # posix_spawn waits (vfork) until the child has run its file actions and exec'd, and the
        # child's open of the FIFO blocks until the test opens it: a wait no stop interrupts.
        child = os.posix_spawn("/bin/true", ["true"], os.environ,
                               file_actions=[(os.POSIX_SPAWN_OPEN, 3, sys.argv[1], os.O_RDONLY, 0)])
        os.waitpid(child, 0)
'''


def test(ctx):
    program, out, fifo = ctx.path("stopped.py"), ctx.path("stopped.swp"), ctx.path("spawn.fifo")
    with open(program, "w") as f:
        f.write(PROGRAM)
    os.mkfifo(fifo)
    prog = subprocess.Popen([ctx.python, program, fifo], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        expect(prog.stdout.readline().strip() == "ready", "the program started")
        rec = subprocess.Popen([ctx.swprof, "record", "-q", "-o", out, "-i", "1ms", "--duration", "3.8s",
                                "--pid", str(prog.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        # 1. The whole process, the main thread blocked in read().
        stopped_at = time.monotonic()
        os.kill(prog.pid, signal.SIGSTOP)
        time.sleep(0.6)
        continued_at = time.monotonic()
        os.kill(prog.pid, signal.SIGCONT)
        process_stop_ms = (continued_at - stopped_at) * 1e3
        time.sleep(0.3)
        # 2. One thread, the main thread in posix_spawn: the stop reaches the others.
        prog.stdin.write("spawn\n")
        prog.stdin.flush()
        expect(prog.stdout.readline().strip() == "spawning", "the program spawns")
        time.sleep(0.1)
        tids = [int(t) for t in os.listdir("/proc/%d/task" % prog.pid) if int(t) != prog.pid]
        stopped_at = time.monotonic()
        os.kill(tids[0], signal.SIGSTOP)
        time.sleep(0.6)
        with open("/proc/%d/stat" % prog.pid) as f:
            main_state = f.read().rpartition(")")[2].split()[0]
        continued_at = time.monotonic()
        os.kill(prog.pid, signal.SIGCONT)
        thread_stop_ms = (continued_at - stopped_at) * 1e3
        os.close(os.open(fifo, os.O_WRONLY))  # the child goes on, and so does the main thread
        # (Stopped only if it was not in its call yet when the stop came.)
        print("main thread at the end of the second stop: %s" % ("stopped" if main_state == "T" else "in its call"))
        _, err = rec.communicate(timeout=60)
        expect(rec.returncode == 0, "swprof record: %s" % err)
    finally:
        harness.kill_quietly(prog)
    off = ctx.analyze_json(out, "--mode", "offcpu", "--by-thread", "--min-percent", "0")
    # Two switches per thread per stop (into the stop and out of it), each stop's edges as the test
    # saw them (the signals take effect a scheduler's wake-up later), and the second stop told up
    # to 10 ms late by a thread's own state (the recorder's kStopLagUs).
    tolerance = harness.sampling_tolerance(off, transitions=4) + 5 + 10
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
        if label == "MainThread":
            # Stopped the first time; the second, only if its call returned before the end.
            low, high = process_stop_ms, process_stop_ms + (thread_stop_ms if main_state == "T" else 0)
        else:
            low = high = process_stop_ms + thread_stop_ms
        expect(low - tolerance <= got <= high + tolerance,
               "%s: %.1f ms under <off-CPU: stopped>, stopped for %.1f-%.1f ms (±%.1f)" % (name, got, low, high, tolerance))
        print("ok: %-40s %.1f ms stopped of %.1f-%.1f (±%.1f)" % (name[:40], got, low, high, tolerance))
    expect(seen == 7, "7 threads in the recording, not %d" % seen)


if __name__ == "__main__":
    harness.main(test, __doc__)
