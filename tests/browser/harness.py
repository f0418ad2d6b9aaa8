"""What the browser tests and scripts/screenshots share: a chat-server on
free loopback ports, a line-protocol user like `nc`, and headless Chromium
(Debian's chromium and chromium-driver) driven by Selenium.

Nothing here sleeps to synchronise: every wait is on an event (a line read,
a log line printed, a condition in the page) with a deadline, and every
loop is bounded in count and time.
"""

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

# Selenium must not download a driver or a browser: Debian's are used.
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# How long any one wait may take: generous for a loaded 2-core machine.
TIMEOUT = 15
# The flags issue 18 asks for: no sandbox (root in CI), no GPU, no QUIC,
# and nothing that reaches the network by itself.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chat_server_binary():
    """$CHAT_SERVER_BIN, else the debug build scripts/test made."""
    explicit = os.environ.get("CHAT_SERVER_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str((ROOT / target / "debug" / "chat-server").resolve())


class Daemon:
    """A chat-server with a line listener and a web listener, stopped by
    its PID. Ports 0 by default; the addresses are read from its log."""

    LINE = re.compile(r"listening on (\S+:\d+)$")
    WEB = re.compile(r"listening on (\S+:\d+) \(web\)$")

    # The daemon runs on its defaults: page loads draw on the web
    # listeners' own connection throttle (eight times --connect-rate), so
    # reloading the page and adding nc users from the same 127.0.0.1 is
    # served as a user would be.
    OPTIONS = ()

    def __init__(self, line="127.0.0.1:0", web="127.0.0.1:0", extra=()):
        self.log = []
        self.lines = queue.Queue()
        self.process = subprocess.Popen(
            [chat_server_binary(), "--listen", line, "--web-listen", web, *self.OPTIONS, *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Drains the log for as long as the daemon runs, so it never blocks
        # on a full pipe; the lines go to self.log and to the queue.
        threading.Thread(target=self._read_log, daemon=True).start()
        self.line_addr = None
        self.web_addr = None
        deadline = time.monotonic() + TIMEOUT
        while self.line_addr is None or self.web_addr is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise AssertionError("chat-server did not say where it listens:\n" + "".join(self.log))
            try:
                text = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if text is None:
                raise AssertionError("chat-server exited at start:\n" + "".join(self.log))
            if (match := self.WEB.search(text.rstrip())) is not None:
                self.web_addr = match.group(1)
            elif (match := self.LINE.search(text.rstrip())) is not None:
                self.line_addr = match.group(1)

    def _read_log(self):
        for text in self.process.stderr:
            self.log.append(text)
            self.lines.put(text)
        self.lines.put(None)

    @property
    def line_port(self):
        return int(self.line_addr.rsplit(":", 1)[1])

    @property
    def web_port(self):
        return int(self.web_addr.rsplit(":", 1)[1])

    @property
    def url(self):
        return "http://" + self.web_addr + "/"

    def ctl(self, *args):
        """Runs `chat-server ctl ARGS` against this daemon (started with
        --control-socket); its output."""
        socket_path = self.process.args[self.process.args.index("--control-socket") + 1]
        done = subprocess.run(
            [chat_server_binary(), "ctl", "--socket", socket_path, *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert done.returncode == 0, f"ctl {args}: {done.returncode} {done.stderr}"
        return done.stdout

    def stop(self):
        """SIGTERM to its PID, then SIGKILL if it has not gone in time."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=TIMEOUT)
        return self.process.returncode


class LineUser:
    """A user of the line protocol over plain TCP, as with `nc`."""

    def __init__(self, port, nick=None, room=None, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buffer = b""
        self.seen = []
        self.read_until(lambda line: line.startswith("-- welcome to "))
        if nick:
            self.send("/nick " + nick)
            self.read_until(lambda line: line == "-- you are now known as " + nick)
        if room:
            self.send("/join " + room)
            self.read_until(lambda line: line.startswith("-- you joined #"))

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def read_until(self, wanted, timeout=TIMEOUT):
        """The first line from now on for which wanted(line) holds (or that
        equals wanted, for a string); every line read is kept in seen."""
        if isinstance(wanted, str):
            text = wanted
            wanted = lambda line: line == text  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\n", 1)
                line = raw.decode()
                self.seen.append(line)
                if wanted(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("line not received in time; read so far:\n" + "\n".join(self.seen))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise AssertionError("the server closed the connection; read:\n" + "\n".join(self.seen))
            self.buffer += chunk

    def close(self):
        self.sock.close()


class Browser:
    """Headless Chromium with its own empty profile, and helpers for the page."""

    def __init__(self, width=1280, height=800, mobile=False, dark=False):
        self.profile = tempfile.mkdtemp(prefix="chat-browser-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in CHROMIUM_FLAGS + ["--user-data-dir=" + self.profile, f"--window-size={width},{height}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.console = []
        self.viewport(width, height, mobile)
        if mobile:
            # Phones draw overlay scrollbars that take no width.
            self.driver.execute_cdp_cmd("Emulation.setScrollbarsHidden", {"hidden": True})
        scheme = "dark" if dark else "light"
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )

    def viewport(self, width, height, mobile=False):
        """The page's own size, exactly (the window's includes nothing then)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- waiting and reading

    def wait(self, condition, message, timeout=TIMEOUT):
        """Waits until condition() is true (returns its value), or fails with message."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda _: condition(), message)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def rows(self):
        """The log's rows: their classes and their text as in the DOM."""
        return self.js(
            "return [...document.querySelectorAll('#log > li')].map(li => "
            "({cls: li.className, text: li.textContent, time: (li.querySelector('time') || {}).textContent || ''}))"
        )

    def wait_row(self, contains, cls=None, timeout=TIMEOUT):
        """The first row whose text contains `contains` (and has class cls)."""

        def find():
            for row in self.rows():
                if contains in row["text"] and (cls is None or cls in row["cls"].split()):
                    return row
            return None

        return self.wait(find, f"no row with {contains!r} (class {cls}); rows: {self.rows()}", timeout)

    def console_messages(self):
        """Every browser console message so far (Selenium hands each out once)."""
        self.console.extend(self.driver.get_log("browser"))
        return [entry["message"] for entry in self.console]

    def csp_violations(self):
        return [m for m in self.console_messages() if "Content Security Policy" in m or "Refused to" in m]

    # -- using the page

    def open(self, url):
        self.driver.get(url)
        self.wait(lambda: self.js("return document.readyState") == "complete", "page not loaded")

    def choose(self, nick, room):
        """Fills in the first-visit form and waits until the server confirmed both."""
        self.wait(lambda: self.driver.find_element(By.ID, "setup").is_displayed(), "no first-visit form")
        self.driver.find_element(By.ID, "setup-nick").send_keys(nick)
        room_field = self.driver.find_element(By.ID, "setup-room")
        room_field.clear()
        room_field.send_keys(room)
        self.driver.find_element(By.CSS_SELECTOR, "#setup-form button[type=submit]").click()
        self.wait_ready(nick, "#" + room.lstrip("#"))

    def wait_ready(self, nick, room, timeout=TIMEOUT):
        """Waits until the page is connected as nick in room."""

        def ready():
            here = self.js(
                "return [document.getElementById('status').dataset.state,"
                " document.getElementById('me-nick').textContent,"
                " document.getElementById('room-name').textContent]"
            )
            return here == ["online", nick, room]

        self.wait(ready, f"the page did not become {nick} in {room}", timeout)

    def type(self, text):
        field = self.driver.find_element(By.ID, "input")
        field.send_keys(text)
        field.send_keys(Keys.ENTER)
        self.wait(lambda: field.get_attribute("value") == "", "the line was not sent")

