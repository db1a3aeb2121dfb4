"""--pid attaches to a running program, profiles it for --duration, and leaves it running
untouched: it finishes normally with its own exit status. Attaching works while the program's
threads start and end (samples/stress.py, as a thread-per-request server): every `dump --pid` and
`record --pid` of 40 finds the runtime (CI once refused one: the newest thread state belonged to a
thread ending at that moment)."""
import os
import subprocess
import time

import harness
from harness import expect, find_path


def test_threads_come_and_go(ctx):
    target = subprocess.Popen([ctx.python, os.path.join(harness.SAMPLES, "stress.py"), "--seconds", "60"],
                              stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        refused = []
        for i in range(40):
            if i % 8 == 7:
                proc = ctx.record(ctx.path("churn.swp"), pid=target.pid, options=["--duration", "0.1s"], check=False)
            else:
                proc = ctx.run_swprof("dump", "--pid", str(target.pid))
            if proc.returncode != 0:
                refused.append(proc.stderr.strip())
        expect(target.poll() is None, "the target kept running")
        expect(not refused, "%d of 40 attaches refused: %s" % (len(refused), refused[:3]))
        print("ok: 40 attaches (35 dump, 5 record) to a program whose threads start and end")
    finally:
        harness.kill_quietly(target)


def test(ctx):
    test_threads_come_and_go(ctx)
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    target = subprocess.Popen([ctx.python, sample, "35"])  # 3.5 s
    try:
        time.sleep(0.5)
        out = ctx.path("attach.swp")
        proc = ctx.record(out, pid=target.pid, options=["--duration", "1.5s"])
        expect("duration reached" in proc.stderr, "summary says why it stopped: %s" % proc.stderr)
        expect(target.poll() is None, "the target kept running while attached")
        doc = ctx.analyze_json(out)
        expect(doc["recording"]["pid"] == target.pid, "recording names the pid")
        expect(doc["recording"]["stop_reason"] == "duration reached" and doc["recording"]["exit_status"] is None,
               "the file says why it stopped, and no exit status: %s %s"
               % (doc["recording"]["stop_reason"], doc["recording"]["exit_status"]))
        expect(1400 <= doc["recording"]["duration_ms"] <= 1700, "duration %.0f ms" % doc["recording"]["duration_ms"])
        path = find_path(doc["roots"], ["main", "methodA", "methodB", "methodD"], ctx.version)
        expect(path is not None, "methodD under methodB")
        expect(target.wait(timeout=30) == 0, "the target finished normally")
    finally:
        harness.kill_quietly(target)


if __name__ == "__main__":
    harness.main(test, __doc__)
