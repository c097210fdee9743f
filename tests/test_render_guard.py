"""The guards (``hosts/render/guard.py``) with the real iptables, in network namespaces this
test makes.

The mail guard: the mail server's PROXY ports answer the hub through the tunnel and nobody else,
not a LAN machine that routes the tunnel address through the server's LAN address, not another
spoke whose traffic the hub forwards. The proxy guard: on the gateway only the proxies' users
open connections to those ports, nothing the gateway forwards does, and nothing on the gateway
reaches the public ports the proxies serve (the proxy would name loopback in its header).
Both: enable is idempotent, verify notices a missing rule, disable leaves nothing."""

import pwd
import secrets
import subprocess
import sys

import pytest

from hosts.checks import run_check
from hosts.render import guard
from tests.render_world import context, hosts

pytestmark = pytest.mark.django_db

LISTENER = """
import socket, sys
servers = []
for port in map(int, sys.argv[1:]):
    server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port)); server.listen(); servers.append(server)
print("ready", flush=True)
sys.stdin.read()
"""


def sh(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, check=False)


class Namespaces:
    """A mail server (``mail``), its hub at the far end of a link named like the tunnel, and a
    LAN machine on a second link."""

    def __init__(self, interface: str):
        tag = secrets.token_hex(3)
        self.mail, self.hub, self.lan = (f"mg-{role}-{tag}" for role in ("mail", "hub", "lan"))
        for name in (self.mail, self.hub, self.lan):
            sh("ip", "netns", "add", name)
        self._link(self.mail, interface, "10.0.1.2/24", self.hub, "10.0.1.1/24")
        self._link(self.mail, "eth0", "192.168.1.10/24", self.lan, "192.168.1.5/24")
        self.run(self.hub, "ip", "addr", "add", "10.0.1.9/24", "dev", "peer")  # another spoke
        self.run(self.lan, "ip", "route", "add", "10.0.1.2/32", "via", "192.168.1.10")

    def _link(self, here: str, name: str, address: str, there: str, far: str) -> None:
        self.run(here, "ip", "link", "add", name, "type", "veth", "peer", "name", "peer")
        self.run(here, "ip", "link", "set", "peer", "netns", there)
        for ns, dev, addr in ((here, name, address), (there, "peer", far)):
            self.run(ns, "ip", "addr", "add", addr, "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
            self.run(ns, "ip", "link", "set", "lo", "up")

    def run(self, ns: str, *command: str) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *command)

    def reaches(self, ns: str, port: int, source: str = "") -> bool:
        code = (
            "import socket, sys; s = socket.socket(); s.settimeout(3); "
            f"s.bind(({source!r}, 0)); s.connect(('10.0.1.2', {port}))"
        )
        return self.run(ns, sys.executable, "-c", code).returncode == 0

    def close(self) -> None:
        for name in (self.mail, self.hub, self.lan):
            sh("ip", "netns", "del", name)


@pytest.fixture
def world():
    return hosts()


