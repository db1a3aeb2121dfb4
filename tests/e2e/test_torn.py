"""Torn reads: a program alternating two call chains that never mix (samples/two_chains.py), with
the profiler and the program pinned to different CPU cores so that they truly run at once, at a
1 ms interval. No recorded stack may mix the two chains (at most 0.1 % of the time, which one
sample in a thousand would exceed); the summary counts the reads that were torn and read again.

Each chain is called, runs and returns in about half a microsecond, faster than one system call
reads a stack twice, so most first reads are torn. A torn sample is read again, but what a retry
confirms must stand for the moment the first read saw: main itself runs between the calls for a
few percent of the time, and accepting whatever stack confirms (main's, the easiest) once showed
it 28-54 % of the time. Main's own share is held near what it is (3.11+: under a fifth; 3.8-3.10,
whose frame objects are read one by one, under two fifths: 13-28 % measured), and the time under main, chains and
<frames changed while read> together, holds nearly all the program's."""
import os
import subprocess

import harness
from harness import expect

PROGRAM = os.path.join(harness.SAMPLES, "two_chains.py")
CHAINS = [["p1", "p2", "p3", "p4"], ["q1", "q2", "q3", "q4"]]


def test(ctx):
    cpus = sorted(os.sched_getaffinity(0))
    pin = lambda i: ["taskset", "-c", str(cpus[i % len(cpus)])] if len(cpus) > 1 else []
    if len(cpus) < 2:
        print("note: one CPU only: the program and the profiler cannot run at the same instant")
    out = ctx.path("chains.swp")
    proc = subprocess.run(pin(0) + [ctx.swprof, "record", "-q", "-i", "1ms", "-o", out, "--"] + pin(1) +
                          [ctx.python, PROGRAM, "--seconds", "3"], capture_output=True, text=True, timeout=120)
    expect(proc.returncode == 0, "record failed: %s" % proc.stderr)
    folded = ctx.run_swprof("analyze", "--format", "collapsed", out).stdout
    total = mixed = in_chains = unsteady = main_own = under_main = 0
    worst = []
    for line in folded.splitlines():
        path, n = line.rsplit(" ", 1)
        n = int(n)
        names = [f.split(" (")[0] for f in path.split(";")]
        total += n
        chain = [x for x in names if x[:1] in "pq" and x[1:] in "1234" and len(x) == 2]
        if chain:
            in_chains += n
        if "<frames changed while read>" in names:
            unsteady += n
        if "main" in names:
            under_main += n
            main_own += n * (names[-1] == "main")
        if chain and not any(chain == c[:len(chain)] for c in CHAINS):
            mixed += n
            worst.append((n, ";".join(names[-6:])))
    pct = lambda x: 100.0 * x / max(total, 1)
    frame_objects = ctx.version < (3, 11)
    limit = 40 if frame_objects else 20
    expect(pct(main_own) < limit, "main's own share is %.1f %% of the time (at most %d %%): retries favour the caller"
           % (pct(main_own), limit))
    # (Imports before main and the interpreter's exit take a few percent.)
    expect(pct(under_main) > 80, "the time under main is %.1f %% of the program's" % pct(under_main))
    share = pct(mixed)
    print("ok: impossible stacks %.3f %% of the time (%d of %d us); main's own %.1f %%, chains %.1f %%, inner "
          "frames unread (kept changing) %.1f %%" % (share, mixed, total, pct(main_own), pct(in_chains), pct(unsteady)))
    expect(share <= 0.1, "impossible stacks hold %.3f %% of the time: %s" % (share, sorted(worst)[-3:]))
    doc = ctx.analyze_json(out)["recording"]
    expect(doc["torn_retried"] > 0, "torn reads counted: %s" % doc)
    expect("torn " in proc.stderr, "the summary says how many reads were torn:\n%s" % proc.stderr)
    print("ok: %d samples read again after a torn read, %d kept only their outer frames"
          % (doc["torn_retried"], doc["unsteady"]))


if __name__ == "__main__":
    harness.main(test, __doc__)
