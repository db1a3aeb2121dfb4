"""What following requests that wait costs the program: a switch-heavy gevent program (greenlets
that each make a short request-like call yielding with gevent.sleep(0), ~50 000 switches a second
or more) and an await-heavy asyncio one (tasks awaiting asyncio.sleep(0)), each run alone and under
`swprof record --entry request` at 100 Hz and 1 kHz (uprobes on greenlet creation and start, every
task read each tick), interleaved, medians. Reports the program's slowdown against its runs alone,
its switch/await rate, and swprof's own CPU per second of recording. Not part of ctest: the
machine's noise matters, run it on a quiet machine (the spread is printed).

    python3 tests/bench/waiting_cost.py --swprof build/swprof [--python debian-3.11 --python sid-3.14]
        [--runs 5] [--seconds 2]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

# Each program prints its own run time and how many switches/awaits it made. Requests arrive in
# waves, each a fresh greenlet or task (as a server makes one per connection).
GEVENT = r"""
import sys, time
import gevent
seconds, width = float(sys.argv[1]), int(sys.argv[2])
switches = 0
def request(n):
    global switches
    x = 0
    for i in range(20):
        for j in range(200):
            x += j
        gevent.sleep(0)
        switches += 2
    return x
start, cpu = time.perf_counter(), time.process_time()
waves = int(seconds * 100)
for w in range(waves):
    gevent.joinall([gevent.spawn(request, i) for i in range(width)])
print("%.6f %.6f %d" % (time.perf_counter() - start, time.process_time() - cpu, switches))
"""

ASYNCIO = r"""
import asyncio, sys, time
seconds, width = float(sys.argv[1]), int(sys.argv[2])
awaits = 0
async def request(n):
    global awaits
    x = 0
    for i in range(20):
        for j in range(200):
            x += j
        await asyncio.sleep(0)
        awaits += 1
    return x
async def main():
    for w in range(int(seconds * 100)):
        await asyncio.gather(*(request(i) for i in range(width)))
start, cpu = time.perf_counter(), time.process_time()
asyncio.run(main())
print("%.6f %.6f %d" % (time.perf_counter() - start, time.process_time() - cpu, awaits))
"""


def run_once(python, program, seconds, width, swprof=None, interval=None):
    """(the program's run time, its CPU time, its switches, swprof's CPU seconds or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = [python, "-c", program, str(seconds), str(width)]
        if swprof:
            argv = [swprof, "record", "-q", "-i", interval, "--entry", "request", "--max-parallel", "1000",
                    "-o", os.path.join(tmp, "out.swp"), "--"] + argv
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit("failed: %s\n%s" % (" ".join(argv[:8]), proc.stderr[-800:]))
        elapsed, cpu, switches = proc.stdout.split()[-3:]
        # Children's rusage counts swprof and the program together (the program's whole run, its
        # start-up included): swprof's share is what the same program costs beyond a run alone.
        total_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return float(elapsed), float(cpu), int(switches), total_cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--python", action="append")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--width", type=int, default=50, help="concurrent requests per wave")
    args = parser.parse_args()
    pythons = args.python or ["debian-3.11", "sid-3.14", "pyenv-3.12"]
    print("%-12s %-8s %-10s %11s %11s %12s %13s" % ("python", "program", "interval", "wall", "its CPU", "switches/s",
                                                     "swprof CPU"))
    for name in pythons:
        python, _ = harness.resolve_python(name)
        if not python:
            print("%-12s skipped: not installed" % name)
            continue
        has_gevent = subprocess.run([python, "-c", "import gevent"], capture_output=True).returncode == 0
        for label, program in (("gevent", GEVENT), ("asyncio", ASYNCIO)):
            if label == "gevent" and not has_gevent:
                continue
            alone, runs = [], {"10ms": [], "1ms": []}
            for _ in range(args.runs):
                alone.append(run_once(python, program, args.seconds, args.width))
                for interval in runs:
                    runs[interval].append(run_once(python, program, args.seconds, args.width, args.swprof, interval))
            med = lambda results, i: statistics.median(r[i] for r in results)
            base_wall, base_cpu, base_total = med(alone, 0), med(alone, 1), med(alone, 3)
            rate = statistics.median(r[2] / r[0] for r in alone)
            spread = (max(r[0] for r in alone) - min(r[0] for r in alone)) / base_wall * 100
            for interval, results in runs.items():
                wall, cpu, total = med(results, 0), med(results, 1), med(results, 3)
                own = total - cpu - (base_total - base_cpu)  # beyond the program's CPU and its start-up
                print("%-12s %-8s %-10s %+10.1f%% %+10.1f%% %12.0f %12.1f%%   (alone %.3f s, spread %.1f%%)"
                      % (name, label, interval, (wall / base_wall - 1) * 100, (cpu / base_cpu - 1) * 100, rate,
                         own / wall * 100, base_wall, spread))


if __name__ == "__main__":
    main()
