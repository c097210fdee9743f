"""WireGuard and SMTP egress renderers: the wg0.conf files and egress scripts of the
Mailu-behind-Traefik guide (docs/reference-setups.md), checked with the real wg-quick, wg, bash and
shellcheck, and the scripts run for real in throwaway network namespaces (no database, no traffic:
the namespaces have no link to anything)."""

import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.bundle import Bundle, RenderError
from hosts.render import egress, wireguard
from tests import render_world as rw

CONF = "/etc/wireguard/wg0.conf"
SCRIPT = egress.SCRIPT


@pytest.fixture
def world():
    return rw.hosts()


def units(module, world, name):
    return module.units(rw.context(world, name))


def stage(tmp_path: Path, name: str, host_units) -> Path:
    root = tmp_path / name
    Bundle(host=name, units=tuple(host_units)).write_to(root)
    return root


def run_checks(unit, root: Path) -> list[subprocess.CompletedProcess]:
    return [
        subprocess.run(
            ["bash", "-c", snippet],
            env={**os.environ, "STAGE": str(root)},
            capture_output=True,
            text=True,
        )
        for snippet in unit.checks
    ]


def assert_checks_pass(unit, root: Path) -> None:
    for result in run_checks(unit, root):
        assert result.returncode == 0, result.stderr + result.stdout


def assert_checks_fail(unit, root: Path) -> str:
    failed = [result for result in run_checks(unit, root) if result.returncode != 0]
    assert failed, "a broken file passed every check"
    return failed[0].stderr + failed[0].stdout


# --- wg0.conf ---------------------------------------------------------------------------------


def test_it_renders_the_hub_wg0_conf_as_in_the_reference(world):
    (unit,) = units(wireguard, world, "vps")
    (file,) = unit.files
    assert (file.path, file.mode, file.secret) == (CONF, 0o600, True)
    rw.assert_golden(file.content, "tunnel/hub-wg0.conf")
    assert "AllowedIPs = 10.0.1.2/32, 192.168.203.0/24" in file.content.decode()


def test_it_renders_the_spoke_wg0_conf_as_in_the_reference(world):
    (unit,) = units(wireguard, world, "home")
    (file,) = unit.files
    assert (file.path, file.mode, file.secret) == (CONF, 0o600, True)
    rw.assert_golden(file.content, "tunnel/spoke-wg0.conf")
    text = file.content.decode()
    assert f"PublicKey = {world['tunnel'].hub_public_key}" in text
    assert f"PrivateKey = {rw.HOME_KEY}" in text


def test_it_gives_a_spoke_without_egress_only_the_tunnel_subnet(world):
    world["peer"].egress_via_hub = False
    world["peer"].keepalive = 0
    world["vps"].public_ipv4 = None
    world["vps"].public_ipv6 = "2001:db8::1"
    text = units(wireguard, world, "home")[0].files[0].content.decode()
    assert "AllowedIPs = 10.0.1.0/24\n" in text
    assert "Endpoint = [2001:db8::1]:51820\n" in text
    assert "rp_filter" not in text
    assert "PersistentKeepalive" not in text


def test_it_renders_an_ipv6_tunnel(world, tmp_path):
    world["tunnel"].subnet = "fd00:8::/64"
    world["vps"].tunnel_address = "fd00:8::1"
    world["home"].tunnel_address = "fd00:8::2"
    world["peer"].routed_subnet = ""
    world["peer"].egress_via_hub = False
    (hub,) = units(wireguard, world, "vps")
    hub_text = hub.files[0].content.decode()
    assert "Address = fd00:8::1/64\n" in hub_text
    assert "PostUp = ip6tables -C FORWARD" in hub_text
    assert "AllowedIPs = fd00:8::2/128\n" in hub_text
    (spoke,) = units(wireguard, world, "home")
    spoke_text = spoke.files[0].content.decode()
    assert "PostUp = ip route add fd00:8::/64 dev %i || true\n" in spoke_text
    for name, unit in (("vps", hub), ("home", spoke)):
        assert_checks_pass(unit, stage(tmp_path, name, [unit]))


