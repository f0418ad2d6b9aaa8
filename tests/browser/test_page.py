"""The web page in a real browser (issue 18, "Proof"): headless Chromium
against a chat-server of the test's own, beside users of the line protocol
who connect as `nc` does.

Each test starts its own daemon on free loopback ports and its own browser
with an empty profile; the `browsers` fixture fails any test whose page
broke its Content-Security-Policy (the browser's console is read).
"""

import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from harness import TIMEOUT

INJECTION = "<img src=x onerror=alert(1)>"


def who_answered(user, room, nick):
    """Sends /who and waits for its answer: the hub has then handled every
    line user sent before, so they are in the room's history."""
    user.send("/who")
    user.read_until(lambda line: line.startswith("-- ") and f" in {room}: " in line and nick in line)


def test_a_browser_user_and_an_nc_user_in_one_room_see_each_others_lines(daemon, browser, line_users):
    bob = line_users(daemon.line_port, "bob", "#rust")
    browser.open(daemon.url)
    browser.choose("alice", "rust")
    bob.read_until("-- alice joined #rust")

    browser.type("hello from the browser")
    assert bob.read_until(lambda line: line.startswith("<alice>")) == "<alice> hello from the browser"
    own = browser.wait_row("alice: hello from the browser", cls="own")
    assert "kind-message" in own["cls"].split()

    bob.send("hello from nc, see https://example.org/docs.")
    bob.send("/me waves")
    row = browser.wait_row("bob: hello from nc", cls="kind-message")
    assert "own" not in row["cls"].split()
    assert row["text"].endswith("bob: hello from nc, see https://example.org/docs.")
    # The time is the local HH:MM it arrived at.
    assert len(row["time"]) == 5 and row["time"][2] == ":", row["time"]
    browser.wait_row("bob waves", cls="kind-action")

    # The URL became a link that opens apart from the page, the full stop left out.
    link = browser.js(
        "const a = [...document.querySelectorAll('#log a')].pop();"
        " return a && [a.href, a.textContent, a.target, a.rel];"
    )
    assert link == ["https://example.org/docs", "https://example.org/docs", "_blank", "noopener noreferrer"]
    # bob has the same colour class on both his rows, and it is one of the page's.
    colours = browser.js(
        "return [...document.querySelectorAll('#log .nick')]"
        ".filter(n => n.textContent === 'bob').map(n => n.className)"
    )
    assert len(colours) == 2 and colours[0] == colours[1], colours
    assert colours[0].startswith("nick nick-"), colours


def test_the_injection_string_arrives_as_text_both_ways(daemon, browser, line_users):
    bob = line_users(daemon.line_port, "bob", "#sec")
    browser.open(daemon.url)
    browser.choose("alice", "sec")
    bob.read_until("-- alice joined #sec")

    bob.send(INJECTION)
    row = browser.wait_row(INJECTION, cls="kind-message")
    assert row["text"].endswith("bob: " + INJECTION)
    text = browser.js("return [...document.querySelectorAll('#log .text')].pop().textContent")
    assert text == INJECTION
    assert browser.js("return document.querySelectorAll('img:not(.logo):not(.setup-logo)').length") == 0
    assert browser.js("return document.querySelectorAll('#log *[onerror], #log img').length") == 0

    # Typed in the page, it reaches nc as the same characters, and the
    # page's own copy of it is text too.
    browser.type(INJECTION)
    assert bob.read_until(lambda line: line.startswith("<alice>")) == "<alice> " + INJECTION
    browser.wait_row("alice: " + INJECTION, cls="own")
    assert browser.js("return document.querySelectorAll('#log img').length") == 0

    try:
        alert = browser.driver.switch_to.alert.text
    except NoAlertPresentException:
        alert = None
    assert alert is None, f"an alert fired: {alert!r}"


