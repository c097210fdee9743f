"""A real authoritative BIND ``named`` for the DNS tests: started on 127.0.0.1 with a free port,
throwaway zones in a temporary folder and a TSIG key that may update them; stopped (by its own
pid) when the test ends. ``edit`` changes a record behind Mailgate's back with a dynamic update
of its own, as another tool or a person at the provider would."""

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from tests.servers import stop
from zones.resolver import Lookup

ADDRESS = "127.0.0.1"
KEY_NAME = "mailgate-test"
ALGORITHM = "hmac-sha256"


@dataclass
class Named:
    port: int
    secret: str
    folder: Path

    @property
    def lookup(self) -> Lookup:
        return Lookup([(ADDRESS, self.port)])

    def edit(self, zone: str, name: str, rtype: str, *values: str, ttl: int = 300) -> None:
        """Replace ``name``'s ``rtype`` RRset (no values: delete it), with the test's own key."""
        update = dns.update.UpdateMessage(
            zone,
            keyring=dns.tsigkeyring.from_text({KEY_NAME: self.secret}),
            keyalgorithm=dns.name.from_text(ALGORITHM),
        )
        if values:
            update.replace(f"{name}.", ttl, rtype, *values)
        else:
            update.delete(f"{name}.", rtype)
        response = dns.query.tcp(update, ADDRESS, port=self.port, timeout=5)
        assert response.rcode() == 0, response

    def values(self, name: str, rtype: str) -> list[str]:
        """The values as the server holds them (TXT joined), read directly."""
        return sorted(value.key for value in self.lookup.query(name, rtype).values)

    def dnskey(self, zone: str) -> str:
        """The public key of a zone named signed (its trust anchor), as the .key file holds it."""
        (key_file,) = self.folder.glob(f"K{zone}.+*.key")
        line = next(x for x in key_file.read_text().splitlines() if " DNSKEY " in x)
        return line.split(" DNSKEY ", 1)[1]

    def txt(self, name: str) -> bytes | None:
        """What dkimpy's ``dnsfunc`` must return: the first TXT record's strings joined."""
        answer = self.lookup.query(name, "TXT")
        return answer.values[0].key.encode() if answer.values else None


def tsig_secret() -> str:
    output = subprocess.run(
        ["tsig-keygen", "-a", ALGORITHM, KEY_NAME], capture_output=True, text=True, check=True
    ).stdout
    return output.split('secret "', 1)[1].split('"', 1)[0]


def free_port() -> int:
    """A port free for both UDP and TCP on the loopback address."""
    for _ in range(50):
        with socket.socket() as tcp, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            tcp.bind((ADDRESS, 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind((ADDRESS, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def zone_text(zone: str, *lines: str) -> str:
    return "\n".join(
        [
            "$TTL 300",
            f"@ IN SOA ns1.dns.test. hostmaster.{zone}. 1 3600 600 86400 300",
            "@ IN NS ns1.dns.test.",
            *lines,
            "",
        ]
    )


def configuration(
    folder: Path, port: int, secret: str, zones: dict[str, str], signed: tuple[str, ...] = ()
) -> str:
    parts = [
        f'key "{KEY_NAME}" {{ algorithm {ALGORITHM}; secret "{secret}"; }};',
        "options {",
        f'  directory "{folder}";',
        f"  listen-on port {port} {{ {ADDRESS}; }};",
        "  listen-on-v6 { none; };",
        f'  pid-file "{folder}/named.pid";',
        f'  session-keyfile "{folder}/session.key";',
        f'  managed-keys-directory "{folder}";',
        "  recursion no;",
        "  dnssec-validation no;",
        "  notify no;",
        f'  key-directory "{folder}";',
        "};",
        "controls {};",
    ]
    for zone in zones:
        signing = ["  dnssec-policy default;", "  inline-signing yes;"] if zone in signed else []
        parts += [
            f'zone "{zone}" {{',
            "  type primary;",
            f'  file "{folder}/{zone}.zone";',
            f'  allow-update {{ key "{KEY_NAME}"; }};',
            *signing,
            "};",
        ]
    return "\n".join(parts) + "\n"


def resolver_configuration(folder: Path, port: int, upstream: int, anchors: dict) -> str:
    """A validating resolver that asks the test's named for ``anchors``' zones and trusts
    the given keys for them (no root, no internet)."""
    parts = [
        "options {",
        f'  directory "{folder}";',
        f"  listen-on port {port} {{ {ADDRESS}; }};",
        "  listen-on-v6 { none; };",
        f'  pid-file "{folder}/named.pid";',
        f'  session-keyfile "{folder}/session.key";',
        f'  managed-keys-directory "{folder}";',
        "  recursion yes;",
        f"  allow-recursion {{ {ADDRESS}; }};",
        "  dnssec-validation yes;",
        "};",
        "controls {};",
        "trust-anchors {",
        *(f'  "{zone}." static-key {_anchor(key)};' for zone, key in anchors.items()),
        "};",
    ]
    for zone in anchors:
        parts += [
            f'zone "{zone}" {{ type forward; forward only; '
            f"forwarders {{ {ADDRESS} port {upstream}; }}; }};"
        ]
    return "\n".join(parts) + "\n"


def _anchor(dnskey: str) -> str:
    """``257 3 13 AbC… dEf…`` as named.conf wants it: the key data as one quoted string."""
    flags, protocol, algorithm, *data = dnskey.split()
    return f'{flags} {protocol} {algorithm} "{"".join(data)}"'


@contextlib.contextmanager
def running(folder: Path, zones: dict[str, str], signed: tuple[str, ...] = ()):
    """``named -g`` with ``zones`` (name → zone file text) until the block ends; the zones in
    ``signed`` are signed by named itself (DNSSEC, its default policy)."""
    folder.mkdir(parents=True, exist_ok=True)
    port, secret = free_port(), tsig_secret()
    for zone, text in zones.items():
        (folder / f"{zone}.zone").write_text(text)
    with _named(folder, configuration(folder, port, secret, zones, signed)) as process:
        _wait(port, next(iter(zones)), process, folder)
        for zone in signed:
            _wait(port, zone, process, folder, signed=True)
        yield Named(port, secret, folder)


@contextlib.contextmanager
def resolving(folder: Path, upstream: Named, anchors: dict[str, str]):
    """A validating resolver in front of ``upstream``; yields its port."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with _named(folder, resolver_configuration(folder, port, upstream.port, anchors)) as process:
        _wait(port, next(iter(anchors)), process, folder, recursive=True)
        yield port


@contextlib.contextmanager
def _named(folder: Path, configuration_text: str):
    conf = folder / "named.conf"
    conf.write_text(configuration_text)
    log = (folder / "named.log").open("w")
    process = subprocess.Popen(["named", "-g", "-c", str(conf)], stdout=log, stderr=log)
    try:
        yield process
    finally:
        stop(process)
        log.close()


def _wait(port, zone, process, folder, *, signed=False, recursive=False) -> None:
    """Until named answers for ``zone`` (with its signature, if ``signed``)."""
    query = dns.message.make_query(f"{zone}.", dns.rdatatype.SOA, want_dnssec=signed)
    if not recursive:
        query.flags &= ~dns.flags.RD
    for _ in range(300):
        if process.poll() is not None:
            break
        with contextlib.suppress(Exception):
            answer = dns.query.udp(query, ADDRESS, port=port, timeout=0.2).answer
            if recursive or (answer and (not signed or len(answer) > 1)):
                return  # a resolver's answer may be SERVFAIL on purpose (a wrong anchor)
        time.sleep(0.05)
    pytest.fail("named did not start:\n" + (folder / "named.log").read_text())
