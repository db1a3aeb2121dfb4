"""Torn reads: a program alternating two call chains that never mix (samples/two_chains.py), with
the profiler and the program pinned to different CPU cores so that they truly run at once, at a
1 ms interval. No recorded stack may mix the two chains (at most 0.1 % of the time, which one
sample in a thousand would exceed); the summary counts the reads that were torn and read again."""
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
    total = mixed = in_chains = unsteady = 0
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
        if chain and not any(chain == c[:len(chain)] for c in CHAINS):
            mixed += n
            worst.append((n, ";".join(names[-6:])))
    # Known bias (open in issue 10's note): on 3.11, when most first reads are torn, re-reads that
    # confirm often confirm the moment between two chains (main alone), so the chains' share has
    # dropped from over half to 18-30 % in some runs. No stack mixes the chains (checked below).
    expect(in_chains > total // 7, "the chains hold a good share of the time: %d of %d us" % (in_chains, total))
    share = 100.0 * mixed / total
    print("ok: impossible stacks %.3f %% of the time (%d of %d us); inner frames unread (kept changing) %.1f %%"
          % (share, mixed, total, 100.0 * unsteady / total))
    expect(share <= 0.1, "impossible stacks hold %.3f %% of the time: %s" % (share, sorted(worst)[-3:]))
    doc = ctx.analyze_json(out)["recording"]
    expect(doc["torn_retried"] > 0, "torn reads counted: %s" % doc)
    expect("torn " in proc.stderr, "the summary says how many reads were torn:\n%s" % proc.stderr)
    print("ok: %d samples read again after a torn read, %d kept only their outer frames"
          % (doc["torn_retried"], doc["unsteady"]))


if __name__ == "__main__":
    harness.main(test, __doc__)
