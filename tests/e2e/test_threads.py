"""A multi-threaded CPU-bound program: every thread is found, with its name and its function.
And daemon threads at shutdown: they exit when the interpreter finalises, their thread states
(frames and all) stay listed, and a thread gone is not sampled on (it was shown as "thread 0",
its last stack kept for as long as the finalisation ran)."""
import os

import harness
from harness import expect

THREADS = 4


def test(ctx):
    sample = os.path.join(harness.SAMPLES, "cpu_threads.py")
    out = ctx.path("threads.swp")
    ctx.record(out, [ctx.python, sample, "--threads", str(THREADS), "--seconds", "1.5"])
    doc = ctx.analyze_json(out, "--by-thread")
    roots = {r["function"]: r for r in doc["roots"]}
    jobs = ["count_primes", "fibonacci", "sum_squares"]
    for i in range(THREADS):
        name = "worker-%d" % i
        matching = [r for f, r in roots.items() if f.endswith("(%s)" % name)]
        expect(len(matching) == 1, "thread %s not found among %s" % (name, sorted(roots)))
        functions = {n["function"] for n in harness.all_nodes(matching[0]["children"])}
        expect(jobs[i % len(jobs)] in functions and "worker" in functions,
               "%s runs %s, saw %s" % (name, jobs[i % len(jobs)], sorted(functions)))
        expect(matching[0]["total_ms"] > 1000, "%s sampled for %.0f ms only" % (name, matching[0]["total_ms"]))
    expect(any(f.endswith("(MainThread)") for f in roots), "MainThread not found among %s" % sorted(roots))
    # Thread ids are OS thread ids: distinct, and --thread selects one.
    tids = [int(f.split()[1]) for f in roots]
    expect(len(set(tids)) == len(tids) == THREADS + 1, "thread ids %s" % tids)
    one = ctx.analyze_json(out, "--thread", str(tids[0]))
    expect(abs(sum(r["total_ms"] for r in one["roots"]) - roots[list(roots)[0]]["total_ms"]) < 0.01,
           "--thread selects that thread's time")
    daemons_at_exit(ctx)


# Daemon threads deep in a call when the program ends; then finalisation runs Python for 300 ms
# (an object's __del__), after the daemon threads exited on their way back to the GIL.
DAEMONS_AT_EXIT = r"""
import sys, threading, time, types

def napping(depth):
    if depth:
        return napping(depth - 1)
    while True:
        time.sleep(0.001)

class SlowToFinalise:
    def __del__(self, monotonic=time.monotonic):
        end = monotonic() + 0.3
        while monotonic() < end:
            pass

# Held by a module of its own: __main__'s globals outlive the finalisation (the daemon threads'
# frames hold them); a module in sys.modules is cleared then.
holder = types.ModuleType("slow_to_finalise")
holder.finaliser = SlowToFinalise()
sys.modules["slow_to_finalise"] = holder
del holder
daemons = [threading.Thread(target=napping, args=(10,), name="daemon-%d" % i, daemon=True) for i in range(3)]
for t in daemons:
    t.start()
time.sleep(0.3)
"""


def daemons_at_exit(ctx):
    program, out = ctx.path("daemons.py"), ctx.path("daemons.swp")
    with open(program, "w") as f:
        f.write(DAEMONS_AT_EXIT)
    ctx.record(out, [ctx.python, program])
    doc = ctx.analyze_json(out, "--by-thread", "--min-percent", "0")
    roots = [r["function"] for r in doc["roots"]]
    for i in range(3):
        mine = [f for f in roots if f.endswith("(daemon-%d)" % i)]
        expect(len(mine) == 1, "daemon-%d is one thread: %s" % (i, roots))
        expect(int(mine[0].split()[1]) > 0, "daemon-%d has a thread id: %s" % (i, mine[0]))
    # Sampled while they lived (0.3 s, less their start), not through the 300 ms after they exited.
    for r in doc["roots"]:
        if "(daemon-" in r["function"]:
            expect(r["total_ms"] <= 300 + 3 * doc["recording"]["weight_max_ms"],
                   "%s sampled for %.1f ms: after it exited" % (r["function"], r["total_ms"]))
    print("ok: three daemon threads, each sampled while it lived: %s" % ", ".join(
        "%.0f ms" % r["total_ms"] for r in doc["roots"] if "(daemon-" in r["function"]))


if __name__ == "__main__":
    harness.main(test, __doc__)
