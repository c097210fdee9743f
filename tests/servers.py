"""The servers tests start and stop: a free loopback port, a real nginx in the foreground, and
stopping a server politely, then for good."""

import contextlib
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest


def stop(process: subprocess.Popen, *, grace: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(tmp_path: Path, server: str, port: int):
    """A real nginx in the foreground with ``server`` as its only site; stopped by pid."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "server.conf").write_text(server)
    main = run_dir / "nginx.conf"
    main.write_text(
        # root: the workers must read files under pytest's private tmp folders
        f"user root;\npid {run_dir}/nginx.pid;\nerror_log {run_dir}/error.log;\nevents {{}}\n"
        f"http {{\n  include /etc/nginx/mime.types;\n  access_log {run_dir}/access.log;\n"
        f"  include {run_dir}/server.conf;\n}}\n"
    )
    command = ["/usr/sbin/nginx", "-e", f"{run_dir}/error.log", "-p", f"{run_dir}/", "-c", main]
    process = subprocess.Popen([*command, "-g", "daemon off;"])
    try:
        wait_for(port, process, run_dir)
        yield run_dir
    finally:
        stop(process)


def wait_for(port: int, process: subprocess.Popen, run_dir: Path) -> None:
    for _ in range(100):
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    pytest.fail((run_dir / "error.log").read_text())


def for_the_test(content: bytes, root: Path, port: int, listen: str, real_root: str) -> str:
    """The rendered server on a free loopback port, its root in the staging tree."""
    text = content.decode()
    assert listen in text and f"root {real_root};" in text
    return text.replace(listen, f"listen 127.0.0.1:{port}", 1).replace(
        f"root {real_root};", f"root {root};"
    )


def get(url: str, method: str = "GET", host: str | None = None):
    headers = {"Host": host} if host else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    return opener.open(request, timeout=5)
