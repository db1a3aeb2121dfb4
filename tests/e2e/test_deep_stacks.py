"""Deep stacks: a recursion 3000 frames deep. Cut at --max-depth (2048 by default), a stack keeps
its root and its innermost frames with a `<N frames cut>` frame between them, so the tree is
rooted where the program is; a larger --max-depth keeps it whole; the summary says how many
samples were cut."""
import os
import re

import harness
from harness import expect

PROGRAM = os.path.join(harness.SAMPLES, "deep_recursion.py")


def chain_of(doc):
    """The heaviest path, root to leaf, as function names."""
    out, nodes = [], doc["roots"]
    while nodes:
        n = max(nodes, key=lambda c: c["total_ms"])
        out.append(n["function"])
        nodes = n["children"]
    return out


def test(ctx):
    depth = 3000
    out = ctx.path("deep.swp")
    proc = ctx.record(out, [ctx.python, PROGRAM, "--depth", str(depth), "--seconds", "1.5"])
    expect("deep " in proc.stderr and "--max-depth" in proc.stderr, "summary says stacks were cut: %s" % proc.stderr)
    folded = ctx.run_swprof("analyze", "--format", "collapsed", out).stdout
    # (The heaviest whole stack: `leaf` calls `work` in a loop, and a 3000-deep read takes long
    # enough that a busy machine can leave most samples as their outer frames only — CI: 90 of 151
    # under <frames changed while read>, at 1.1 ms a sample.)
    whole = [l for l in folded.splitlines() if "<frames changed while read>" not in l]
    heavy = max(whole, key=lambda l: int(l.rsplit(" ", 1)[1]))
    frames = [f.split(" (")[0] for f in heavy.rsplit(" ", 1)[0].split(";")]
    expect(frames[:2] == ["<module>", "main"], "the root is kept: %s" % frames[:4])
    cuts = [f for f in frames if re.fullmatch(r"<\d+ frames cut>", f)]
    expect(len(cuts) == 1, "one <N frames cut> frame: %s" % cuts)
    cut = int(cuts[0][1:].split()[0])
    recursing = frames.count("recurse")
    # The stack holds <module>, main, depth + 1 recurse frames, leaf and work: 2048 kept of them.
    total = 2 + depth + 1 + len([f for f in frames if f in ("leaf", "work")])
    expect(len(frames) - 1 + cut == total, "kept %d + cut %d = %d frames, the stack has %d" % (len(frames) - 1, cut, len(frames) - 1 + cut, total))
    expect(len(frames) - 1 == 2048, "2048 frames kept (the default --max-depth): %d" % (len(frames) - 1))
    expect(frames[-1] in ("work", "leaf"), "the innermost frames are kept: %s" % frames[-3:])
    print("ok: %d frames kept of %d (%d recurse), %s in the middle, root %s, leaf %s"
          % (len(frames) - 1, total, recursing, cuts[0], frames[:2], frames[-2:]))
    # A larger --max-depth keeps the whole stack, and its text report still reads.
    out = ctx.path("whole.swp")
    ctx.record(out, [ctx.python, PROGRAM, "--depth", str(depth), "--seconds", "1"], options=["--max-depth", "4096"])
    folded = ctx.run_swprof("analyze", "--format", "collapsed", out).stdout
    heavy = max(folded.splitlines(), key=lambda l: int(l.rsplit(" ", 1)[1]))
    frames = [f.split(" (")[0] for f in heavy.rsplit(" ", 1)[0].split(";")]
    expect(frames.count("recurse") == depth + 1 and not any("cut>" in f for f in frames),
           "--max-depth 4096 keeps all %d recurse frames: %d" % (depth + 1, frames.count("recurse")))
    text = ctx.run_swprof("analyze", out, "--min-percent", "0")
    expect(text.returncode == 0 and "recurse" in text.stdout, "the text report of a 3000-deep tree: %s" % text.stderr)
    print("ok: --max-depth 4096 keeps the %d-deep stack whole" % len(frames))
    # A small --max-depth cuts a shallow program too, keeping both ends.
    out = ctx.path("small.swp")
    ctx.record(out, [ctx.python, PROGRAM, "--depth", "100", "--seconds", "0.5"], options=["--max-depth", "16"])
    folded = ctx.run_swprof("analyze", "--format", "collapsed", out).stdout
    heavy = max(folded.splitlines(), key=lambda l: int(l.rsplit(" ", 1)[1]))
    frames = [f.split(" (")[0] for f in heavy.rsplit(" ", 1)[0].split(";")]
    expect(len(frames) == 17 and frames[0] == "<module>" and "cut>" in frames[8], "--max-depth 16: %s" % frames)
    print("ok: --max-depth 16: %s" % " ; ".join(frames))


if __name__ == "__main__":
    harness.main(test, __doc__)
