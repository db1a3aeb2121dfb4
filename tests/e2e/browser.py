"""Headless Chromium for the tests, driven over W3C WebDriver (chromedriver) with the standard
library only: the flame-graph tests click and hover in swprof's SVGs, the export tests open
profiles in speedscope's own app. available() says what is missing, for a skip message.
"""
import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import expect

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver's key for element references


def missing():
    """None when Chromium and chromedriver are installed, else what to install."""
    if os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK):
        return None
    return "chromium/chromedriver not installed (apt-get install chromium chromium-driver)"


class Browser:
    def __init__(self, tmp):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log_path = os.path.join(tmp, "chromedriver.log")
        self.log = open(self.log_path, "w")
        self.driver = subprocess.Popen([CHROMEDRIVER, "--port=%d" % port], stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:%d" % port
        self.session = None
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.call("GET", "/status", timeout=2).get("ready"):
                    break
            except (OSError, AssertionError):
                pass
            expect(time.monotonic() < deadline and self.driver.poll() is None,
                   "chromedriver did not start (see %s)" % self.log_path)
            time.sleep(0.1)
        profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1300", "--user-data-dir=" + profile]},
            "goog:loggingPrefs": {"browser": "ALL"},
            # An alert stays open until a test answers it: chromedriver's default dismisses one
            # that opens while a script runs, and that script's result is then null.
            "unhandledPromptBehavior": "ignore"}}}
        self.session = self.call("POST", "/session", caps, timeout=60)["sessionId"]

    def call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode() or "{}").get("value")
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            try:
                detail = json.loads(detail)["value"]["message"].splitlines()[0]
            except (ValueError, KeyError, TypeError, IndexError):
                pass
            raise AssertionError("WebDriver %s %s: %s" % (method, path, detail))

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def open(self, url):
        self.s("POST", "/url", {"url": url})

    def open_loaded(self, url, timeout=20):
        """Opens a page and waits until the document has loaded (its scripts have run)."""
        self.open(url)
        deadline = time.monotonic() + timeout
        while self.js("return document.readyState;") != "complete":
            expect(time.monotonic() < deadline, "%s did not finish loading" % url)
            time.sleep(0.1)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def element(self, css):
        return self.s("POST", "/element", {"using": "css selector", "value": css})

    def click(self, element):
        self.s("POST", "/element/%s/click" % element[ELEMENT], {})

    def keys(self, *keys):
        actions = []
        for k in keys:
            actions += [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]
        self.s("POST", "/actions", {"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})

    def hover(self, element):
        self.s("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                                                 "actions": [{"type": "pointerMove", "origin": element, "x": 0, "y": 0}]}]})

    def answer_prompt(self, text):
        deadline = time.monotonic() + 10
        while True:
            try:
                self.s("GET", "/alert/text")
                break
            except AssertionError:
                expect(time.monotonic() < deadline, "no search prompt appeared")
                time.sleep(0.1)
        self.s("POST", "/alert/text", {"text": text})
        self.s("POST", "/alert/accept", {})

    def alert_text(self):
        """The text of an open alert, or None."""
        try:
            return self.s("GET", "/alert/text")
        except AssertionError:
            return None

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def console_errors(self):
        """Errors the page logged (goog:loggingPrefs browser log), if chromedriver keeps them."""
        try:
            entries = self.s("POST", "/se/log", {"type": "browser"}) or []
        except AssertionError:
            return []
        return [e["message"] for e in entries if e.get("level") == "SEVERE"]

    def quit(self):
        try:
            if self.session:
                self.call("DELETE", "/session/" + self.session, timeout=20)
        except (OSError, AssertionError):
            pass
        finally:
            self.driver.terminate()
            try:
                self.driver.wait(10)
            except subprocess.TimeoutExpired:
                self.driver.kill()
                self.driver.wait()
            self.log.close()


