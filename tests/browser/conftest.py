"""pytest fixtures for the browser tests: daemons, browsers and line users
made on demand and always stopped, and the CSP check every page gets."""

import pytest

from harness import Browser, Daemon, LineUser


@pytest.fixture
def daemons():
    """daemons(**kwargs) starts a chat-server; each is stopped by its PID at the end."""
    started = []

    def start(**kwargs):
        daemon = Daemon(**kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def daemon(daemons):
    return daemons()


@pytest.fixture
def browsers():
    """browsers(**kwargs) starts a headless Chromium. At the end each one's
    console must show no Content-Security-Policy violation."""
    started = []

    def start(**kwargs):
        browser = Browser(**kwargs)
        started.append(browser)
        return browser

    yield start
    violations = []
    for browser in started:
        try:
            violations.extend(browser.csp_violations())
        finally:
            browser.quit()
    assert violations == [], "the page broke its Content-Security-Policy"


@pytest.fixture
def browser(browsers):
    return browsers()


@pytest.fixture
def line_users():
    """line_users(port, nick, room) connects a user as nc would; closed at the end."""
    made = []

    def connect(port, nick=None, room=None, host="127.0.0.1"):
        user = LineUser(port, nick, room, host)
        made.append(user)
        return user

    yield connect
    for user in made:
        user.close()
