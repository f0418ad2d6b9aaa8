"""Takes README's screenshots of the web page (run by scripts/screenshots):
a chat-server of its own on free loopback ports, two users of the line
protocol (as with `nc`) who talk before and while the browser user is
there, and headless Chromium at a desktop and a phone size.

usage: python screenshots.py OUT_DIR [--dark]
"""

import sys
from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from harness import Browser, Daemon, LineUser

# What is said before the browser user comes: shown as the room's history.
BEFORE = [
    ("bob", "morning! the 0.9 release notes are up: https://example.org/chat-server/0.9"),
    ("grace", "nice. did the sendq change make it in?"),
    ("bob", "it did, with the slow-consumer test"),
    ("grace", "/me reads the notes"),
    ("grace", "and the fan-out numbers are in BENCHMARKS.md"),
    ("bob", "and the IRC listener passes the irctest core subset now"),
    ("grace", "so irssi, WeeChat and nc users all share #rust"),
    ("bob", "yes, same rooms, same history"),
    ("grace", "great, I will try it this afternoon"),
]


def conversation(out, dark):
    daemon = Daemon()
    users = []
    try:
        bob = LineUser(daemon.line_port, "bob", "#rust")
        grace = LineUser(daemon.line_port, "grace", "#rust")
        users += [bob, grace]
        bob.send("/topic Rust and chat-server: releases, reviews, questions")
        grace.read_until(lambda line: line.startswith("-- bob set the topic"))
        who = {"bob": bob, "grace": grace}
        for nick, text in BEFORE:
            who[nick].send(text)
            # The other one hearing it means it is in the history.
            other = grace if nick == "bob" else bob
            heard = f"* {nick} {text[4:]}" if text.startswith("/me ") else f"<{nick}> {text}"
            other.read_until(heard)

        suffix = "-dark" if dark else ""
        desktop = Browser(width=1280, height=800, dark=dark)
        phone = Browser(width=390, height=844, mobile=True, dark=dark)
        try:
            for browser, nick in ((desktop, "alice"), (phone, "omar")):
                browser.open(daemon.url)
                browser.choose(nick, "rust")
                bob.read_until(f"-- {nick} joined #rust")
            desktop.type("hi all! is the web page in this release too?")
            bob.read_until(lambda line: line.startswith("<alice> hi all"))
            bob.send("alice: yes, chat-server --web-listen and open it in a browser")
            grace.send("/me opens it on her phone")
            grace.send("works here, and nc users see everything: <b>no HTML</b> gets through")
            phone.type("hello from the phone")
            bob.send("/msg alice the screenshots are for the README")
            desktop.wait_row("the screenshots are for the README")
            phone.wait_row("no HTML")
            desktop.wait_row("hello from the phone")
            for browser in (desktop, phone):
                browser.js("document.activeElement && document.activeElement.blur()")
                # The pointer leaves the rows, so none is shown hovered.
                ActionChains(browser.driver).move_to_element(
                    browser.driver.find_element(By.ID, "room-name")
                ).perform()
            desktop.driver.save_screenshot(str(out / f"web-desktop{suffix}.png"))
            phone.driver.save_screenshot(str(out / f"web-phone{suffix}.png"))
            violations = desktop.csp_violations() + phone.csp_violations()
            if violations:
                raise SystemExit("the page broke its Content-Security-Policy: " + repr(violations))
        finally:
            desktop.quit()
            phone.quit()
    finally:
        for user in users:
            user.close()
        daemon.stop()


def main():
    out = Path(sys.argv[1]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    conversation(out, dark="--dark" in sys.argv[2:])


if __name__ == "__main__":
    main()
