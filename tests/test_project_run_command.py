"""The README's first command, ``bin/run``, sets Mailgate up on SQLite with a Celery worker on
the filesystem broker, prints the owner's password, and serves pages one can log in to."""

import http.cookiejar
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from tests.shared import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(patterns: list[str], lines: list[str], timeout: float) -> list[re.Match]:
    """The first match of every pattern in the output read so far, in whatever order the
    worker and the web server happen to start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = "".join(lines)
        matches = [re.search(pattern, output) for pattern in patterns]
        if all(matches):
            return matches
        time.sleep(0.2)
    raise AssertionError(f"bin/run never printed all of {patterns!r}:\n{''.join(lines)}")


def log_in(port: int, password: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{port}"
    opener.open(f"{base}/login/").read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"username": "admin", "password": password, "csrfmiddlewaretoken": csrf}
    ).encode()
    request = urllib.request.Request(f"{base}/login/", form, headers={"Referer": base + "/"})
    return opener.open(request).read().decode()


def test_it_sets_up_and_runs_mailgate(tmp_path):
    port = free_port()
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SECRET_KEY", "MAILGATE_ENCRYPTION_KEYS", "DATABASE_URL"}
        and not key.startswith("CELERY_")
    }
    environment.update(MAILGATE_DATA_DIR=str(tmp_path), PORT=str(port))
    process = subprocess.Popen(
        ["bin/run"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True).start()
    try:
        password, *_ = wait_for(
            [
                r"password '([^']+)'",
                r"celery@\S+ ready",
                r"beat: Starting",  # the schedule (status, DNS, deployment recovery) runs too
                r"Listening at: http://127\.0\.0\.1",
            ],
            lines,
            timeout=180,
        )
        password = password.group(1)
        dashboard = log_in(port, password)
        assert "<h1>Dashboard</h1>" in dashboard
        assert (tmp_path / "mailgate.sqlite3").exists()
        assert "MAILGATE_ENCRYPTION_KEYS=" in (tmp_path / "mailgate.env").read_text()
    finally:
        stop(process, lines)


def stop(process, lines: list[str]) -> None:
    """Stop bin/run and everything it started; a shutdown that hangs is reported, then killed."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise AssertionError(f"bin/run did not stop on SIGTERM:\n{''.join(lines)}") from None
