"""record --subprocesses: every descendant Python process in one recording.

- pool: samples/worker_pool.py with multiprocessing's fork, spawn and forkserver methods, launched.
  Every worker is a process of the recording (analyze --by-process) with its time in `work` as the
  program measured it (tasks x 0.4 s, within two sample weights and 30 ms), so it was followed
  from its first task; a Python child started with subprocess.run is there with `child_work`; the
  shell it runs is listed as not Python; --process PID keeps one worker's samples only.
- mixed: children on another supported interpreter (followed with its own layout) and on 3.7
  (listed with its version, not followed), neither fatal.
- gunicorn (Debian's, for /usr/bin/python3.11): a pre-fork server with 4 sync workers serving
  samples/wsgi_app.py, attached to by the master's pid while its workers already run, under
  `ab -n 200 -c 4`, with --entry handle: every worker that served a request is in the recording,
  and each one's segments are the requests its handler logged (two back to back with no sample
  between may be one, visibly longer than any request: at most 2 %).
"""
import json
import os
import shutil
import subprocess
import sys
import time

import harness
from harness import expect

POOL = os.path.join(harness.SAMPLES, "worker_pool.py")
REQUESTS = 200


def roots_by_pid(doc):
    out = {}
    for r in doc["roots"]:
        expect(r["function"].startswith("process "), "a process at the root: %s" % r["function"])
        out[int(r["function"].split()[1].rstrip(":"))] = r
    return out


def time_in(node, name):
    """ms under nodes called `name` (not counting one inside another)."""
    if node["function"].split(" (")[0] == name:
        return node["total_ms"]
    return sum(time_in(c, name) for c in node.get("children", []))


def part_pool(ctx):
    for method in ("fork", "spawn", "forkserver"):
        out, report = ctx.path(method + ".swp"), ctx.path(method + ".json")
        proc = ctx.record(out, command=[ctx.python, POOL, "--method", method, "--report", report],
                          options=["--subprocesses", "-i", "10ms"], timeout=180)
        rep = json.load(open(report))
        doc = ctx.analyze_json(out, "--by-process", "--min-percent", "0")
        heaviest = doc["recording"]["weight_max_ms"]
        slack = 2 * heaviest + 30
        roots = roots_by_pid(doc)
        expect(rep["parent"] in roots, "%s: the program itself is a process of the recording: %s" % (method, sorted(roots)))
        for w in rep["workers"]:
            expect(w["pid"] in roots, "%s: worker %d is in the recording: %s" % (method, w["pid"], sorted(roots)))
            expected = w["tasks"] * rep["task_seconds"] * 1000
            got = time_in(roots[w["pid"]], "work")
            expect(abs(got - expected) <= slack, "%s: worker %d: %.0f ms in work, it worked %.0f ms (within %.0f)"
                   % (method, w["pid"], got, expected, slack))
        child = roots.get(rep["child"])
        expect(child is not None, "%s: the Python child %d is in the recording" % (method, rep["child"]))
        got = time_in(child, "child_work")
        expect(abs(got - rep["task_seconds"] * 1000) <= slack, "%s: the child: %.0f ms in child_work" % (method, got))
        line = next((l for l in proc.stderr.splitlines() if l.strip().startswith("processes ")), "")
        expect("%d sh -c" % rep["shell"] in line and "not Python" in line,
               "%s: the summary lists the shell as not Python: %s" % (method, line))
        one = rep["workers"][0]["pid"]
        only = ctx.analyze_json(out, "--process", str(one), "--by-process", "--min-percent", "0")
        expect(list(roots_by_pid(only)) == [one], "%s: --process %d keeps that worker only" % (method, one))
        print("ok: %s: %d workers (%s ms in work), the Python child and the shell's note"
              % (method, len(rep["workers"]), ", ".join("%.0f" % time_in(roots[w["pid"]], "work") for w in rep["workers"])))


MIXED = """
import subprocess, sys
for argv in sys.argv[1:]:
    subprocess.run(argv.split("|"), check=True)
"""
CHILD = "import time\ndef child_work():\n    end = time.monotonic() + 0.4\n    while time.monotonic() < end:\n        pass\nchild_work()\n"


