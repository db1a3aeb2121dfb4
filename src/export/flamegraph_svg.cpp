// swprof flamegraph: the call tree as one standalone, interactive SVG (inline CSS and script, no
// external resources, so it opens from file:// and survives being mailed around).
//
// Each drawn frame is
//   <g data-x=".." data-w=".." data-d=".." data-s=".." data-n=".." data-c=".." data-g=".." data-f="..">
//     <title>function (file:line) (N ms, P%)</title><rect .../><text ...>label</text></g>
// x/w are the frame's start and width in integer µs on the time axis (root = [0, root.total]),
// d its depth (root 0), s/c/g its self/CPU/GIL µs, n its sample count and f its absolute
// "file:line"; a differential graph (flamegraph_diff.cpp) adds bt/nt, the base's and the new
// total per unit, and diff, the comparison as the details line shows it. The script reads these attributes for zoom, search and the details line; nothing
// data-dependent goes into the script itself, so no name can break out of its CDATA section.
// The geometry is also written out, so the graph renders (without interaction) where scripts
// are disabled.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "swprof/common.h"
#include "swprof/export.h"

namespace swprof::exporter {

namespace {

using analyze::Node;
using analyze::NodeKind;
using analyze::Tree;

constexpr double kWidth = 1200;       // SVG width in px
constexpr double kPad = 10;           // left/right margin
constexpr double kGraphWidth = kWidth - 2 * kPad;
constexpr double kRowHeight = 16;     // one stack level; the rect is 1 px shorter
constexpr double kTop = 72;           // below title, subtitle and controls
constexpr double kCharWidth = 7.3;    // 12 px monospace; the script measures the real width
constexpr double kTitleCharWidth = 10.5;  // 17 px bold sans-serif, generously

// xml_escape, plus U+FFFE/U+FFFF: sanitize_text keeps those noncharacters but XML 1.0 forbids them.
std::string esc(std::string_view text) {
  std::string out = xml_escape(text);
  for (size_t at = 0; (at = out.find("\xEF\xBF", at)) != std::string::npos; at += 3)
    if (at + 2 < out.size() && (out[at + 2] == '\xBE' || out[at + 2] == '\xBF')) out[at + 2] = '\xBD';
  return out;
}

// FNV-1a and murmur3's finaliser: fixed by definition (unlike std::hash), so a function keeps its
// color across runs, machines and builds. The finaliser spreads a last-letter difference
// ("methodC", "methodD") over all bits; plain FNV-1a barely changes the low ones.
uint32_t name_hash(std::string_view s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  h ^= h >> 16;
  h *= 0x85EBCA6Bu;
  h ^= h >> 13;
  h *= 0xC2B2AE35u;
  return h ^ (h >> 16);
}

std::string hsl(double hue, double sat, double light) {
  // The usual HSL to RGB conversion (hue in degrees, the rest in [0, 1]).
  double c = (1 - std::fabs(2 * light - 1)) * sat;
  double hp = std::fmod(hue, 360.0) / 60;
  double x = c * (1 - std::fabs(std::fmod(hp, 2.0) - 1));
  double r = 0, g = 0, b = 0;
  if (hp < 1) r = c, g = x;
  else if (hp < 2) r = x, g = c;
  else if (hp < 3) g = c, b = x;
  else if (hp < 4) g = x, b = c;
  else if (hp < 5) r = x, b = c;
  else r = c, b = x;
  double m = light - c / 2;
  auto byte = [&](double v) { return static_cast<int>(std::lround(std::clamp(v + m, 0.0, 1.0) * 255)); };
  return fmt::format("#{:02x}{:02x}{:02x}", byte(r), byte(g), byte(b));
}

// A hue band per code origin (analyze::code_origin) so the eye separates the user's code from the
// standard library and third-party packages; the name's hash picks hue and lightness inside the
// band so neighbouring frames differ. Synthetic nodes (root, threads, greenlets, <switched out>)
// are a neutral grey. The search highlight (magenta, in the CSS) is outside every band.
std::string color_of(const Node& n, int origin) {
  uint32_t h = name_hash(n.function);
  double j1 = (h & 0xFFFF) / 65535.0, j2 = (h >> 16) / 65535.0;
  if (n.kind != NodeKind::kFrame) return hsl(230, 0.06, 0.70 + 0.08 * j2);
  switch (origin) {
    case 0: return hsl(0 + 38 * j1, 0.80, 0.56 + 0.12 * j2);     // user code: reds to oranges
    case 1: return hsl(195 + 32 * j1, 0.62, 0.62 + 0.12 * j2);   // standard library: blues
    case 2: return hsl(88 + 44 * j1, 0.50, 0.52 + 0.12 * j2);    // site-packages: greens
    default: return hsl(262 + 28 * j1, 0.22, 0.66 + 0.10 * j2);  // <frozen>, no file: grey-purple
  }
}

// Milliseconds with at most two decimals and no trailing zeros: "400", "12.5", "0.25".
std::string format_ms(double us) {
  std::string s = fmt::format("{:.2f}", us / 1e3);
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  return s;
}

// The longest prefix of a label (already sanitised: valid UTF-8) that fits `px` pixels, with ".."
// when cut; empty when fewer than 3 characters fit. The script redoes this after a zoom.
std::string fit_label(const std::string& label, double px, double char_width = kCharWidth) {
  auto room = static_cast<long>((px - 6) / char_width);
  if (room < 3) return {};
  std::vector<size_t> starts;  // byte offset of each code point
  for (size_t i = 0; i < label.size(); ++i)
    if ((static_cast<unsigned char>(label[i]) & 0xC0) != 0x80) starts.push_back(i);
  if (static_cast<long>(starts.size()) <= room) return label;
  return label.substr(0, starts[room - 2]) + "..";
}

struct Placed {
  uint32_t node;
  int64_t x, w;  // µs on the time axis
  int depth;
};

// Lays out the frames wide enough to draw, in depth-first order (the file reads like the tree):
// each child starts where its previous sibling ended, inside its parent (build_tree sorts children
// largest first). Iterative, because recursive Python code makes very deep trees. Positions are
// rounded to whole µs once, so a child's interval never leaves its parent's and the script can
// test containment exactly.
std::vector<Placed> layout(const Tree& tree, double min_width_pct, size_t& omitted, int& max_depth) {
  // A file's times are bounded, their sums are not quite: clamp so that positions fit an int64.
  const double total = std::clamp(tree.root().total, 0.0, 4e18);
  const double min_us = std::max(0.0, std::isfinite(min_width_pct) ? min_width_pct : 0.0) / 100 * total;
  struct Todo {
    uint32_t node;
    double start, end;
    int depth;
  };
  std::vector<Placed> out;
  std::vector<Todo> todo{{0, 0, total, 0}}, kids;
  std::vector<uint32_t> skipped;  // roots of omitted subtrees
  max_depth = 0;
  while (!todo.empty()) {
    Todo t = todo.back();
    todo.pop_back();
    int64_t x = std::llround(t.start);
    out.push_back({t.node, x, std::llround(t.end) - x, t.depth});
    max_depth = std::max(max_depth, t.depth);
    kids.clear();
    double at = t.start;
    for (uint32_t c : tree.nodes[t.node].children) {
      const Node& child = tree.nodes[c];
      double end = std::min(at + std::max(0.0, child.total), t.end);
      if (child.total < min_us || std::llround(end) - std::llround(at) <= 0) skipped.push_back(c);
      else kids.push_back({c, at, end, t.depth + 1});
      at = end;
    }
    todo.insert(todo.end(), kids.rbegin(), kids.rend());  // popped left to right
  }
  // Everything below an omitted frame is omitted too; count it all.
  omitted = 0;
  while (!skipped.empty()) {
    uint32_t s = skipped.back();
    skipped.pop_back();
    ++omitted;
    skipped.insert(skipped.end(), tree.nodes[s].children.begin(), tree.nodes[s].children.end());
  }
  return out;
}

template <class... Args>
void put(std::string& out, fmt::format_string<Args...> format, Args&&... args) {
  fmt::format_to(std::back_inserter(out), format, std::forward<Args>(args)...);
}

constexpr std::string_view kStyle = R"CSS(
text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; fill: #000; }
#title { font-family: sans-serif; font-size: 17px; font-weight: bold; }
#subtitle, #omitted { font-family: sans-serif; fill: #555; }
#details-file { fill: #555; }
#omitted { font-size: 11px; }
#frames g { cursor: pointer; }
#frames text { pointer-events: none; }
#frames g:hover rect { stroke: #000; stroke-width: 1; }
#frames .a rect { opacity: 0.6; }
#frames .m rect { fill: #e43ee4; }
#frames .h { display: none; }
.btn { fill: #1a5fb4; cursor: pointer; text-decoration: underline; }
.btn.off { fill: #9a9a9a; }
)CSS";

// Zoom, search and the details line. Small on purpose: no framework, no data inside.
constexpr std::string_view kScript = R"JS(
"use strict";
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var box = document.getElementById("frames");
  var pad = +box.getAttribute("data-pad"), width = +box.getAttribute("data-width");
  var details = document.getElementById("details"), detailsFile = document.getElementById("details-file");
  var matched = document.getElementById("matched");
  var resetZoom = document.getElementById("reset-zoom"), resetSearch = document.getElementById("reset-search");
  var hint = details.textContent;
  var frames = [], root = null, pattern = null;

  Array.prototype.forEach.call(box.children, function (g) {
    var f = {
      g: g, rect: g.querySelector("rect"), text: g.querySelector("text"),
      x: +g.getAttribute("data-x"), w: +g.getAttribute("data-w"), d: +g.getAttribute("data-d"),
      // The title is "label (N ms, P%)": the label is everything before the last parenthesis.
      label: g.querySelector("title").textContent.replace(/ \([^()]*\)$/, "")
    };
    g.frame = f;
    frames.push(f);
    if (f.d === 0) root = f;
  });

  // Width of one character of the frame font, measured rather than guessed.
  var probe = document.createElementNS(NS, "text");
  probe.textContent = "MMMMMMMMMMMMMMMMMMMM";
  box.parentNode.appendChild(probe);
  var cw = probe.getComputedTextLength() / 20 || 7.3;
  probe.remove();

  // Label truncated with ".." to fit px pixels; no text below 3 characters.
  function fit(f, px) {
    var room = Math.floor((px - 6) / cw);
    if (room < 3) { if (f.text) f.text.textContent = ""; return; }
    if (!f.text) {  // narrow frames are written without a text element
      f.text = document.createElementNS(NS, "text");
      f.text.setAttribute("y", +f.rect.getAttribute("y") + 11);
      f.g.appendChild(f.text);
    }
    f.text.setAttribute("x", +f.rect.getAttribute("x") + 3);
    var chars = Array.from(f.label), n = Math.min(chars.length, room);
    function show(k) { f.text.textContent = k >= chars.length ? f.label : k > 2 ? chars.slice(0, k - 2).join("") + ".." : ""; }
    show(n);
    // Wide glyphs (CJK, emoji) take more than one cell: measure such labels for real.
    if (/[^\x20-\x7e]/.test(f.label)) while (n > 2 && f.text.getComputedTextLength() > px - 6) show(--n);
  }

  // Zoom: z fills the width; its subtree is rescaled, its ancestors span the width (dimmed),
  // everything else is hidden. zoom(root) is the unzoomed graph.
  function zoom(z) {
    var scale = width / (z.w || 1);
    frames.forEach(function (f) {
      var inside = f.d >= z.d && f.x >= z.x && f.x + f.w <= z.x + z.w;
      var ancestor = f.d < z.d && f.x <= z.x && f.x + f.w >= z.x + z.w;
      f.g.classList.toggle("h", !inside && !ancestor);
      f.g.classList.toggle("a", ancestor);
      if (!inside && !ancestor) return;
      var x = inside ? pad + (f.x - z.x) * scale : pad, w = inside && z.w ? f.w * scale : width;
      f.rect.setAttribute("x", x.toFixed(2));
      f.rect.setAttribute("width", w.toFixed(2));
      fit(f, w);
    });
    resetZoom.classList.toggle("off", z === root);
  }

  // Highlights the frames whose label matches the regular expression and shows the share of the
  // total time they cover, counting a match nested inside another match once.
  function search(text) {
    var re;
    try { re = new RegExp(text); } catch (e) { matched.textContent = "Invalid regex: " + text; return; }
    var hits = frames.filter(function (f) {
      var hit = re.test(f.label);
      f.g.classList.toggle("m", hit);
      return hit;
    });
    hits.sort(function (a, b) { return a.x - b.x || b.w - a.w; });
    var sum = 0, end = -Infinity;
    hits.forEach(function (f) {
      if (f.x + f.w > end) { sum += f.x + f.w - Math.max(f.x, end); end = f.x + f.w; }
    });
    pattern = text;
    matched.textContent = "Matched: " + (root.w ? 100 * sum / root.w : 0).toFixed(1) + "%";
    resetSearch.classList.remove("off");
  }

  function clearSearch() {
    frames.forEach(function (f) { f.g.classList.remove("m"); });
    pattern = null;
    matched.textContent = "";
    resetSearch.classList.add("off");
  }

  function askSearch() {
    var text = window.prompt("Search frames (regular expression):", pattern || "");
    if (text) search(text);
    else if (text === "") clearSearch();
  }

  function ms(us) { return +(us / 1000).toFixed(2) + " ms"; }
  function pct(us) { return (root.w ? 100 * us / root.w : 0).toFixed(2) + "%"; }

  function cut(s, room) { return s.length > room ? s.slice(0, room - 2) + ".." : s; }

  // Hovered frame: label and numbers on one line, the absolute file:line on the next.
  function describe(f) {
    if (!f) {
      details.textContent = hint;
      detailsFile.textContent = "";
      return;
    }
    var a = function (name) { return +f.g.getAttribute("data-" + name) || 0; };
    details.textContent = cut(f.label + ": " + ms(f.w) + " (" + pct(f.w) + "), self " + ms(a("s")) + " (" +
      pct(a("s")) + "), " + a("n") + " samples, CPU " + ms(a("c")) + ", GIL " + ms(a("g")), Math.floor((width - 150) / cw));
    // A differential graph also compares the frame with the base recording.
    var compared = f.g.getAttribute("data-diff");
    detailsFile.textContent = cut((compared ? compared + "  |  " : "") + (f.g.getAttribute("data-f") || ""),
                                  Math.floor(width / cw));
  }

  function frameOf(e) { var g = e.target.closest && e.target.closest("#frames > g"); return g && g.frame; }
  box.addEventListener("click", function (e) { var f = frameOf(e); if (f) zoom(f); });
  box.addEventListener("mouseover", function (e) { describe(frameOf(e)); });
  box.addEventListener("mouseleave", function () { describe(null); });
  resetZoom.addEventListener("click", function () { zoom(root); });
  document.getElementById("search").addEventListener("click", askSearch);
  resetSearch.addEventListener("click", clearSearch);
  document.addEventListener("keydown", function (e) {
    if (((e.ctrlKey || e.metaKey) && e.key === "f") || e.key === "/") { e.preventDefault(); askSearch(); }
    else if (e.key === "Escape") { if (pattern !== null) clearSearch(); else zoom(root); }
  });

  zoom(root);  // fits every label with the measured font
})();
)JS";

}  // namespace

