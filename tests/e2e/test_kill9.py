"""A recorder killed with SIGKILL leaves a file whose complete chunks analyze still reads, saying
the file was cut short."""
import os
import signal
import subprocess
import time

import harness
from harness import expect, find_path


def test(ctx):
    sample = os.path.join(harness.SAMPLES, "nested_sleeps.py")
    out = ctx.path("killed.swp")
    rec = subprocess.Popen([ctx.swprof, "record", "-q", "-o", out, "--", ctx.python, sample, "100"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(3.0)  # chunks are flushed at least once a second
        os.kill(rec.pid, signal.SIGKILL)
        rec.wait(timeout=10)
    finally:
        # The program outlives its killed recorder: stop it too.
        try:
            os.killpg(rec.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    size = os.path.getsize(out)
    expect(size > 100, "the file holds data (%d bytes)" % size)
    text = ctx.run_swprof("analyze", out)
    expect(text.returncode == 0, "analyze reads the prefix: %s" % text.stderr)
    expect("ends early" in text.stdout, "the report says the file was cut short")
    doc = ctx.analyze_json(out)
    expect(doc["recording"]["truncated"] is True, "JSON says truncated")
    expect(doc["recording"]["samples"] >= 100, "samples of the first seconds: %d" % doc["recording"]["samples"])
    expect(find_path(doc["roots"], ["methodB", "methodC"], ctx.version), "methodC under methodB in the prefix")
    # A cut in the middle of a record reads the same prefix.
    data = open(out, "rb").read()
    cut = ctx.path("cut.swp")
    open(cut, "wb").write(data[: len(data) - 7])
    doc = ctx.analyze_json(cut)
    expect(doc["recording"]["truncated"], "a file cut mid-record is truncated, not corrupt")


if __name__ == "__main__":
    harness.main(test, __doc__)
