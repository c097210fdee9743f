"""Stopping the servers tests start (named, nginx): politely, then for good."""

import subprocess


def stop(process: subprocess.Popen, *, grace: float = 10) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
