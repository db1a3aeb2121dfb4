"""A program with known stacks (nested closure, class method, generator, asyncio coroutine, thread
pool, 200-deep recursion, non-ASCII file and function names) gives exactly the expected function
names, files and line numbers, root to leaf, on every interpreter."""
import json
import os
import subprocess

import harness
from harness import expect

SOURCE = os.path.join(harness.SAMPLES, "known_stacks.py")
UNICODE = os.path.join(harness.SAMPLES, "unicodé_💥.py")


def markers(path):
    out = {}
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if "# @" in line:
            kind, name = line.split("# @", 1)[1].split()[:2]
            out[(kind, name)] = i
    return out


UNSTEADY = "<frames changed while read>"


def heaviest_path(node):
    """The path of the heaviest children, root to leaf. A sample taken while the thread ran (a
    thread starting up on a busy machine, running into its sleep) may keep its outer frames under
    <frames changed while read>: that is an honest sample of a moving stack, not where it sleeps."""
    path = []
    while True:
        children = [c for c in node["children"] if c["function"] != UNSTEADY]
        if not children:
            return path
        node = max(children, key=lambda c: c["total_ms"])
        path.append(node)


def stdlib_call_lines(python):
    """Lines of the calls in threading's bootstrap, read from this interpreter's own threading.py."""
    script = r'''
import json, threading, inspect
src, start = inspect.getsourcelines(threading.Thread._bootstrap)
def find(fn, *texts):
    lines, first = inspect.getsourcelines(fn)
    for i, l in enumerate(lines):
        if any(t in l for t in texts):
            return first + i
print(json.dumps({"file": threading.__file__,
                  "_bootstrap": find(threading.Thread._bootstrap, "self._bootstrap_inner()"),
                  "_bootstrap_inner": find(threading.Thread._bootstrap_inner, "self.run()", "run(self.run)"),
                  "run": find(threading.Thread.run, "self._target(")}))
'''
    return json.loads(subprocess.run([python, "-c", script], capture_output=True, text=True, check=True).stdout)


def check_thread(ctx, roots, thread, expected, stdlib, leaf_in_program=True):
    root = [r for r in roots if r["function"].endswith("(%s)" % thread)]
    expect(len(root) == 1, "thread %s not found among %s" % (thread, [r["function"] for r in roots]))
    path = heaviest_path(root[0])
    q = lambda name: name if ctx.version >= (3, 11) else name.rsplit(".", 1)[-1]
    # Root: threading's bootstrap, exactly.
    boot = [(q("Thread._bootstrap"), stdlib["_bootstrap"]), (q("Thread._bootstrap_inner"), stdlib["_bootstrap_inner"]),
            (q("Thread.run"), stdlib["run"])]
    got_boot = [(n["function"], n["line"]) for n in path[:3]]
    expect(got_boot == boot and all(n["file"] == stdlib["file"] for n in path[:3]),
           "%s: root frames %s, expected %s in %s" % (thread, got_boot, boot, stdlib["file"]))
    # Then the program's own frames, exactly, in order, ending at the leaf.
    ours = [(n["function"], os.path.basename(n["file"]), n["line"]) for n in path
            if n["file"] in (SOURCE, UNICODE)]
    want = [(q(f), os.path.basename(file), line) for f, file, line in expected]
    expect(ours == want, "%s: program frames\n   got  %s\n   want %s" % (thread, ours[:6] + (["..."] if len(ours) > 6 else []),
                                                              want[:6] + (["..."] if len(want) > 6 else [])))
    if leaf_in_program:
        expect(path[-1]["file"] in (SOURCE, UNICODE), "%s: the leaf is the program's sleeping frame" % thread)
    print("ok: %s: %d frames, leaf %s:%d" % (thread, len(path), os.path.basename(path[-1]["file"]), path[-1]["line"]))


def test(ctx):
    out = ctx.path("known.swp")
    ctx.record(out, [ctx.python, SOURCE, "--seconds", "1.5"])
    doc = ctx.analyze_json(out, "--by-thread", "--lines")
    # Threads start and end while they are read: a few samples of those moments may fail.
    rec = doc["recording"]
    expect(rec["errors"] <= max(2, rec["samples"] // 200), "errors: %d of %d samples" % (rec["errors"], rec["samples"]))
    roots = doc["roots"]
    m, u = markers(SOURCE), markers(UNICODE)
    lam = lambda text: harness.line_of(SOURCE, text)
    stdlib = stdlib_call_lines(ctx.python)
    S, U = SOURCE, UNICODE
    check_thread(ctx, roots, "nested", [("outer", S, m[("call", "nested")]),
                                        ("outer.<locals>.inner", S, m[("leaf", "nested")])], stdlib)
    check_thread(ctx, roots, "method", [("<lambda>", S, lam('"method": lambda')),
                                        ("Worker.run", S, m[("call", "method")]),
                                        ("Worker._step", S, m[("leaf", "method")])], stdlib)
    check_thread(ctx, roots, "generator", [("consume", S, m[("call", "generator")]),
                                           ("producer", S, m[("leaf", "generator")])], stdlib)
    check_thread(ctx, roots, "coroutine", [("run_coroutine", S, m[("call", "coroutine-run")]),
                                           ("serve", S, m[("call", "coroutine")]),
                                           ("handler", S, m[("leaf", "coroutine")])], stdlib)
    check_thread(ctx, roots, "recursion", [("<lambda>", S, lam('"recursion": lambda'))] +
                 [("recurse", S, m[("call", "recursion")])] * 199 + [("recurse", S, m[("leaf", "recursion")])], stdlib)
    check_thread(ctx, roots, "unicode", [("run_unicode", S, m[("call", "unicode")]),
                                         ("функция", U, u[("leaf", "unicode")])], stdlib)
    # (This thread waits in concurrent.futures for the pool's worker: its leaf is in the stdlib.)
    check_thread(ctx, roots, "pool", [("run_pool", S, m[("call", "pool-submit")])], stdlib, leaf_in_program=False)
    # The pool's worker thread runs pooled_task under concurrent.futures.
    worker = [r for r in roots if r["function"].endswith("(pool_0)")]
    expect(worker, "the pool's worker thread pool_0 is found")
    path = heaviest_path(worker[0])
    expect((path[-1]["function"], path[-1]["line"]) == ("pooled_task", m[("leaf", "pool")]),
           "pool_0 leaf %s:%d" % (path[-1]["function"], path[-1]["line"]))
    expect(path[-2]["file"].endswith(os.path.join("concurrent", "futures", "thread.py")),
           "pooled_task is called from concurrent/futures/thread.py, not %s" % path[-2]["file"])
    # The Unicode names survive into every output format.
    text = ctx.run_swprof("analyze", out, "--no-color")
    expect(any("функция (" in l and "unicodé_💥.py:%d)" % u[("leaf", "unicode")] in l for l in text.stdout.splitlines())
           or any("функция (" in l and "unicodé_💥.py:" in l for l in text.stdout.splitlines()),
           "text report shows функция in unicodé_💥.py")
    folded = ctx.run_swprof("analyze", out, "--format", "collapsed").stdout
    expect("функция (" in folded, "collapsed output keeps the Unicode name")


if __name__ == "__main__":
    harness.main(test, __doc__)