def test_the_page_reconnects_after_the_daemon_restarts_on_the_same_port(daemons, browser, line_users):
    first = daemons()
    browser.open(first.url)
    browser.choose("alice", "ops")

    assert first.stop() is not None
    browser.wait(
        lambda: browser.js("return document.getElementById('status').dataset.state") != "online",
        "the page did not notice the daemon went",
    )
    browser.wait_row("The server is going away", cls="kind-status")
    browser.wait_row("Reconnecting in", cls="kind-status")

    second = daemons(web=first.web_addr)
    assert second.web_addr == first.web_addr
    browser.wait_ready("alice", "#ops")
    browser.wait_row("Back: you are alice in #ops.", cls="kind-status")

    # Back for real: in #ops as alice on the new daemon, both ways.
    bob = line_users(second.line_port, "bob", "#ops")
    who_answered(bob, "#ops", "alice")
    bob.send("welcome back")
    browser.wait_row("bob: welcome back")
    browser.type("thanks")
    assert bob.read_until(lambda line: line.startswith("<alice>")) == "<alice> thanks"


def test_a_reconnect_to_the_same_daemon_shows_only_the_history_it_missed(daemons, browser, line_users, tmp_path):
    # bob talks over IPv6 so that banning 127.0.0.1 for a while cuts off
    # the browser alone: it is disconnected, and refused until the unban.
    control = str(tmp_path / "control")
    daemon = daemons(line="[::1]:0", extra=("--control-socket", control))
    bob = line_users(daemon.line_port, "bob", "#den", host="::1")
    bob.send("one")
    bob.send("two")
    who_answered(bob, "#den", "bob")
    browser.open(daemon.url)
    browser.choose("alice", "den")
    browser.wait_row("bob: two", cls="history")
    bob.send("three")
    browser.wait_row("bob: three")

    assert "1 disconnected" in daemon.ctl("ban", "127.0.0.1")
    bob.read_until(lambda line: line.startswith("-- alice ") and "#den" in line)
    browser.wait_row("Connection lost.", cls="kind-status")
    bob.send("said while you were away")
    who_answered(bob, "#den", "bob")
    daemon.ctl("unban", "127.0.0.1")

    # The backoff is at a few seconds by now (refused attempts double it).
    browser.wait_ready("alice", "#den", timeout=3 * TIMEOUT)
    missed = browser.wait_row("bob: said while you were away", cls="history")
    assert missed["text"].endswith("bob: said while you were away")
    texts = [row["text"] for row in browser.rows()]
    for line in ("bob: one", "bob: two", "bob: three"):
        assert sum(text.endswith(line) for text in texts) == 1, (line, texts)
    # The refusals while banned were shown, as the server's errors.
    assert any("banned" in text for text in texts), texts


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


FOREIGN_PAGE = """<!doctype html>
<title>another site</title>
<p id="result">pending</p>
<script>
const params = new URLSearchParams(location.search);
const ws = new WebSocket(params.get('ws'));
const result = document.getElementById('result');
const seen = [];
const note = (what) => { seen.push(what); result.textContent = seen.join(', '); };
ws.onopen = () => note('open');
ws.onerror = () => note('error');
ws.onclose = (event) => note('closed ' + event.code);
</script>
"""


def test_a_page_of_another_origin_cannot_open_the_socket(daemon, browser, tmp_path):
    # Another site: a page served from another port, so another origin.
    (tmp_path / "index.html").write_text(FOREIGN_PAGE)
    other = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(tmp_path)))
    server_thread = threading.Thread(target=other.serve_forever, daemon=True)
    server_thread.start()
    try:
        port = other.server_address[1]
        assert port != daemon.web_port
        ws_url = f"ws://{daemon.web_addr}/ws"
        browser.open(f"http://127.0.0.1:{port}/?ws={ws_url}")
        browser.wait(
            lambda: "closed" in browser.js("return document.getElementById('result').textContent"),
            "the foreign page's socket neither opened nor failed",
        )
        # Never open: an error, then the close a failed handshake gets.
        assert browser.js("return document.getElementById('result').textContent") == "error, closed 1006"
        # The refusal is the server's, seen by the browser as a failed upgrade.
        assert any(
            "403" in message for message in browser.console_messages()
        ), browser.console_messages()
    finally:
        other.shutdown()
        other.server_close()
        server_thread.join(timeout=TIMEOUT)

    # The same script on the daemon's own page does open the socket.
    browser.open(daemon.url)
    browser.js(
        "window.__probe = 'pending';"
        " const ws = new WebSocket(arguments[0]);"
        " ws.onopen = () => { window.__probe = 'open'; ws.close(); };"
        " ws.onerror = () => { window.__probe = 'error'; };",
        ws_url,
    )
    browser.wait(lambda: browser.js("return window.__probe") != "pending", "own page's socket did nothing")
    assert browser.js("return window.__probe") == "open"
    # The failed upgrade's console message is expected; nothing else may be there.
    browser.console = [entry for entry in browser.console if "403" not in entry["message"]]


