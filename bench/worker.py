"""A real Celery worker for the benchmarks that need one (``fanout.py``, ``converge.py``): the
project's own, on whatever broker the benchmark's environment names, its output in a file."""

import os
import signal
import subprocess
from pathlib import Path

from panel import ROOT


def start(log: Path, processes: int) -> subprocess.Popen:
    command = [str(ROOT / ".venv/bin/celery"), "-A", "gateway", "worker", "-l", "warning"]
    with log.open("wb") as output:
        return subprocess.Popen(  # noqa: S603
            [*command, "--concurrency", str(processes), "--pool", "prefork"],
            cwd=ROOT,
            env={**os.environ, "CELERY_WORKER_CONCURRENCY": str(processes)},
            start_new_session=True,
            stdout=output,
            stderr=output,
        )


def stop(process: subprocess.Popen) -> None:
    """A warm shutdown, and a cold one where that takes more than 10 s."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
