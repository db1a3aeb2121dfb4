"""swprof diff and the differential flame graph on two releases of one request handler
(samples/release_compare.py: render 30 -> 60 ms, legacy_cache 20 ms gone, search_index 10 ms new,
parse 20 ms both): per segment the changes are those; per second of recording they are analyze's
totals over each recording's duration; the largest change comes first; how much of each side
matched is said, and recordings of different programs compare with 0% matched. Requests the
recording cut (attached in the middle of one, stopped in the middle of another) are said and left
out of the per-segment averages, which stay those of whole requests. The flame graph
(xmllint, then headless Chromium) is NEW's width, red where it grew, grey where it did not move,
blue where it shrank (drawn the other way round), and hovering a frame shows both values."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import browser as webdriver
import harness
from harness import expect, expect_close

REQUESTS = 8
SVG = "{http://www.w3.org/2000/svg}"


def diff_json(ctx, *args):
    proc = ctx.run_swprof("diff", "--format", "json", *args)
    expect(proc.returncode == 0, "swprof diff %s: %s" % (" ".join(args), proc.stderr))
    doc = json.loads(proc.stdout)
    return doc, {n["function"]: n for n in doc["nodes"]}


def late_ms(ctx, swp, requests):
    """How much later than asked a busy machine may have woken the program's sleeps, per request:
    at most about as long as it held up the recorder (the recording's stalls), spread over the
    requests. Nothing on a quiet machine. (CI beside headless Chromium: a 90 ms request took 118.)"""
    return sum(b - a for a, b in ctx.analyze_json(swp)["recording"]["stalls_ms"]) / requests


def expect_per_request(value, asked, late, what):
    """A per-request time: what the program asked for, within one sampling interval (the tolerance of
    5 ms), and on a busy machine up to `late` more (its sleeps woke late)."""
    expect(asked - 5 <= value <= asked + 5 + late, "%s: %.1f, expected %.1f (-5 .. +%.1f)" % (what, value, asked, 5 + late))
    print("ok: %s = %.1f (expected %.1f, -5 .. +%.1f)" % (what, value, asked, 5 + late))


def expect_shows_both(text, node):
    """`text` says "base B ms, new N ms" with the node's values (to the printed 0.1 ms)."""
    m = re.search(r"base (\d+\.\d) ms, new (\d+\.\d) ms", text)
    expect(m and abs(float(m.group(1)) - node["base_total_ms"]) <= 0.051 and abs(float(m.group(2)) - node["new_total_ms"]) <= 0.051,
           "%r does not show base %.2f and new %.2f ms" % (text, node["base_total_ms"], node["new_total_ms"]))


def rgb(fill):
    return tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))