def upgrade(daemon, origin):
    """A raw WebSocket upgrade to /ws with this Origin: the status line."""
    request = (
        "GET /ws HTTP/1.1\r\n"
        f"Host: {daemon.web_addr}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", daemon.web_port), timeout=TIMEOUT) as sock:
        sock.sendall(request.encode())
        answer = b""
        while b"\r\n" not in answer and len(answer) < 8192:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def test_a_raw_upgrade_with_a_foreign_origin_gets_403(daemon):
    assert upgrade(daemon, "http://evil.example").startswith("HTTP/1.1 403 ")
    assert upgrade(daemon, "http://" + daemon.web_addr).startswith("HTTP/1.1 101 ")


def test_history_shows_on_join_marked_as_history(daemon, browser, line_users):
    bob = line_users(daemon.line_port, "bob", "#den")
    bob.send("said before you came")
    bob.send("/me put the kettle on")
    who_answered(bob, "#den", "bob")

    browser.open(daemon.url)
    browser.choose("carol", "den")
    browser.wait_row("bob: said before you came", cls="history")
    browser.wait_row("bob put the kettle on", cls="history")
    rows = browser.rows()
    texts = [row["text"] for row in rows]
    divider = next(i for i, row in enumerate(rows) if "divider" in row["cls"].split())
    assert texts[divider] == "earlier messages"
    history = [row for row in rows if "history" in row["cls"].split()]
    assert [row["text"].split("bob", 1)[1] for row in history] == [": said before you came", " put the kettle on"]
    assert rows.index(history[0]) == divider + 1
    # A live line afterwards is not history.
    bob.send("and now live")
    live = browser.wait_row("bob: and now live")
    assert "history" not in live["cls"].split()


def test_nick_and_room_are_remembered_across_a_reload(daemon, browser, line_users):
    browser.open(daemon.url)
    browser.choose("dave", "attic")
    browser.driver.refresh()
    browser.wait_ready("dave", "#attic")
    assert browser.js("return document.getElementById('setup').open") is False

    # /nick and /join typed as in nc change what is remembered too.
    browser.type("/nick dave2")
    browser.wait_ready("dave2", "#attic")
    browser.type("/join cellar")
    browser.wait_ready("dave2", "#cellar")
    browser.driver.refresh()
    browser.wait_ready("dave2", "#cellar")
    bob = line_users(daemon.line_port, "bob", "#cellar")
    who_answered(bob, "#cellar", "dave2")


def test_the_title_counts_unread_lines_while_the_tab_is_hidden(daemon, browser, line_users):
    bob = line_users(daemon.line_port, "bob", "#rust")
    browser.open(daemon.url)
    browser.choose("alice", "rust")
    bob.read_until("-- alice joined #rust")
    assert browser.driver.title == "#rust - chat"

    # Headless Chromium hides a minimised window for real (visibilityState
    # "hidden", a visibilitychange event): no test hook in the page.
    browser.driver.minimize_window()
    browser.wait(lambda: browser.js("return document.visibilityState") == "hidden", "the tab did not hide")
    for n in range(3):
        bob.send(f"unread {n}")
    browser.wait(lambda: browser.driver.title == "(3) #rust - chat", f"title is {browser.driver.title!r}")

    browser.driver.maximize_window()
    browser.wait(lambda: browser.js("return document.visibilityState") == "visible", "the tab did not show")
    browser.wait(lambda: browser.driver.title == "#rust - chat", f"title is {browser.driver.title!r}")
    # Lines that come while the tab is visible are not counted.
    bob.send("seen at once")
    browser.wait_row("bob: seen at once")
    assert browser.driver.title == "#rust - chat"