@pytest.fixture
def net(world):
    namespaces = Namespaces(world["tunnel"].interface)
    listener = subprocess.Popen(
        ["ip", "netns", "exec", namespaces.mail, sys.executable, "-c", LISTENER, "25", "993"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout.readline().strip() == "ready"
    yield namespaces
    listener.kill()
    listener.wait()
    namespaces.close()


@pytest.fixture
def script(world, tmp_path):
    path = tmp_path / "mailgate-mail-guard"
    path.write_bytes(guard.script(context(world, "home")))
    return str(path)


def test_the_rendered_script_passes_bash_and_shellcheck(world, tmp_path):
    unit = guard.units(context(world, "home"))[0]
    for file in unit.files:
        target = tmp_path / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
    for check in unit.checks:
        result = run_check("mail-guard", check, tmp_path)
        assert result.ok, result.output


def test_only_the_hub_through_the_tunnel_reaches_the_proxy_ports(net, script):
    assert net.reaches(net.lan, 25)  # unguarded, the weak host model lets the LAN in
    for _ in range(2):  # enable twice: the same rules once
        assert net.run(net.mail, "bash", script, "enable").returncode == 0
    jumps = net.run(net.mail, "iptables", "-S", "INPUT").stdout.count(guard.CHAIN)
    assert jumps == 1
    assert net.reaches(net.hub, 25, source="10.0.1.1")
    assert net.reaches(net.hub, 993, source="10.0.1.1")
    assert not net.reaches(net.hub, 25, source="10.0.1.9")  # another spoke, via the hub
    assert not net.reaches(net.lan, 25)
    assert not net.reaches(net.lan, 993)
    assert net.reaches(net.mail, 25)  # the host itself, over loopback
    assert net.run(net.mail, "bash", script, "verify").returncode == 0


def test_verify_notices_a_missing_rule_and_disable_leaves_nothing(net, script):
    net.run(net.mail, "bash", script, "enable")
    net.run(
        net.mail,
        "iptables",
        "-D",
        guard.CHAIN,
        "-p",
        "tcp",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    )
    verify = net.run(net.mail, "bash", script, "verify")
    assert verify.returncode == 1 and "MISSING" in verify.stdout
    assert net.run(net.mail, "bash", script, "disable").returncode == 0
    for tool in ("iptables", "ip6tables"):
        assert guard.CHAIN not in net.run(net.mail, tool, "-S").stdout
    assert net.reaches(net.lan, 25)


# --- the proxy guard, on the gateway -----------------------------------------------------------

GATEWAY_LISTENER = LISTENER.replace('"0.0.0.0"', '""')


class Gateway:
    """A gateway (``gw``) whose tunnel link leads to the mail server (``home``, 10.0.1.2), and a
    machine (``spoke``) the gateway forwards for, on a second link (10.0.2.0/24)."""

    def __init__(self, interface: str):
        tag = secrets.token_hex(3)
        self.gw, self.home, self.spoke = (f"mg-{role}-{tag}" for role in ("gw", "home", "spoke"))
        for name in (self.gw, self.home, self.spoke):
            sh("ip", "netns", "add", name)
        self._link(interface, "10.0.1.1/24", self.home, "10.0.1.2/24")
        self._link("spoke0", "10.0.2.1/24", self.spoke, "10.0.2.2/24")
        self.run(self.gw, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.run(self.home, "ip", "route", "add", "default", "via", "10.0.1.1")
        self.run(self.spoke, "ip", "route", "add", "default", "via", "10.0.2.1")
        self.listeners = [
            self._listen(self.home, "25", "993"),
            self._listen(self.gw, "25"),  # the proxy's public port
        ]

    def _link(self, name: str, address: str, there: str, far: str) -> None:
        self.run(self.gw, "ip", "link", "add", name, "type", "veth", "peer", "name", "peer")
        self.run(self.gw, "ip", "link", "set", "peer", "netns", there)
        for ns, dev, addr in ((self.gw, name, address), (there, "peer", far)):
            self.run(ns, "ip", "addr", "add", addr, "dev", dev)
            self.run(ns, "ip", "link", "set", dev, "up")
            self.run(ns, "ip", "link", "set", "lo", "up")

    def _listen(self, ns: str, *ports: str) -> subprocess.Popen:
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", GATEWAY_LISTENER, *ports],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout.readline().strip() == "ready"
        return listener

    def run(self, ns: str, *command: str) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *command)

    def reaches(self, ns: str, address: str, port: int, user: str = "root") -> bool:
        """A connection by ``user`` (bash's /dev/tcp: any user can run it)."""
        connect = f"exec 3<>/dev/tcp/{address}/{port}"
        group = str(pwd.getpwnam(user).pw_gid) if not user.isdigit() else user
        command = ("setpriv", "--reuid", user, "--regid", group, "--clear-groups")
        return self.run(ns, *command, "timeout", "3", "bash", "-c", connect).returncode == 0

    def close(self) -> None:
        for listener in self.listeners:
            listener.kill()
            listener.wait()
        for name in (self.gw, self.home, self.spoke):
            sh("ip", "netns", "del", name)


@pytest.fixture
def gateway_net(world):
    namespaces = Gateway(world["tunnel"].interface)
    yield namespaces
    namespaces.close()


def proxy_guard(world, tmp_path, flavour: str) -> str:
    world["vps"].gateway_proxy = flavour
    path = tmp_path / "mailgate-proxy-guard"
    path.write_bytes(guard.proxy_script(context(world, "vps")))
    return str(path)


def test_the_gateway_has_a_proxy_guard_and_the_mail_server_a_mail_guard(world, tmp_path):
    names = {unit.name for unit in guard.units(context(world, "vps"))}
    assert names == {"proxy-guard"}
    assert {unit.name for unit in guard.units(context(world, "home"))} == {"mail-guard"}
    world["home"].mail_backend = "mailu"  # Mailu's front is guarded from the gateway alone
    assert guard.units(context(world, "home")) == []
    unit = guard.units(context(world, "vps"))[0]
    for file in unit.files:
        target = tmp_path / file.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file.content)
    for check in unit.checks:
        result = run_check("proxy-guard", check, tmp_path)
        assert result.ok, result.output


def test_on_an_haproxy_gateway_only_haproxy_opens_the_mail_servers_proxy_ports(
    gateway_net, world, tmp_path
):
    net, script = gateway_net, proxy_guard(world, tmp_path, "haproxy")
    # Unguarded: anyone on the gateway, and anything it forwards, writes its own header.
    assert net.reaches(net.gw, "10.0.1.2", 25, user="nobody")
    assert net.reaches(net.spoke, "10.0.1.2", 25)
    assert net.reaches(net.gw, "127.0.0.1", 25, user="nobody")
    for _ in range(2):  # enable twice: the same rules once
        assert net.run(net.gw, "bash", script, "enable").returncode == 0
    assert net.run(net.gw, "iptables", "-S", "OUTPUT").stdout.count(guard.PROXY_CHAIN) == 1
    assert net.reaches(net.gw, "10.0.1.2", 25, user="haproxy")
    assert net.reaches(net.gw, "10.0.1.2", 993, user="haproxy")
    assert not net.reaches(net.gw, "10.0.1.2", 25, user="nobody")
    assert not net.reaches(net.gw, "10.0.1.2", 993)  # root is not HAProxy here
    assert not net.reaches(net.spoke, "10.0.1.2", 25)  # forwarded: another spoke, a container
    assert not net.reaches(net.gw, "127.0.0.1", 25, user="nobody")  # through the proxy
    assert not net.reaches(net.gw, "10.0.2.1", 25, user="nobody")  # its own address, locally
    assert net.reaches(net.spoke, "10.0.2.1", 25)  # a client of the proxy, from outside
    assert net.run(net.gw, "bash", script, "verify").returncode == 0


def test_on_a_traefik_gateway_traefik_and_the_haproxy25_container_pass(
    gateway_net, world, tmp_path
):
    net, script = gateway_net, proxy_guard(world, tmp_path, "traefik-haproxy")
    net.run(net.gw, "iptables", "-N", "DOCKER-USER")  # as Docker makes it
    assert net.run(net.gw, "bash", script, "enable").returncode == 0
    assert guard.DENY_CHAIN in net.run(net.gw, "iptables", "-S", "DOCKER-USER").stdout
    assert net.reaches(net.gw, "10.0.1.2", 25)  # Traefik's container runs as root
    assert net.reaches(net.gw, "10.0.1.2", 25, user="99")  # haproxy25, once it dropped to 99
    assert not net.reaches(net.gw, "10.0.1.2", 25, user="nobody")
    assert not net.reaches(net.spoke, "10.0.1.2", 993)
    assert net.run(net.gw, "bash", script, "verify").returncode == 0


def test_the_proxy_guard_verifies_and_disables_whole(gateway_net, world, tmp_path):
    net, script = gateway_net, proxy_guard(world, tmp_path, "haproxy")
    net.run(net.gw, "bash", script, "enable")
    net.run(
        net.gw,
        "iptables",
        "-D",
        guard.PROXY_CHAIN,
        "-m",
        "owner",
        "--uid-owner",
        "haproxy",
        "-j",
        "RETURN",
    )
    verify = net.run(net.gw, "bash", script, "verify")
    assert verify.returncode == 1 and "MISSING" in verify.stdout, verify.stdout
    net.run(net.gw, "bash", script, "enable")
    net.run(net.gw, "iptables", "-A", guard.DENY_CHAIN, "-j", "ACCEPT")
    verify = net.run(net.gw, "bash", script, "verify")
    assert verify.returncode == 1 and "EXTRA" in verify.stdout, verify.stdout
    assert net.run(net.gw, "bash", script, "disable").returncode == 0
    for tool in ("iptables", "ip6tables"):
        listed = net.run(net.gw, tool, "-S").stdout
        assert guard.PROXY_CHAIN not in listed and guard.DENY_CHAIN not in listed
    assert net.reaches(net.gw, "10.0.1.2", 25, user="nobody")
