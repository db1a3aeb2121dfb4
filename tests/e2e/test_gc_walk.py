"""The GC's generation lists walked from outside (src/live/gc_walk.h: where swprof dump finds
parked greenlets), on every interpreter: a program makes 3000 instances of a class, freezes
the first 1000 into the permanent generation (gc.freeze), forces a collection so the next 1000
reach the oldest generation, keeps the last 1000 young, then sleeps; the walk, read by
tests/tools/gc_objects, finds exactly as many of them as gc.get_objects() does, and every list
whole."""
import json
import subprocess

import harness
from harness import expect

PROGRAM = r"""
import gc, sys, time
class Marker:
    pass
frozen = [Marker() for _ in range(1000)]
gc.freeze()
old = [Marker() for _ in range(1000)]
gc.collect()
young = [Marker() for _ in range(1000)]
count = sum(1 for o in gc.get_objects() if type(o) is Marker) + sum(1 for o in frozen if gc.is_tracked(o))
print(count, flush=True)
time.sleep(3600)
"""


def test(ctx):
    program = subprocess.Popen([ctx.python, "-c", PROGRAM], stdout=subprocess.PIPE, text=True)
    try:
        expected = int(program.stdout.readline())
        tool = subprocess.run([ctx.args.tool, str(program.pid), "Marker"], capture_output=True, text=True, timeout=60)
        expect(tool.returncode == 0, "gc_objects failed (%d): %s" % (tool.returncode, tool.stderr))
        found = json.loads(tool.stdout)
        expect(found["complete"], "every list followed back to its head: %s" % found)
        expect(found["matching"] == 3000 and expected == 3000,
               "3000 Markers tracked: the walk finds %d, the program %d" % (found["matching"], expected))
        print("ok: %d Markers among %d objects the GC tracks (Python %s)" % (found["matching"], found["objects"],
                                                                             found["python"]))
    finally:
        program.kill()
        program.wait()


if __name__ == "__main__":
    harness.main(test, __doc__, [(["--tool"], {"required": True})])