def test_the_page_fits_a_phone_without_horizontal_scroll(daemon, browsers, line_users):
    browser = browsers(width=360, height=740, mobile=True)
    bob = line_users(daemon.line_port, "bob", "#phone")
    browser.open(daemon.url)
    browser.choose("alice", "phone")
    bob.send("a long word: " + "x" * 300)
    bob.send("a long link: https://example.org/" + "a/" * 120)
    browser.wait_row("bob: a long link")

    sizes = browser.js(
        "const d = document.documentElement;"
        " const rect = (id) => document.getElementById(id).getBoundingClientRect();"
        " return {scroll: d.scrollWidth, client: d.clientWidth, inner: window.innerWidth,"
        " height: window.innerHeight, input: rect('input'), send: rect('send'), log: rect('log')};"
    )
    assert sizes["inner"] == 360
    assert sizes["scroll"] <= sizes["client"], sizes
    # The input sits at the bottom, below the messages, and the touch targets are big enough.
    assert sizes["input"]["bottom"] <= sizes["height"] and sizes["height"] - sizes["input"]["bottom"] < 24, sizes
    assert sizes["input"]["top"] >= sizes["log"]["bottom"] - 1, sizes
    assert sizes["input"]["height"] >= 40 and sizes["send"]["height"] >= 40, sizes
    assert sizes["send"]["right"] <= 360, sizes
    overflowing = browser.js(
        "return [...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && e.getClientRects().length)"
        ".map(e => e.tagName + '.' + e.className)"
    )
    assert overflowing == [], overflowing
    # The room's name is shown whole, not cut to "#ph…".
    assert browser.js("const h = document.getElementById('room-name'); return h.scrollWidth <= h.clientWidth")


def test_a_broken_policy_would_show_in_the_console(daemon, browser):
    """The CSP check of the fixture can fail: an inline script added to the
    page is refused, and the refusal is in the log the check reads."""
    browser.open(daemon.url)
    browser.js(
        "const s = document.createElement('script'); s.textContent = 'window.__ran = true';"
        " document.body.append(s);"
    )
    browser.wait(lambda: browser.csp_violations(), "no CSP violation logged for an inline script")
    assert browser.js("return window.__ran === true") is False
    # This test broke the policy on purpose; the fixture must not fail it.
    browser.console = []


# Stands in for the browser's Notification before the page's script runs
# (injected by the driver, so the page's CSP does not apply to it): records
# what the page shows and how often it asks for permission.
NOTIFICATION_SPY = """
window.__notes = [];
window.__asked = 0;
const RealNotification = window.Notification;
window.Notification = class {
  constructor(title, options) { window.__notes.push([title, (options || {}).body]); }
  close() {}
  static get permission() { return RealNotification.permission; }
  static requestPermission() { window.__asked += 1; return RealNotification.requestPermission(); }
};
"""