def test(ctx):
    program = os.path.join(harness.SAMPLES, "release_compare.py")
    old, new = ctx.path("release1.swp"), ctx.path("release2.swp")
    ctx.record(old, [ctx.python, program, "1", str(REQUESTS)], options=["--entry", "handle"])
    ctx.record(new, [ctx.python, program, "2", str(REQUESTS)], options=["--entry", "handle"])

    # Per segment: the per-request changes of the program, one sampling interval of tolerance.
    doc, nodes = diff_json(ctx, old, new, "--per-segment")
    # (A recorder held up at the start on a busy machine can find the first request running: cut.)
    expect(doc["unit"] == "ms/segment" and all(doc[side]["segments"] + doc[side]["cut_segments"] == REQUESTS
                                               and doc[side]["cut_segments"] <= 1 for side in ("base", "new")),
           "header %s %s" % (doc["base"], doc["new"]))
    expect(doc["nodes"][0]["function"] == "render", "the largest change first: %s" % [n["function"] for n in doc["nodes"][:3]])
    late_old, late_new = late_ms(ctx, old, REQUESTS), late_ms(ctx, new, REQUESTS)
    for name, base, now in (("render", 30, 60), ("parse", 20, 20), ("legacy_cache", 20, 0), ("search_index", 0, 10), ("handle", 70, 90)):
        n = nodes[name]
        expect_per_request(n["base_total_ms"], base, late_old if base else 0, "%s base ms/request" % name)
        expect_per_request(n["new_total_ms"], now, late_new if now else 0, "%s new ms/request" % name)
        expect(abs(n["total_change_ms"] - (n["new_total_ms"] - n["base_total_ms"])) < 0.01, "%s: change = new - base" % name)
    expect(not nodes["legacy_cache"]["in_new"] and not nodes["search_index"]["in_base"], "gone / new flags")
    expect(nodes["search_index"]["total_change_pct"] is None, "no %% change from nothing")
    expect_close(nodes["render"]["total_change_pct"], 100, 25, "render's change (%)")
    expect(nodes["render"]["path"] == ["handle", "render"], "paths start at the entry: %s" % nodes["render"]["path"])
    expect_close(doc["base"]["matched_pct"], 100 * 50 / 70, 8, "matched share of base (parse + render of 70 ms)")
    expect_close(doc["new"]["matched_pct"], 100 * 80 / 90, 8, "matched share of new (parse + render of 90 ms)")

    # Per second of recording: analyze's totals over each recording's length.
    doc, nodes = diff_json(ctx, old, new)
    expect(doc["unit"] == "ms/s", "unit %s" % doc["unit"])
    for path, side in ((old, "base"), (new, "new")):
        a = ctx.analyze_json(path)
        seconds = a["recording"]["duration_ms"] / 1e3
        render = [c for c in a["roots"][0]["children"] if c["function"] == "render"][0]
        expect_close(nodes["render"][side + "_total_ms"], render["total_ms"] / seconds, 0.01, "render per second (%s)" % side)

    # Text: the header says what was compared and how much matched; rows by largest change.
    proc = ctx.run_swprof("diff", old, new, "--per-segment")
    expect(proc.returncode == 0, proc.stderr)
    print(proc.stdout)
    lines = proc.stdout.splitlines()
    expect(lines[0].startswith("Base ") and lines[1].startswith("New ") and "per segment (ms/segment)" in lines[2], "header")
    expect(re.match(r"Matched +\d+\.\d% of base's time, \d+\.\d% of new's time", lines[3]), lines[3])
    table = lines[lines.index(next(l for l in lines if l.strip().startswith("Base") and "Call path" in l)) + 1:]
    expect("handle › render" in table[0], "render first: %s" % table[0])
    expect(any("legacy_cache" in l and "gone" in l for l in table) and any("search_index" in l and "new" in l for l in table),
           "gone and new rows")

    # Different programs: nothing matches, and it says so.
    other = ctx.path("nested.swp")
    ctx.record(other, [ctx.python, os.path.join(harness.SAMPLES, "nested_sleeps.py"), "3"])
    proc = ctx.run_swprof("diff", other, new)
    expect(proc.returncode == 0 and "Matched   0.0% of base's time, 0.0% of new's time" in proc.stdout,
           "different programs: %s %s" % (proc.stdout[:600], proc.stderr))
    proc = ctx.run_swprof("diff", other, new, "--per-segment")
    expect(proc.returncode == 1 and proc.stderr.startswith("swprof: ") and "no segments" in proc.stderr,
           "--per-segment without segments: one clear line, got %r" % proc.stderr)
    print("ok: different programs compare (0%% matched); --per-segment without segments: %s" % proc.stderr.strip())

    test_cut_requests(ctx, old, program)
    test_flamegraph(ctx, old, new)


def test_cut_requests(ctx, old, program):
    """Attached in the middle of a request and stopped in the middle of another: both are listed
    as cut (the first began at an unknown time before: no upper bound on its duration), and the
    per-segment averages are those of the whole requests in between."""
    ready = ctx.path("ready")
    # (The program announces its start, so the attach lands in the middle of its requests.)
    starter = "import runpy, sys; open(%r, 'w').write('1'); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')" % ready
    target = subprocess.Popen([ctx.python, "-c", starter, program, "2", "40"])
    try:
        harness.wait_for_file(ready)
        time.sleep(0.15)  # (into its second request)
        cut = ctx.path("attached.swp")
        ctx.record(cut, pid=target.pid, options=["--entry", "handle", "--duration", "1s"])
    finally:
        harness.kill_quietly(target)
    segs = ctx.analyze_json(cut, "--segments")["segments"]
    expect(len(segs) >= 8, "about 11 requests in a second: %d segments" % len(segs))
    first, last = segs[0], segs[-1]
    expect(first["began_before_recording"] and first["duration_max_ms"] is None and first["complete"],
           "the request running at the attach began before the recording: %s" % first)
    expect(not last["complete"] and not last["began_before_recording"], "the last one still ran at the end: %s" % last)
    expect(not any(s["began_before_recording"] or not s["complete"] for s in segs[1:-1]), "the others are whole")
    text = ctx.run_swprof("analyze", "--segments", cut).stdout
    print(text)
    expect("began before the recording" in text.splitlines()[1] and "still running" in text.splitlines()[-1],
           "the segment list says which were cut")

    doc, nodes = diff_json(ctx, old, cut, "--per-segment")
    expect(doc["new"]["cut_segments"] == 2 and doc["new"]["segments"] == len(segs) - 2, "new side: %s" % doc["new"])
    late_cut = late_ms(ctx, cut, len(segs))
    for name, now in (("render", 60), ("parse", 20), ("search_index", 10), ("handle", 90)):
        expect_per_request(nodes[name]["new_total_ms"], now, late_cut, "%s ms per whole request (attached)" % name)
    proc = ctx.run_swprof("diff", old, cut, "--per-segment")
    expect("2 more cut by the recording's start or end, left out" in proc.stdout.splitlines()[1], proc.stdout[:400])
    print("ok: cut requests listed and left out: %s" % proc.stdout.splitlines()[1])
    svg = ctx.path("cut.svg")
    proc = ctx.run_swprof("flamegraph", cut, "--diff", old, "--per-segment", "-o", svg)
    expect(proc.returncode == 0, proc.stderr)
    said = ET.parse(svg).getroot().find(".//%stext[@id='omitted']" % SVG).text
    expect("whole calls only: 2 new and %d base segments cut by the recording left out" % doc["base"]["cut_segments"] in said,
           "the graph says: %r" % said)


