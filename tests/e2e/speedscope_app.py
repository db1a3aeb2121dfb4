"""speedscope, the consumer of swprof's speedscope and Chrome trace exports, from its npm package:
its published JSON schema (validated with ajv, a real JSON-schema validator from npm) and its own
app, served on loopback and opened in headless Chromium with the file in #profileURL= (the
app's way to load a profile from a URL: App.maybeLoadHashParamProfile in its source).

The npm packages are installed on first use into a cache directory ($XDG_CACHE_HOME/swprof/npm-…),
never into the source tree. tools() returns None with a reason when npm or the registry is not
available, for a skip message.
"""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse

from harness import expect

SPEEDSCOPE = "speedscope@1.25.0"
AJV = "ajv@8.17.1"

# ajv with the schema speedscope ships (node -e: argv[1] the npm directory, argv[2] the file):
# prints "valid" or the first errors as JSON.
VALIDATE_JS = r"""
const {createRequire} = require('node:module');
const fs = require('node:fs');
const modules = createRequire(process.argv[1] + '/node_modules/');
const Ajv = modules('ajv');
const schema = JSON.parse(fs.readFileSync(process.argv[1] + '/node_modules/speedscope/dist/release/file-format-schema.json'));
const validate = new Ajv({allErrors: true, strict: false}).compile(schema);
const doc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
if (validate(doc)) console.log('valid');
else { console.log(JSON.stringify(validate.errors.slice(0, 5))); process.exit(1); }
"""


def tools():
    """(directory with node_modules, None) or (None, why not)."""
    if not shutil.which("npm") or not shutil.which("node"):
        return None, "npm/node not installed (apt-get install nodejs npm)"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    root = os.path.join(cache, "swprof", "npm-%s-%s" % (SPEEDSCOPE, AJV))
    release = os.path.join(root, "node_modules", "speedscope", "dist", "release")
    if not os.path.exists(os.path.join(release, "index.html")) or not os.path.exists(os.path.join(root, "node_modules", "ajv")):
        os.makedirs(root, exist_ok=True)
        proc = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", root, SPEEDSCOPE, AJV],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return None, "npm install %s %s failed: %s" % (SPEEDSCOPE, AJV, proc.stderr.strip()[-500:])
    return root, None


def validate(root, path):
    """Validates a speedscope file against the package's schema; fails the test with ajv's errors."""
    proc = subprocess.run(["node", "-e", VALIDATE_JS, root, path], capture_output=True, text=True, timeout=120)
    expect(proc.returncode == 0 and proc.stdout.strip() == "valid",
           "%s does not validate against speedscope's file-format-schema.json: %s %s" % (path, proc.stdout, proc.stderr))
    print("ok: %s validates against speedscope's schema (ajv)" % os.path.basename(path))


class Server:
    """speedscope's release directory at /app/ and the test's files at /files/, on loopback."""

    def __init__(self, root, files_dir):
        serve = os.path.join(files_dir, "www")
        os.makedirs(serve, exist_ok=True)
        if not os.path.exists(os.path.join(serve, "app")):
            os.symlink(os.path.join(root, "node_modules", "speedscope", "dist", "release"), os.path.join(serve, "app"))
            os.symlink(files_dir, os.path.join(serve, "files"))

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=serve))
        self.base = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, filename, view=None):
        profile = "%s/files/%s" % (self.base, urllib.parse.quote(filename))
        return "%s/app/index.html#profileURL=%s%s" % (self.base, urllib.parse.quote(profile, safe=""),
                                                     "&view=" + view if view else "")

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def open_profile(browser, server, filename, view=None, timeout=60):
    """Opens a file in speedscope's app and waits until it is imported. Returns what the app shows:
    {"title": document title, "alert": an alert's text or None, "error": the error screen's text
    or None}. An import that works retitles the page "<name> - speedscope"."""
    browser.open("about:blank")  # a new hash alone would not reload the app
    browser.open(server.url(filename, view))
    deadline = time.monotonic() + timeout
    while True:
        alert = browser.alert_text()
        if alert is not None:
            browser.s("POST", "/alert/accept", {})
            return {"title": None, "alert": alert, "error": None}
        try:
            state = browser.js("return {title: document.title, body: document.body ? document.body.innerText : ''};")
        except AssertionError as e:
            # The alert opened between the two calls: chromedriver names it in the error
            # ("unexpected alert open: {Alert text : ...}") and leaves it open (see Browser).
            m = re.search(r"unexpected alert open: \{Alert text : (.*)\}", str(e))
            if not m:
                raise
            if browser.alert_text() is not None:
                browser.s("POST", "/alert/accept", {})
            return {"title": None, "alert": m.group(1), "error": None}
        if state is None:
            # An alert opened while the script ran (its result is then null): read it next time.
            time.sleep(0.05)
            continue
        if "Something went wrong" in state["body"]:
            return {"title": state["title"], "alert": None, "error": state["body"][:500]}
        if state["title"].endswith(" - speedscope"):
            return {"title": state["title"], "alert": None, "error": None}
        expect(time.monotonic() < deadline, "speedscope did not import %s within %ds (title %r)" % (filename, timeout, state["title"]))
        time.sleep(0.2)


def expect_imported(result, filename):
    expect(result["alert"] is None, "speedscope said %r opening %s" % (result["alert"], filename))
    expect(result["error"] is None, "speedscope failed to import %s: %s" % (filename, result["error"]))
    print("ok: speedscope imported %s: %r" % (filename, result["title"]))


# The sandwich view's table: one row per function with its total and self weight as displayed.
SANDWICH_ROWS = """
var rows = [];
document.querySelectorAll('tr, [role=row]').forEach(function (r) { rows.push(r.innerText); });
return rows;
"""


def dump_json(path, doc):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f)
