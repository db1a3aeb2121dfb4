"""A multi-threaded CPU-bound program: every thread is found, with its name and its function.
And daemon threads at shutdown: they exit when the interpreter finalises, their thread states
(frames and all) stay listed, and a thread gone is not sampled on (it was shown as "thread 0",
its last stack kept for as long as the finalisation ran). And a thread whose ident another thread
has taken in threading._active (glibc gives a new thread the struct pthread, and so the ident, of
one just ended) is not named after that other thread (CI: a threaded server's request thread
named after the next request's)."""
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
    ident_taken(ctx)


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


def by_thread(ctx, name, source):
    """Records the program `source` (written to NAME.py) and returns its --by-thread tree."""
    program, out = ctx.path(name + ".py"), ctx.path(name + ".swp")
    with open(program, "w") as f:
        f.write(source)
    ctx.record(out, [ctx.python, program])
    return ctx.analyze_json(out, "--by-thread", "--min-percent", "0")


def daemons_at_exit(ctx):
    doc = by_thread(ctx, "daemons", DAEMONS_AT_EXIT)
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


# What threading._active holds when a thread is about to end and a new one has been given its
# ident: the new Thread (its own name and native id) under that ident. Made here at once, as the
# thread starts, rather than left to a race.
IDENT_TAKEN = r"""
import threading, time

def spin(seconds):
    newcomer = threading.Thread(name="took-its-ident")
    newcomer._ident = threading.get_ident()
    newcomer._native_id = threading.main_thread().native_id  # another OS thread's
    threading._active[threading.get_ident()] = newcomer
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))

t = threading.Thread(target=spin, args=(1.0,), name="ending")
t.start()
t.join()
"""


def ident_taken(ctx):
    doc = by_thread(ctx, "ident_taken", IDENT_TAKEN)
    roots = [r["function"] for r in doc["roots"]]
    spinning = [r for r in doc["roots"] if any(n["function"] == "spin" for n in harness.all_nodes(r["children"]))]
    expect(len(spinning) == 1, "one thread runs spin: %s" % roots)
    expect(not spinning[0]["function"].endswith("(took-its-ident)"),
           "the thread is not named after the one that took its ident: %s" % spinning[0]["function"])
    print("ok: a thread whose ident another took is not named after it: %s" % spinning[0]["function"])


if __name__ == "__main__":
    harness.main(test, __doc__)