def test_notifications_are_opt_in_and_only_for_mentions_and_private_messages_while_hidden(
    daemon, browser, line_users
):
    browser.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": NOTIFICATION_SPY})
    bob = line_users(daemon.line_port, "bob", "#rust")
    browser.open(daemon.url)
    browser.choose("alice", "rust")
    bob.read_until("-- alice joined #rust")
    # Never asked on load: the button asks, and only when pressed.
    assert browser.js("return [window.__asked, Notification.permission]") == [0, "default"]
    notify = browser.driver.find_element(By.ID, "notify")
    assert notify.is_displayed() and notify.get_attribute("aria-pressed") == "false"

    browser.driver.execute_cdp_cmd(
        "Browser.grantPermissions", {"origin": daemon.url.rstrip("/"), "permissions": ["notifications"]}
    )
    notify.click()
    browser.wait(lambda: notify.get_attribute("aria-pressed") == "true", "notifications did not turn on")

    browser.driver.minimize_window()
    browser.wait(lambda: browser.js("return document.visibilityState") == "hidden", "the tab did not hide")
    bob.send("just chatting")
    bob.send("alice, can you look at this?")
    bob.send("/msg alice psst")
    bob.read_until("-> *alice* psst")
    browser.wait(lambda: len(browser.js("return window.__notes")) == 2, "no two notifications")
    assert browser.js("return window.__notes") == [
        ["bob in #rust", "alice, can you look at this?"],
        ["bob (private)", "psst"],
    ]
    browser.wait_row("bob: just chatting")

    browser.driver.maximize_window()
    browser.wait(lambda: browser.js("return document.visibilityState") == "visible", "the tab did not show")
    bob.send("alice: and now?")
    row = browser.wait_row("bob: alice: and now?", cls="mention")
    assert "mention" in row["cls"].split()
    assert len(browser.js("return window.__notes")) == 2


NICK_COLOURS = """
const out = [];
const background = (node) => {
  for (; node; node = node.parentElement) {
    const colour = getComputedStyle(node).backgroundColor;
    if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
  }
  return 'rgb(255, 255, 255)';
};
for (const rowClass of ['row kind-message', 'row kind-message mention', 'row kind-private-in']) {
  const row = document.createElement('li');
  row.className = rowClass;
  document.getElementById('log').append(row);
  for (let i = 0; i < 10; i++) {
    const nick = document.createElement('span');
    nick.className = 'nick nick-' + i;
    nick.textContent = 'nick' + i;
    row.append(nick);
    out.push([rowClass, i, getComputedStyle(nick).color, background(nick)]);
  }
  row.remove();
}
return out;
"""


def _luminance(css):
    red, green, blue = (int(part) for part in css[css.index("(") + 1 : css.index(")")].split(",")[:3])

    def channel(value):
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def _contrast(foreground, background):
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_nick_colour_is_readable_in_the_light_and_the_dark_scheme(daemon, browsers):
    for dark in (False, True):
        browser = browsers(dark=dark)
        browser.open(daemon.url)
        browser.choose("dark" if dark else "light", "rust")
        measured = browser.js(NICK_COLOURS)
        assert len(measured) == 30
        assert len({colour for _, _, colour, _ in measured}) == 10, measured
        poor = [
            (row, i, colour, background, round(_contrast(colour, background), 2))
            for row, i, colour, background in measured
            if _contrast(colour, background) < 4.5
        ]
        assert poor == [], f"dark={dark}: nick colours under WCAG AA's 4.5:1: {poor}"


def test_the_reconnect_delays_double_from_one_second_to_thirty_with_jitter(daemon, browser):
    browser.open(daemon.url)
    # retryDelay(attempt) is the page's own schedule (a global of app.js).
    delays = browser.js(
        "return [...Array(10).keys()].map(a => [...Array(50)].map(() => retryDelay(a)))"
    )
    for attempt, samples in enumerate(delays):
        base = min(30000, 1000 * 2**attempt)
        assert all(0.75 * base <= d <= min(30000, 1.25 * base) for d in samples), (attempt, samples)
        if base < 30000:
            assert len(set(samples)) > 1, f"no jitter at attempt {attempt}: {samples}"
    assert max(delays[-1]) <= 30000


def test_the_controls_are_labelled_and_the_log_is_announced(daemon, browser):
    browser.open(daemon.url)
    unlabelled = browser.js(
        "return [...document.querySelectorAll('input, button')].filter(e =>"
        " !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())"
        ".map(e => e.id || e.outerHTML)"
    )
    assert unlabelled == []
    log = browser.driver.find_element(By.ID, "log")
    assert (log.get_attribute("role"), log.get_attribute("aria-live")) == ("log", "polite")
    labels = browser.js(
        "return ['setup-nick', 'setup-room', 'input'].map(id => document.getElementById(id).labels[0].textContent.trim())"
    )
    assert labels == ["Nick", "Room", "Message, or a command such as /help"]
