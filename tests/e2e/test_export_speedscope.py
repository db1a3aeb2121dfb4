"""speedscope export, checked by speedscope itself (npm package): every file validates against the
package's file-format-schema.json (ajv), and the package's own app, served on loopback and opened
in headless Chromium, imports it without an error; its sandwich view then shows the functions
analyze shows, with the same self and total times. One profile per thread (wall and CPU weights),
or per segment with --segments. Screenshots are kept in the build's test-artifacts directory."""
import json
import os
import re
import sys

import browser as webdriver
import formats
import harness
import speedscope_app
from harness import expect, expect_close

UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3, "min": 60e3}
CELL = re.compile(r"^(\d+(?:\.\d+)?)(ns|µs|us|ms|s|min) \(")

# The sandwich view's table (the rows drawn so far: the largest self times come first).
SANDWICH = """
return Array.prototype.map.call(document.querySelectorAll('table tr'), function (tr) {
  return Array.prototype.map.call(tr.querySelectorAll('td'), function (td) { return td.innerText.trim(); });
}).filter(function (cells) { return cells.length === 3; });"""


def sandwich(browser):
    """{function: (self_ms, total_ms)} as speedscope displays them."""
    rows = {}
    for total, self_, name in browser.js(SANDWICH):
        t, s = CELL.match(total), CELL.match(self_)
        if not (t and s):  # another table (the profile selector)
            continue
        # speedscope names Chrome-trace frames "name {args}": keep the name.
        name = re.sub(r" \{.*\}$", "", name)
        value = lambda m: float(m.group(1)) * UNIT_MS[m.group(2)]
        rows.setdefault(name, []).append((value(s), value(t)))
    # A name on several rows is several functions (<module> of many files): not comparable by name.
    return {name: values[0] for name, values in rows.items() if len(values) == 1}


def expect_sandwich_matches(shown, expected, what, count=4):
    """The `count` largest self times speedscope shows are analyze's (flat, cum), within its rounding.
    `expected`: analyze's functions whose name is one function (formats.per_function(unique=True))."""
    largest = [n for n in sorted(shown, key=lambda n: -shown[n][0]) if n in expected][:count]
    expect(largest, "%s: speedscope's sandwich view is empty" % what)
    for name in largest:
        (s, t), (flat, cum) = shown[name], expected[name]
        # speedscope prints 2 decimals of its unit (1% at most here)
        expect(abs(s - flat) <= 0.01 * flat + 0.02 and abs(t - cum) <= 0.01 * cum + 0.02,
               "%s: %s self/total %.2f/%.2f ms in speedscope, %.2f/%.2f in analyze" % (what, name, s, t, flat, cum))
    print("ok: %s: speedscope's largest self times are analyze's: %s" %
          (what, ", ".join("%s %.2f/%.2f" % (n, shown[n][0], shown[n][1]) for n in largest)))


def open_and_check(ctx, browser, server, name, expected, what):
    result = speedscope_app.open_profile(browser, server, name, view="sandwich")
    speedscope_app.expect_imported(result, name)
    expect_sandwich_matches(sandwich(browser), expected, what)
    # The timeline view, kept as an artifact for people to look at.
    speedscope_app.expect_imported(speedscope_app.open_profile(browser, server, name), name)
    shot = ctx.artifact(name + ".png")
    browser.screenshot(shot)
    print("screenshot: %s" % shot)


def export(ctx, swp, out, *options):
    proc = ctx.run_swprof("export", swp, "--format", "speedscope", "-o", out, *options)
    expect(proc.returncode == 0, "export %s: %s" % (" ".join(options), proc.stderr))
    return json.load(open(out, encoding="utf-8"))


def test(ctx):
    root, why = speedscope_app.tools()
    for reason in (why, webdriver.missing()):
        if reason:
            print("SKIP: " + reason)
            sys.exit(harness.SKIP)

    threads_swp = ctx.path("threads.swp")
    ctx.record(threads_swp, [ctx.python, os.path.join(harness.SAMPLES, "cpu_threads.py"), "--threads", "3", "--seconds", "1.5"])
    requests_swp = ctx.path("requests.swp")
    ctx.record(requests_swp, [ctx.python, os.path.join(harness.SAMPLES, "release_compare.py"), "1", "5"],
               options=["--entry", "handle"])

    files = {}
    for name, swp, options in (("threads.speedscope.json", threads_swp, ()),
                               ("threads-cpu.speedscope.json", threads_swp, ("--mode", "cpu")),
                               ("segments.speedscope.json", requests_swp, ("--segments",))):
        files[name] = export(ctx, swp, ctx.path(name), *options)
        speedscope_app.validate(root, ctx.path(name))

    # One profile per thread, each weighing what analyze --thread weighs.
    doc = files["threads.speedscope.json"]
    tids = sorted({int(re.match(r"thread (\d+)", p["name"]).group(1)) for p in doc["profiles"]})
    expect(len(doc["profiles"]) == len(tids) >= 4, "one profile per thread (main + 3 workers): %s" %
           [p["name"] for p in doc["profiles"]])
    for p in doc["profiles"]:
        tid = int(re.match(r"thread (\d+)", p["name"]).group(1))
        roots = ctx.analyze_json(threads_swp, "--thread", str(tid))["roots"]
        expect_close(sum(p["weights"]) / 1e3, formats.total_ms(roots), 0.01, "%s: weights (ms) vs analyze --thread" % p["name"])
        expect(p["endValue"] == sum(p["weights"]) and len(p["samples"]) == len(p["weights"]), "%s: shape" % p["name"])
    segments = files["segments.speedscope.json"]["profiles"]
    expect([p["name"].split(":")[0] for p in segments] == ["segment %d" % i for i in range(1, 6)],
           "one profile per segment: %s" % [p["name"] for p in segments])
    expect(all(p["name"].startswith("segment %d: handle," % (i + 1)) for i, p in enumerate(segments)), "named after the entry")
    print("ok: %d thread profiles, 5 segment profiles" % len(doc["profiles"]))

    server = speedscope_app.Server(root, ctx.tmp)
    browser = webdriver.Browser(ctx.tmp)
    try:
        for name, swp, mode in (("threads.speedscope.json", threads_swp, "wall"),
                                ("threads-cpu.speedscope.json", threads_swp, "cpu")):
            active = files[name]["profiles"][files[name]["activeProfileIndex"]]
            tid = re.match(r"thread (\d+)", active["name"]).group(1)
            expected = formats.per_function(ctx.analyze_json(swp, "--thread", tid, "--mode", mode)["roots"], unique=True)
            open_and_check(ctx, browser, server, name, expected, "%s, %s" % (name, active["name"]))
        first = segments[files["segments.speedscope.json"].get("activeProfileIndex", 0)]
        seg_id = re.match(r"segment (\d+)", first["name"]).group(1)
        expected = formats.per_function(ctx.analyze_json(requests_swp, "--segment", seg_id)["roots"], unique=True)
        open_and_check(ctx, browser, server, "segments.speedscope.json", expected, "segment %s" % seg_id)
    finally:
        browser.quit()
        server.close()


if __name__ == "__main__":
    harness.main(test, __doc__)
