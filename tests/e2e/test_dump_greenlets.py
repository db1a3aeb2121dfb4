"""swprof dump lists parked gevent greenlets under their thread (samples/parked_greenlets.py):
three workers waiting on an Event, each in its own function at its wait line, a sleeper inside
gevent.sleep (with its locals under --locals), and the main greenlet waiting in joinall, all on
the main thread (gevent's hub says which thread), every stack read whole. The greenlets are found
on the GC's lists; the note says how many objects that search went through."""
import os
import subprocess
import sys

import harness
from harness import expect
from test_dump import dump, start

SAMPLE = os.path.join(harness.SAMPLES, "parked_greenlets.py")


def test(ctx):
    if subprocess.run([ctx.python, "-c", "import gevent"], capture_output=True).returncode != 0:
        print("SKIP: gevent is not installed for %s (Debian: apt-get install python3-gevent; "
              "../shared/tools/get-python --gevent 3.14)" % ctx.python)
        sys.exit(harness.SKIP)
    program = start(ctx, [SAMPLE], ctx.path("greenlets.ready"))
    try:
        doc = dump(ctx, program.pid, "--format", "json", "--locals")
        expect(not doc["greenlets"], "every greenlet is under its thread: %s" % doc["greenlets"])
        main = doc["threads"][0]
        greenlets = main["greenlets"]
        expect(all(g["frames_read"] for g in greenlets), "every parked stack read: %s" % greenlets)
        innermost = sorted(g["frames"][-1]["function"] for g in greenlets if not g["main"])
        expect(innermost == ["sleep", "worker_a", "worker_b", "worker_c"], "parked greenlets: %s" % innermost)
        for name in ("worker_a", "worker_b", "worker_c"):
            g = [g for g in greenlets if g["frames"][-1]["function"] == name][0]
            line = harness.line_of(SAMPLE, "def %s" % name) + 1
            expect(g["frames"][-1]["line"] == line and len(g["frames"]) == 1, "%s waits at line %d: %s" % (name, line, g))
        sleeper = [g for g in greenlets if g["frames"][-1]["function"] == "sleep"][0]
        expect(sleeper["frames"][0]["function"] == "sleeper", "sleep is called by sleeper: %s" % sleeper["frames"])
        seconds = [l for l in sleeper["frames"][-1]["locals"] if l["name"] == "seconds"]
        expect(seconds and seconds[0]["value"] == "3600", "gevent.sleep's seconds = 3600: %s" % seconds)
        mains = [g for g in greenlets if g["main"]]
        expect(len(mains) == 1 and [f["function"] for f in mains[0]["frames"]] == ["<module>", "main"],
               "the main greenlet waits in main: %s" % mains)
        expect(any("greenlet" in n and "searched" in n for n in doc["notes"]), "the search is noted: %s" % doc["notes"])
        text = dump(ctx, program.pid)
        expect(text.count("), parked:") == 5, "five parked greenlets in the text:\n%s" % text)
        print("ok: %d parked greenlets with their stacks under the main thread; %s" % (len(greenlets), doc["notes"]))
    finally:
        program.kill()
        program.wait()


if __name__ == "__main__":
    harness.main(test, __doc__)