def test_it_passes_wg_quick_strip_and_its_own_checks(world, tmp_path):
    for name in ("vps", "home"):
        (unit,) = units(wireguard, world, name)
        root = stage(tmp_path, name, [unit])
        stripped = subprocess.run(
            ["wg-quick", "strip", str(root / CONF.lstrip("/"))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "PostUp" not in stripped and "Table" not in stripped
        assert "[Peer]" in stripped
        assert_checks_pass(unit, root)


@pytest.mark.parametrize(
    ("pattern", "replacement"),
    [
        (r"PublicKey = \S+", "PublicKey = c2hvcnQ="),  # base64, but not 32 bytes
        (r"PrivateKey = \S+", "PrivateKey = not-a-key"),
        (r"\[Peer\]", "[Peer]\nEndpont = 1.2.3.4:51820"),  # a line neither tool knows
        (r"AllowedIPs = ", "AllowedIPs = 10.0.0.0/8 "),  # a list without its comma
    ],
)
def test_it_fails_the_check_of_a_broken_wg0_conf(world, tmp_path, pattern, replacement):
    (unit,) = units(wireguard, world, "home")
    root = stage(tmp_path, "home", [unit])
    conf = root / CONF.lstrip("/")
    conf.write_text(re.sub(pattern, replacement, conf.read_text(), count=1))
    assert_checks_fail(unit, root)


def test_it_activates_a_running_tunnel_without_restarting_it(world):
    (hub,) = units(wireguard, world, "vps")
    apply, route = hub.activate
    assert "bash -c 'wg syncconf wg0 <(wg-quick strip wg0)'" in apply
    assert "systemctl enable --now wg-quick@wg0.service" in apply
    # syncconf adds the peer but not its route: the routed subnet gets one explicitly.
    assert route == "ip route replace 192.168.203.0/24 dev wg0"
    for snippet in hub.activate:
        subprocess.run(["bash", "-n", "-c", snippet], check=True)


def test_it_escapes_an_interface_name_for_its_wg_quick_unit():
    assert wireguard.service("wg0") == "wg-quick@wg0.service"
    assert wireguard.service("wg+home") == "wg-quick@wg\\x2bhome.service"


@pytest.mark.parametrize("name", ["vps", "home"])
def test_it_refuses_a_member_without_a_tunnel_address(world, name):
    world[name].tunnel_address = None
    with pytest.raises(RenderError, match="tunnel address"):
        units(wireguard, world, name)


def test_it_refuses_a_spoke_whose_hub_has_no_public_address(world):
    world["vps"].public_ipv4 = None
    with pytest.raises(RenderError, match="no public address"):
        units(wireguard, world, "home")


def test_it_refuses_an_invalid_private_key(world):
    world["peer"].private_key = "not a key"
    with pytest.raises(RenderError, match="private key of home"):
        units(wireguard, world, "vps")


def test_it_refuses_a_newline_in_a_wg0_conf_value(world):
    world["home"].name = "home\nPostUp = touch /tmp/owned"
    with pytest.raises(RenderError, match="control character"):
        units(wireguard, world, "vps")


# --- SMTP egress scripts ------------------------------------------------------------------------


def test_it_renders_the_home_egress_script_for_mailu_as_in_the_reference(world):
    world["home"].mail_backend = "mailu"
    (unit,) = units(egress, world, "home")
    script, service = unit.files
    assert (script.path, script.mode) == (SCRIPT, 0o755)
    assert (service.path, service.mode) == (egress.SERVICE_PATH, 0o644)
    rw.assert_golden(script.content, "tunnel/home-mailgate-smtp-egress")
    rw.assert_golden(service.content, "tunnel/mailgate-smtp-egress.service")


def test_it_renders_the_home_egress_script_for_postfix_on_the_host(world):
    world["peer"].routed_subnet = ""
    (unit,) = units(egress, world, "home")
    rw.assert_golden(unit.files[0].content, "tunnel/home-local-mailgate-smtp-egress")


def test_it_renders_the_gateway_egress_script_as_in_the_reference(world):
    world["home"].mail_backend = "mailu"
    (unit,) = units(egress, world, "vps")
    script, service = unit.files
    rw.assert_golden(script.content, "tunnel/vps-mailgate-smtp-egress")
    assert service.content == units(egress, world, "home")[0].files[1].content


def test_it_forwards_a_spoke_without_routed_subnet_by_its_tunnel_address(world):
    world["peer"].routed_subnet = ""
    text = units(egress, world, "vps")[0].files[0].content.decode()
    assert "SOURCES=(10.0.1.2/32)\n" in text


def test_it_renders_no_egress_without_a_spoke_that_wants_it(world):
    world["peer"].egress_via_hub = False
    assert units(egress, world, "home") == []
    assert units(egress, world, "vps") == []
    assert units(egress, world, "relay") == []


def test_it_refuses_a_gateway_egress_without_public_ipv4(world):
    world["vps"].public_ipv4 = None
    world["vps"].public_ipv6 = "2001:db8::1"
    with pytest.raises(RenderError, match="public IPv4"):
        units(egress, world, "vps")


def test_it_refuses_a_newline_in_an_egress_value(world):
    world["vps"].wan_interface = "eth0\nreboot"
    with pytest.raises(RenderError, match="control character"):
        units(egress, world, "vps")


def test_it_passes_bash_n_and_shellcheck(world, tmp_path):
    assert shutil.which("shellcheck"), "shellcheck is needed to prove the scripts clean"
    for name in ("vps", "home"):
        (unit,) = units(egress, world, name)
        assert_checks_pass(unit, stage(tmp_path, name, [unit]))
    world["peer"].routed_subnet = ""
    (unit,) = units(egress, world, "home")
    assert_checks_pass(unit, stage(tmp_path, "home-local", [unit]))


@pytest.mark.parametrize(
    ("broken", "tool"),
    [
        ("if true; then\n", "syntax error"),  # bash -n
        ("echo $SELF\n", "SC2086"),  # shellcheck only
    ],
)
def test_it_fails_the_check_of_a_broken_script(world, tmp_path, broken, tool):
    (unit,) = units(egress, world, "home")
    root = stage(tmp_path, "home", [unit])
    script = root / SCRIPT.lstrip("/")
    script.write_text(script.read_text().replace("MISSING=0\n", f"MISSING=0\n{broken}"))
    assert tool in assert_checks_fail(unit, root)


def test_it_renders_identical_bytes_twice(world):
    for module in (wireguard, egress):
        for name in ("vps", "home"):
            first = units(module, world, name)
            assert units(module, rw.hosts(), name) == first


# --- the scripts for real, in a throwaway network namespace ----------------------------------


@pytest.fixture
def namespace():
    """A network namespace with a tunnel and an internet link, removed whatever happens. The
    links are veth pairs whose both ends stay inside (the kernel here refuses dummy links), so
    nothing can leave it."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"mgtest-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for link, address in (("wg0", "10.0.1.2/24"), ("eth0", "198.51.100.2/24")):
            ip(name, "link", "add", link, "type", "veth", "peer", "name", f"{link}-end")
            ip(name, "addr", "add", address, "dev", link)
            ip(name, "link", "set", link, "up")
            ip(name, "link", "set", f"{link}-end", "up")
        ip(name, "route", "add", "default", "via", "198.51.100.1", "dev", "eth0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ip(namespace: str, *args: str) -> str:
    return subprocess.run(
        ["ip", "-n", namespace, *args], check=True, capture_output=True, text=True
    ).stdout


def inside(namespace: str, *command: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, *command],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


class Egress:
    """A rendered egress script staged in tmp_path and run inside the namespace."""

    def __init__(self, namespace: str, tmp_path: Path, world, name: str):
        (unit,) = units(egress, world, name)
        self.namespace = namespace
        self.script = stage(tmp_path, f"{name}-{secrets.token_hex(2)}", [unit]) / SCRIPT[1:]
        self.env = {"MAILGATE_EGRESS_STATE": str(tmp_path / "state")}

    def __call__(self, action: str) -> subprocess.CompletedProcess:
        return inside(self.namespace, "bash", str(self.script), action, env=self.env)

    def run(self, action: str) -> str:
        result = self(action)
        assert result.returncode == 0, f"{action}: {result.stdout}{result.stderr}"
        return result.stdout


def rules(namespace: str) -> list[str]:
    """Every rule of every table, as ``iptables -S`` prints it (the namespace starts empty)."""
    found = []
    for table in ("filter", "nat", "mangle", "raw"):
        listing = inside(namespace, "iptables", "-w", "-t", table, "-S").stdout
        found += [f"{table} {line}" for line in listing.splitlines() if line.startswith("-A")]
    return sorted(found)


def policy(namespace: str) -> tuple[list[str], list[str]]:
    marked = [line for line in ip(namespace, "rule").splitlines() if "fwmark" in line]
    table = inside(namespace, "ip", "route", "show", "table", "100").stdout.splitlines()
    return marked, [line.strip() for line in table]


def sysctl(namespace: str, key: str) -> str:
    return inside(namespace, "cat", f"/proc/sys/{key}").stdout.strip()


MAILU_RULES = [
    "mangle -A PREROUTING -s 192.168.203.0/24 -p tcp -m tcp --dport 25 "
    "-j MARK --set-xmark 0x19/0xffffffff",
    "nat -A POSTROUTING -s 192.168.203.0/24 -o wg0 -p tcp -m tcp --dport 25 -j ACCEPT",
]
DOCKER_RULES = [
    "filter -A DOCKER-USER -d 192.168.203.0/24 -i wg0 "
    "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "filter -A DOCKER-USER -s 192.168.203.0/24 -o wg0 -p tcp -m tcp --dport 25 -j ACCEPT",
    "raw -A PREROUTING -d 192.168.203.0/24 -i wg0 -p tcp -m tcp --sport 25 -j ACCEPT",
]
LOCAL_RULES = [
    "mangle -A OUTPUT -p tcp -m tcp --dport 25 -j MARK --set-xmark 0x19/0xffffffff",
    "nat -A POSTROUTING -o wg0 -p tcp -m tcp --dport 25 -j SNAT --to-source 10.0.1.2",
]
GATEWAY_RULES = [
    "filter -A FORWARD -i eth0 -o wg0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "filter -A FORWARD -s 192.168.203.0/24 -i wg0 -o eth0 -p tcp -m tcp --dport 25 -j ACCEPT",
    "mangle -A FORWARD -i wg0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
    "mangle -A FORWARD -o wg0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu",
    "nat -A POSTROUTING -s 192.168.203.0/24 -o eth0 -p tcp -m tcp --dport 25 "
    "-j SNAT --to-source 1.2.3.4",
]
PRIVATE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16")
POLICY = (
    [
        *(f"10024:\tfrom all to {net} fwmark 0x19 lookup main" for net in PRIVATE),
        "10025:\tfrom all fwmark 0x19 lookup 100",
    ],
    ["default dev wg0 scope link"],
)


def assert_home_cycle(namespace: str, script: Egress, expected: list[str]) -> None:
    rp_filter_before = sysctl(namespace, "net/ipv4/conf/all/rp_filter")
    script.run("enable")
    script.run("enable")
    assert rules(namespace) == sorted(expected)
    assert policy(namespace) == POLICY
    assert sysctl(namespace, "net/ipv4/conf/wg0/rp_filter") == "2"
    assert "MISSING" not in script.run("status")
    assert "marked packets leave through wg0" in script.run("verify")
    script.run("disable")
    assert rules(namespace) == []
    assert policy(namespace) == ([], [])
    assert sysctl(namespace, "net/ipv4/conf/all/rp_filter") == rp_filter_before
    assert script("verify").returncode == 1


def test_it_enables_the_home_egress_for_mailu_once_and_removes_it(namespace, tmp_path, world):
    world["home"].mail_backend = "mailu"
    assert inside(namespace, "iptables", "-n", "-L", "DOCKER-USER").returncode != 0
    assert_home_cycle(namespace, Egress(namespace, tmp_path, world, "home"), MAILU_RULES)


def test_it_adds_the_docker_exceptions_when_docker_user_exists(namespace, tmp_path, world):
    world["home"].mail_backend = "mailu"
    assert inside(namespace, "iptables", "-N", "DOCKER-USER").returncode == 0
    script = Egress(namespace, tmp_path, world, "home")
    script.run("enable")
    script.run("enable")
    assert rules(namespace) == sorted(MAILU_RULES + DOCKER_RULES)
    assert sysctl(namespace, "net/ipv4/ip_forward") == "1"
    script.run("disable")
    assert rules(namespace) == []
    assert sysctl(namespace, "net/ipv4/ip_forward") == "0"


def test_it_enables_the_home_egress_for_its_own_postfix_once(namespace, tmp_path, world):
    world["peer"].routed_subnet = ""
    assert_home_cycle(namespace, Egress(namespace, tmp_path, world, "home"), LOCAL_RULES)


def test_postfix_beside_a_routed_subnet_sends_through_the_tunnel_too(namespace, tmp_path, world):
    """Postfix + Dovecot with a routed subnet (docs/reference-setups.md, "The home mail server"):
    the host's own mail is marked as well as the subnet's, and the gateway forwards both sources."""
    assert_home_cycle(
        namespace, Egress(namespace, tmp_path, world, "home"), MAILU_RULES + LOCAL_RULES
    )
    text = units(egress, world, "vps")[0].files[0].content.decode()
    assert "SOURCES=(192.168.203.0/24 10.0.1.2/32)\n" in text


def test_marked_mail_to_a_private_address_keeps_the_main_route(namespace, tmp_path, world):
    """A relay host on the LAN is reached over the LAN, not through the gateway (whose SNAT
    would send it to a private address on the VPS's own network)."""
    script = Egress(namespace, tmp_path, world, "home")
    script.run("enable")
    inside(namespace, "ip", "link", "add", "lan0", "type", "veth", "peer", "name", "lan0-end")
    inside(namespace, "ip", "addr", "add", "192.168.1.10/24", "dev", "lan0")
    inside(namespace, "ip", "link", "set", "lan0", "up")
    lan = inside(namespace, "ip", "-4", "route", "get", "192.168.1.11", "mark", "0x19").stdout
    internet = inside(namespace, "ip", "-4", "route", "get", "192.0.2.25", "mark", "0x19").stdout
    assert " dev lan0 " in lan and " dev wg0 " in internet
    script.run("disable")


def test_it_enables_the_gateway_egress_once_and_removes_it(namespace, tmp_path, world):
    world["home"].mail_backend = "mailu"
    script = Egress(namespace, tmp_path, world, "vps")
    script.run("enable")
    script.run("enable")
    assert rules(namespace) == sorted(GATEWAY_RULES)
    assert sysctl(namespace, "net/ipv4/ip_forward") == "1"
    assert "MISSING" not in script.run("status")
    assert "is in place" in script.run("verify")
    script.run("disable")
    assert rules(namespace) == []
    assert script("verify").returncode == 1


def test_it_undoes_an_earlier_version_before_enabling_a_new_one(namespace, tmp_path, world):
    world["home"].mail_backend = "mailu"
    Egress(namespace, tmp_path, world, "vps").run("enable")
    world["peer"].routed_subnet = "192.168.204.0/24"
    Egress(namespace, tmp_path, world, "vps").run("enable")
    assert rules(namespace) == sorted(
        rule.replace("192.168.203.0/24", "192.168.204.0/24") for rule in GATEWAY_RULES
    )


def test_a_mailu_spoke_sending_through_the_gateway_needs_its_routed_subnet(world):
    """Mailu's mail leaves from its containers: without the subnet routed, the egress would mark
    nothing of it. Refused in the model and, for an older row, when rendering."""
    world["home"].mail_backend = "mailu"
    world["peer"].routed_subnet = ""
    with pytest.raises(RenderError, match="routed subnet"):
        egress.home_script(world["peer"])