def test_flamegraph(ctx, old, new):
    if not shutil.which("xmllint"):
        print("SKIP: xmllint not installed (apt-get install libxml2-utils)")
        sys.exit(harness.SKIP)
    svg = ctx.path("diff.svg")
    proc = ctx.run_swprof("flamegraph", new, "--diff", old, "--per-segment", "-o", svg)
    expect(proc.returncode == 0, "flamegraph --diff: %s" % proc.stderr)
    lint = subprocess.run(["xmllint", "--noout", svg], capture_output=True, text=True, timeout=60)
    expect(lint.returncode == 0, "xmllint rejects the SVG: %s" % lint.stderr[:2000])
    print("ok: xmllint --noout %s" % svg)
    frames = {}
    root = ET.parse(svg).getroot()
    for g in root.iter(SVG + "g"):
        if g.get("data-x") is not None:
            title = g.find(SVG + "title").text
            frames[title.split(" (")[0]] = {"title": title, "fill": g.find(SVG + "rect").get("fill"), "w": int(g.get("data-w")),
                                           "bt": float(g.get("data-bt")), "nt": float(g.get("data-nt"))}
    _, nodes = diff_json(ctx, old, new, "--per-segment")
    for name in ("render", "parse", "search_index", "handle"):
        expect(name in frames, "%s drawn: %s" % (name, sorted(frames)))
        f, n = frames[name], nodes[name]
        expect_close(f["bt"] / 1e3, n["base_total_ms"], 0.01, "%s's base value in the SVG vs diff (ms)" % name)
        expect_close(f["nt"] / 1e3, n["new_total_ms"], 0.01, "%s's new value in the SVG vs diff (ms)" % name)
        expect_shows_both(f["title"], n)
    expect("legacy_cache" not in frames, "width is NEW's: legacy_cache (gone) is not drawn")
    expect("only in base" in ET.tostring(root, encoding="unicode"), "the graph says what only the base had")
    r, g, b = rgb(frames["render"]["fill"])
    expect(r > 180 and r - b > 120, "render grew 100%%: strongly red, got %s" % frames["render"]["fill"])
    r, g, b = rgb(frames["search_index"]["fill"])
    expect(r > 180 and r - b > 120, "search_index is new: red, got %s" % frames["search_index"]["fill"])
    r, g, b = rgb(frames["parse"]["fill"])
    expect(abs(r - b) < 60, "parse did not move: grey, got %s" % frames["parse"]["fill"])
    hr, _, hb = rgb(frames["handle"]["fill"])
    expect(hr > hb and (hr - hb) < (rgb(frames["render"]["fill"])[0] - rgb(frames["render"]["fill"])[2]),
           "handle grew ~29%%: red, paler than render (%s vs %s)" % (frames["handle"]["fill"], frames["render"]["fill"]))
    print("ok: fills: render %s, search_index %s, handle %s, parse %s" %
          tuple(frames[n]["fill"] for n in ("render", "search_index", "handle", "parse")))

    # A shrinking frame is blue: the same graph the other way round.
    back = ctx.path("back.svg")
    proc = ctx.run_swprof("flamegraph", old, "--diff", new, "--per-segment", "-o", back)
    expect(proc.returncode == 0, proc.stderr)
    for g in ET.parse(back).getroot().iter(SVG + "g"):
        if g.get("data-x") is not None and g.find(SVG + "title").text.startswith("render "):
            r, _, b = rgb(g.find(SVG + "rect").get("fill"))
            expect(b - r > 60, "render shrank by half going back: blue, got %s" % g.find(SVG + "rect").get("fill"))
    print("ok: render is blue in the reverse graph")

    if webdriver.missing():
        print("SKIP: " + webdriver.missing())
        sys.exit(harness.SKIP)
    browser = webdriver.Browser(ctx.tmp)
    try:
        browser.open_loaded("file://" + svg)
        titles = browser.js("return Array.prototype.map.call(document.querySelectorAll('#frames > g'),"
                            " function (g) { return g.querySelector('title').textContent; });")
        index = next(i for i, t in enumerate(titles) if t.startswith("render "))
        browser.hover(browser.js("return document.querySelectorAll('#frames > g')[arguments[0]];", index))
        shown = browser.js("return document.getElementById('details').textContent + ' | ' +"
                           " document.getElementById('details-file').textContent;")
        print("details on hover: %s" % shown)
        n = nodes["render"]
        expect("per segment: base" in shown, "hover compares per segment: %r" % shown)
        expect_shows_both(shown, n)
        shot = ctx.artifact("diff.png")
        browser.screenshot(shot)
        print("screenshot: %s" % shot)
    finally:
        browser.quit()


if __name__ == "__main__":
    harness.main(test, __doc__)
