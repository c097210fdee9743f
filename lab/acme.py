"""The lab's ACME server: Let's Encrypt's Pebble (Debian ``pebble``) on the internet host,
validating DNS-01 against the lab's BIND there, to which Mailgate pushes the challenge records
over RFC 2136 as it would to a real primary server, and HTTP-01 on port 80 of the address the
name has there (the gateway's), as a real CA would. Mailgate gets every certificate of the
setup from it (``certs``), Mailu's included, and deploys them with the rest. On the Traefik
gateway, Traefik's own resolvers get the names it terminates from it too, by HTTP-01. Only what
neither issues (the relay host's LAN certificate, the smarthost stand-in's) still comes from
the hand-made lab CA (``lab.ca``).

Pebble makes a new root at every start. It is read from Pebble's management interface and
added to the lab's trust file (``ca.pem``), which every client of ``lab verify`` and the status
page's TLS checks use; Pebble's own HTTPS listener has a certificate of the lab CA.
"""

import contextlib
import json
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from django.test import override_settings

from certs import services as cert_services
from certs.choices import Outcome
from certs.models import AcmeAccount
from lab.ca import LabCA
from lab.hosts import LabError, LabHost
from zones.models import PushTarget

PORT, MANAGEMENT_PORT = 14000, 15000
# Where Pebble's validation authority connects, on the address a name has, for HTTP-01 and
# TLS-ALPN-01: the standard ports (RFC 8555 §8.3, RFC 8737 §3), where the gateway answers them,
# instead of Pebble's test defaults (5002, 5001).
VALIDATION_PORTS = {"http-01": 80, "tls-alpn-01": 443}
TSIG_KEY = "mailgate-lab"
TSIG_ALGORITHM = "hmac-sha256"


def tsig_secret() -> str:
    output = subprocess.run(  # noqa: S603
        ["/usr/sbin/tsig-keygen", "-a", TSIG_ALGORITHM, TSIG_KEY],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return output.split('secret "', 1)[1].split('"', 1)[0]


def named_key(secret: str) -> str:
    """The key statement of named.conf that may update the lab's family zones."""
    return f'key "{TSIG_KEY}" {{ algorithm {TSIG_ALGORITHM}; secret "{secret}"; }};'


def allow_update() -> str:
    return f'allow-update {{ key "{TSIG_KEY}"; }};'


def start(folder: Path, internet: LabHost) -> dict:
    """Pebble on ``internet``; returns the settings Mailgate's ACME client needs."""
    folder = folder / "pebble"
    folder.mkdir(exist_ok=True)
    configure(
        folder,
        internet.address,
        ca_name="Mailgate lab CA (Pebble's listener)",
        ports=(PORT, MANAGEMENT_PORT, *VALIDATION_PORTS.values()),
    )
    log = (folder / "pebble.log").open("ab")
    internet.popen(
        "env",
        *(f"{name}={value}" for name, value in ENVIRONMENT.items()),
        "pebble",
        "-config",
        str(folder / "pebble.json"),
        "-dnsserver",
        "127.0.0.1:53",  # the lab's BIND, on the same host
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    acme = {
        "directory": f"https://{internet.address}:{PORT}/dir",
        "management": f"https://{internet.address}:{MANAGEMENT_PORT}",
        "ca_file": str(folder / "listener-ca.pem"),
    }
    root = _wait_for_root(acme["management"], acme["ca_file"], folder)
    (folder / "root.pem").write_text(root)
    return acme


def _wait_for_root(base: str, ca_file: str, folder: Path) -> str:
    for _ in range(100):
        with contextlib.suppress(OSError):
            return management(base, "roots/0", ca_file)
        time.sleep(0.1)
    raise LabError(f"Pebble did not start: {(folder / 'pebble.log').read_text()}")


# What Pebble does at once that it would otherwise stagger or refuse at random (its README).
ENVIRONMENT = {
    "PEBBLE_VA_NOSLEEP": "1",  # validate at once
    "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce answers
    # every order validated anew: by default Pebble reuses half of the valid authorizations, so
    # a renewal would prove nothing of its challenge (HTTP-01 through the gateway) half the time
    "PEBBLE_AUTHZREUSE": "0",
}


def configure(folder: Path, address: str, *, ca_name: str, ports: tuple[int, int, int, int]):
    """Pebble's configuration in ``folder``: its HTTPS listener's certificate, from a CA of its
    own (``listener-ca.pem``, which the ACME client trusts), and ``pebble.json`` with the
    directory, management, HTTP-01 and TLS-ALPN-01 ports."""
    port, management_port, http_port, tls_port = ports
    ca = LabCA(ca_name)
    listener = ca.issue(address)
    (folder / "listener-ca.pem").write_bytes(ca.pem)
    (folder / "cert.pem").write_bytes(listener.fullchain)
    (folder / "key.pem").write_bytes(listener.privkey)
    (folder / "key.pem").chmod(0o600)
    config = {
        "pebble": {
            "listenAddress": f"{address}:{port}",
            "managementListenAddress": f"{address}:{management_port}",
            "certificate": str(folder / "cert.pem"),
            "privateKey": str(folder / "key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (folder / "pebble.json").write_text(json.dumps(config))


def management(base: str, path: str, ca_file: str) -> str:
    """A page of Pebble's management interface (``roots/0``: the root it issues under)."""
    context = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen(  # noqa: S310 (https, the lab's own address)
        f"{base}/{path}", context=context, timeout=10
    ) as response:
        return response.read().decode()


def trust(folder: Path) -> None:
    """Add Pebble's root to the lab's trust file (``ca.pem``)."""
    root = (folder / "pebble" / "root.pem").read_text()
    with (folder / "ca.pem").open("a") as trusted:
        trusted.write(root)


def push_targets(domains, *, server: str, secret: str) -> None:
    """Each lab domain's zone is pushed to the internet host's BIND over RFC 2136."""
    for domain in domains:
        target = PushTarget(
            domain=domain, server=server, tsig_key_name=TSIG_KEY, tsig_secret=secret
        )
        target.full_clean()
        target.save()


def acme_settings(acme: dict):
    """Mailgate's ACME client aimed at the lab's Pebble (``manage.py`` and a worker take the
    same from ``MAILGATE_ACME_DIRECTORY`` and ``MAILGATE_ACME_CA_FILE``)."""
    return override_settings(
        MAILGATE_ACME_DIRECTORY=acme["directory"], MAILGATE_ACME_CA_FILE=acme["ca_file"]
    )


def issue(acme: dict, say) -> None:
    """Every certificate the lab's setup needs, from Pebble; any failure stops ``up``."""
    with acme_settings(acme):
        issued = cert_services.certificates_renew()
    for attempt in issued:
        certificate = attempt.certificate
        if attempt.outcome != Outcome.ISSUED:
            raise LabError(f"Pebble did not issue {certificate.name}: {attempt.message}")
        say(
            f"certificate {certificate.name} for {certificate.host} "
            f"({', '.join(certificate.names)}): {attempt.message}"
        )


def renew(acme: dict, certificate):
    """A forced renewal of ``certificate`` (its new ``Issuance``)."""
    with acme_settings(acme):
        return cert_services.certificate_force_renewal(certificate=certificate)


def forget(acme: dict | None) -> None:
    """Mailgate's account at this lab's Pebble, which ends with the lab."""
    if acme:
        AcmeAccount.objects.filter(directory=acme["directory"]).delete()
