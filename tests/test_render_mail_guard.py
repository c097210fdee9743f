"""The mail guard (``hosts/render/guard.py``) with the real iptables, in network namespaces this
test makes: the mail server's PROXY ports answer the hub through the tunnel and nobody else,
not a LAN machine that routes the tunnel address through the server's LAN address, not another
spoke whose traffic the hub forwards; enable is idempotent, verify notices a missing rule,
disable leaves nothing."""

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
