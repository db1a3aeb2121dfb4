"""A multi-threaded CPU-bound program: every thread is found, with its name and its function."""
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


if __name__ == "__main__":
    harness.main(test, __doc__)