std::string flamegraph_svg(const Tree& tree, const FlamegraphOptions& options) {
  if (tree.nodes.empty()) {  // build_tree always makes a root; a hand-made tree might not
    Tree empty;
    empty.nodes.emplace_back().kind = NodeKind::kRoot;
    empty.nodes[0].function = "all";
    return flamegraph_svg(empty, options);
  }
  size_t omitted = 0;
  int max_depth = 0;
  std::vector<Placed> placed = layout(tree, options.min_width_pct, omitted, max_depth);
  const double total = std::max(0.0, tree.root().total);
  const double graph_bottom = kTop + (max_depth + 1) * kRowHeight;
  const double height = graph_bottom + 46;  // two details lines below the graph

  std::string out;
  out.reserve(placed.size() * 300 + 8192);

  std::string omitted_note;
  if (omitted)
    omitted_note = fmt::format("{} frame{} narrower than {}% not shown", omitted, omitted == 1 ? "" : "s",
                               options.min_width_pct);
  if (options.diff)
    for (const std::string* note : {&options.diff->base_only, &options.diff->cut_left_out})
      if (!note->empty()) omitted_note += (omitted_note.empty() ? "" : "; ") + *note;
  put(out, R"(<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" viewBox="0 0 {width} {height}">
<title>{title}</title>
<style type="text/css"><![CDATA[{style}]]></style>
<rect width="100%" height="100%" fill="#fbfbfb"/>
<text id="title" x="{center}" y="24" text-anchor="middle">{title_shown}</text>
<text id="subtitle" x="{center}" y="42" text-anchor="middle">{subtitle}</text>
<text id="reset-zoom" class="btn off" x="{left}" y="62">Reset zoom</text>
<text id="omitted" x="{center}" y="62" text-anchor="middle">{omitted}</text>
<text id="search" class="btn" x="{search_x}" y="62" text-anchor="end">Search</text>
<text id="reset-search" class="btn off" x="{right}" y="62" text-anchor="end">Reset search</text>
<text id="details" x="{left}" y="{details_y}">{hint}</text>
<text id="details-file" x="{left}" y="{details_file_y}"></text>
<text id="matched" x="{right}" y="{details_y}" text-anchor="end"></text>
<g id="frames" data-pad="{left}" data-width="{graph_width}">
)",
      fmt::arg("width", kWidth), fmt::arg("height", height), fmt::arg("title", esc(options.title)),
      fmt::arg("style", kStyle), fmt::arg("center", kWidth / 2),
      fmt::arg("title_shown", esc(fit_label(sanitize_text(options.title), kGraphWidth, kTitleCharWidth))),
      fmt::arg("subtitle", esc(fit_label(sanitize_text(options.subtitle), kGraphWidth))), fmt::arg("left", kPad),
      fmt::arg("omitted", esc(omitted_note)), fmt::arg("search_x", kWidth - kPad - 110), fmt::arg("right", kWidth - kPad),
      fmt::arg("details_y", graph_bottom + 20), fmt::arg("details_file_y", graph_bottom + 36),
      fmt::arg("hint", total > 0 ? "Hover for details, click to zoom, / or Ctrl-F to search, Esc to reset."
                                 : "No samples: nothing to draw."),
      fmt::arg("graph_width", kGraphWidth));

  // code_origin scans the path: once per distinct file, not once per frame.
  std::unordered_map<std::string_view, int> origins;
  for (const Placed& p : placed) {
    const Node& n = tree.nodes[p.node];
    auto [it, fresh] = origins.try_emplace(n.file, 0);
    if (fresh) it->second = analyze::code_origin(n.file);
    double x = kPad + (total > 0 ? p.x / total * kGraphWidth : 0);
    double w = total > 0 ? p.w / total * kGraphWidth : kGraphWidth;
    double y = options.inverted ? kTop + p.depth * kRowHeight : kTop + (max_depth - p.depth) * kRowHeight;
    std::string label = sanitize_text(analyze::frame_label(n, true));
    double share = total > 0 ? 100 * n.total / total : 0;

    put(out, R"(<g data-x="{}" data-w="{}" data-d="{}" data-s="{:.0f}" data-n="{}" data-c="{:.0f}" data-g="{:.0f}")", p.x,
        p.w, p.depth, n.self, n.samples, n.cpu, n.gil);
    if (n.kind == NodeKind::kFrame && !n.file.empty()) put(out, R"( data-f="{}:{}")", esc(n.file), n.line);
    std::string fill = color_of(n, it->second), compared;
    if (options.diff) {  // a differential graph: the change colors the frame and joins its title
      fill = diff_fill(*options.diff, p.node);
      compared = ", " + diff_summary(*options.diff, p.node);
      put(out, R"( data-bt="{:.0f}" data-nt="{:.0f}" data-diff="{}")", options.diff->base_total[p.node],
          options.diff->new_total[p.node], esc(diff_summary(*options.diff, p.node)));
    }
    put(out, R"(><title>{} ({} ms, {:.2f}%{})</title><rect x="{:.2f}" y="{}" width="{:.2f}" height="{}" fill="{}"/>)",
        esc(label), format_ms(n.total), share, esc(compared), x, y, w, kRowHeight - 1, fill);
    if (std::string text = fit_label(label, w); !text.empty())
      put(out, R"(<text x="{:.2f}" y="{}">{}</text>)", x + 3, y + 11, esc(text));
    out += "</g>\n";
  }
  out += "</g>\n<script type=\"text/ecmascript\"><![CDATA[";
  out += kScript;
  out += "]]></script>\n</svg>\n";
  return out;
}

}  // namespace swprof::exporter
