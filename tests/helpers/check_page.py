"""Opens an HTML file in headless Chromium over the DevTools protocol, as a reader would, and
prints one JSON object: the console errors, failed loads and uncaught exceptions the page
caused, the ids of its <section> elements, whether every image decoded, and the path of a
screenshot of the first screen.

    python check_page.py PAGE.html SCREENSHOT.png [WIDTH HEIGHT]

Needs Debian's `chromium` (scripts/test installs it) and websocket-client (scripts/
setup-notebooks.sh). The browser gets no network: the page must stand alone.
"""

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def start_browser(profile):
    browser = subprocess.Popen(
        [
            os.environ.get("CHROMIUM", "chromium"),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            # Any request off the machine fails, so a page that needs the network shows errors.
            "--proxy-server=127.0.0.1:9",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own process group: Chromium's helper processes (renderer, GPU, crash handler)
        # outlive the main one and go on writing the profile unless the group is stopped.
        start_new_session=True,
    )
    port_file = os.path.join(profile, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file):
            with open(port_file) as f:
                lines = f.read().split()
            if lines:
                return browser, int(lines[0])
        time.sleep(0.1)
    browser.kill()
    raise SystemExit("chromium did not open its DevTools port within 30 s")


class Page:
    def __init__(self, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as r:
            targets = [t for t in json.load(r) if t["type"] == "page"]
        # No Origin header: Chromium 111+ refuses DevTools connections from an origin it was
        # not told to allow, and a client with no origin is not a web page.
        self.ws = websocket.create_connection(
            targets[0]["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise SystemExit(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event, seconds=60):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if any(e.get("method") == event for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise SystemExit(f"no {event} within {seconds} s")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


def problems(events):
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            found.append("console: " + " ".join(str(a.get("value")) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            found.append("exception: " + params["exceptionDetails"].get("text", ""))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            found.append(f"load failed: {params.get('errorText')}")
    return found


def main():
    page_path, screenshot = os.path.abspath(sys.argv[1]), sys.argv[2]
    width, height = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (1280, 900)
    # A helper that is still exiting may hold the profile a moment longer.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        browser, port = start_browser(profile)
        try:
            page = Page(port)
            for domain in ("Runtime", "Log", "Network", "Page"):
                page.call(f"{domain}.enable")
            page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            page.call("Page.navigate", url="file://" + page_path)
            page.wait_for("Page.loadEventFired")
            sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
            images = page.evaluate(
                "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
            )
            shot = page.call("Page.captureScreenshot", format="png")
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
            # Late console messages and failures arrive as events after the calls above.
            page.evaluate("0")
            print(
                json.dumps(
                    {
                        "problems": problems(page.events),
                        "sections": sections,
                        "images": images,
                        "screenshot": screenshot,
                    }
                )
            )
        finally:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()
            for _ in range(50):
                try:
                    os.killpg(browser.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)


if __name__ == "__main__":
    main()