def part_mixed(ctx):
    """Children on other interpreters: a supported one is followed with its own layout, an
    unsupported one (3.7) is listed with its version, and neither stops the recording."""
    import glob
    pythons = sorted(glob.glob(os.path.join(harness.pyenv_root(), "versions", "3.*", "bin", "python3.*[0-9]")))
    other = next((p for p in pythons if not os.path.basename(p).endswith("%d.%d" % ctx.version)
                  and os.path.basename(p)[len("python"):] in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")), None)
    old = next((p for p in pythons if os.path.basename(p) == "python3.7"), None)
    if not other:
        print("SKIP: no second supported interpreter under pyenv")
        sys.exit(harness.SKIP)
    children = ["%s|-c|%s" % (other, CHILD)]
    if old:
        children.append("%s|-c|import time; time.sleep(0.3)" % old)
    else:
        print("note: no CPython 3.7 under pyenv: the unsupported child is not run")
    out = ctx.path("mixed.swp")
    proc = ctx.record(out, command=[ctx.python, "-c", MIXED] + children, options=["--subprocesses", "-i", "10ms"])
    doc = ctx.analyze_json(out, "--by-process", "--min-percent", "0")
    processes = doc["recording"]["processes"]
    followed = [p for p in processes if p["python"]]
    version = subprocess.run([other, "-c", "import platform; print(platform.python_version())"], capture_output=True,
                             text=True).stdout.strip()
    mine = [p for p in followed if p["python"] == version]
    expect(mine, "the child on %s is followed with its own version: %s" % (version, processes))
    roots = roots_by_pid(doc)
    got = time_in(roots[mine[-1]["pid"]], "child_work")
    slack = 2 * doc["recording"]["weight_max_ms"] + 30
    expect(abs(got - 400) <= slack, "the %s child: %.0f ms in child_work" % (version, got))
    if old:
        refused = [p for p in processes if "unsupported Python version 3.7" in p["note"]]
        expect(refused, "the 3.7 child is listed with its version: %s" % processes)
        line = next((l for l in proc.stderr.splitlines() if l.strip().startswith("processes ")), "")
        expect("unsupported Python version 3.7" in line, "the summary says so: %s" % line)
    print("ok: a %s child followed (%.0f ms in child_work)%s" % (version, got, ", a 3.7 child listed as unsupported" if old else ""))


def part_gunicorn(ctx):
    gunicorn = shutil.which("gunicorn")
    if not gunicorn or os.path.realpath(ctx.python) != os.path.realpath("/usr/bin/python3.11"):
        print("SKIP: Debian's gunicorn (apt-get install gunicorn) runs on /usr/bin/python3.11 only")
        sys.exit(harness.SKIP)
    if not shutil.which("ab"):
        print("SKIP: ab (apache2-utils) is needed")
        sys.exit(harness.SKIP)
    log, out = ctx.path("requests.jsonl"), ctx.path("gunicorn.swp")

    def drive(url, rec):
        harness.run_ab(url, REQUESTS, 4)
        time.sleep(0.2)

    summary = harness.record_gunicorn(ctx, out, log, 4, "5ms", drive)
    served = [json.loads(l) for l in open(log)]
    expect(len(served) == REQUESTS, "the app served %d requests" % len(served))
    by_worker = {}
    for r in served:
        by_worker[r["pid"]] = by_worker.get(r["pid"], 0) + 1
    roots = roots_by_pid(ctx.analyze_json(out, "--by-process", "--min-percent", "0"))
    for pid in by_worker:
        expect(pid in roots, "worker %d (served %d) is in the recording: %s" % (pid, by_worker[pid], sorted(roots)))
    segments = ctx.analyze_json(out, "--segments")["segments"]
    per_worker, merged, stretched = {}, 0, 0
    longest = max(r["ms"] for r in served)
    for s in segments:
        per_worker[s["thread"]] = per_worker.get(s["thread"], 0) + 1  # (a sync worker serves on its main thread)
        # Two requests back to back on one worker, whose calls have the same frame, arguments at
        # the same addresses (freed and reused) and the same locals bound at the two samples around
        # the switch, are one call to a sampler: only when no sample fell between them (the
        # recorder late by a request's sleep). Such a segment is longer than any request: surely
        # so when even what the samples saw of it (duration_min_ms) is. One only estimated longer
        # may also be one request whose end the recorder saw late, held up meanwhile (the ASan
        # build, CI: 5 of 200 estimated longer, none missing, each worker's count exact).
        merged += s["duration_min_ms"] > longest + 10
        stretched += s["duration_ms"] > longest + 10
    # (Attached before the requests, stopped after them: none was cut.)
    expect(not any(s["began_before_recording"] or not s["complete"] for s in segments),
           "no request cut by the recording: %s" % [s for s in segments if s["began_before_recording"] or not s["complete"]])
    for pid, n in by_worker.items():
        expect(per_worker.get(pid, 0) <= n, "worker %d: %d segments for %d requests" % (pid, per_worker.get(pid, 0), n))
    missing = REQUESTS - len(segments)
    # A request that began and ended while the recorder was held up (the recording's stalls_ms;
    # the ASan build: stalls up to 68 ms against 30 ms requests) was not seen at all.
    stalls = ctx.analyze_json(out)["recording"]["stalls_ms"]
    shortest = min(r["ms"] for r in served)
    unseen = sum(1 for a, b in stalls if b - a >= shortest)
    expect(missing <= stretched + unseen and merged <= REQUESTS // 50,
           "each worker's segments are its requests (%d missing, %d surely merged, %d estimated longer than any "
           "request, %d stalls a request fits in): segments %s, requests %s"
           % (missing, merged, stretched, unseen, sorted(per_worker.items()), sorted(by_worker.items())))
    line = next((l for l in summary.splitlines() if l.strip().startswith("processes ")), "")
    expect(line.strip().startswith("processes 4 followed"), "the summary lists the 4 workers: %s" % line)
    print("ok: gunicorn: %d requests over %d workers (%s), %d segments (%d of two requests back to back, %d "
          "estimated longer than any request)" % (len(served), len(by_worker), sorted(by_worker.values()), len(segments),
                                                 merged, stretched))


def test(ctx):
    {"pool": part_pool, "gunicorn": part_gunicorn, "mixed": part_mixed}[ctx.args.part](ctx)


if __name__ == "__main__":
    harness.main(test, __doc__, extra_args=[(("--part",), {"required": True, "choices": ["pool", "gunicorn", "mixed"]})])
