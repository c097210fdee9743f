"""A real ACME server for the certificate tests: Let's Encrypt's Pebble (Debian ``pebble``) on
loopback, asking the test's own named (``tests.zones_named``) for the DNS-01 records, and
stopped by its own pid when the test ends.

Pebble's own HTTPS listener gets a certificate from a throwaway CA (``lab.ca.LabCA``), which
the client trusts through ``MAILGATE_ACME_CA_FILE``; the CA that signs what Pebble issues is
made anew at every start and is read from Pebble's management interface (``roots/0``).
"""

import contextlib
import json
import os
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.ca import LabCA
from tests.servers import free_port, stop

HOST = "localhost"  # the name on Pebble's listener certificate


@dataclass
class Pebble:
    port: int
    management_port: int
    ca_file: Path  # trust for Pebble's listener

    @property
    def directory(self) -> str:
        return f"https://{HOST}:{self.port}/dir"

    def management(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        url = f"https://{HOST}:{self.management_port}/{path}"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.read().decode()

    @property
    def root(self) -> str:
        """The root of the certificates Pebble issues (its chain ends below it)."""
        return self.management("roots/0")


@contextlib.contextmanager
def running(folder: Path, dns_port: int):
    """Pebble until the block ends; every validation it makes asks 127.0.0.1:``dns_port``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = LabCA("Pebble listener test CA")
    listener = ca.issue(HOST)
    (folder / "ca.pem").write_bytes(ca.pem)
    (folder / "cert.pem").write_bytes(listener.fullchain)
    (folder / "key.pem").write_bytes(listener.privkey)
    port, management = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(folder / "cert.pem"),
            "privateKey": str(folder / "key.pem"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (folder / "pebble.json").write_text(json.dumps(config))
    environment = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",  # validate at once
        "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce answers
        "PEBBLE_AUTHZREUSE": "0",  # every order is validated anew
    }
    log = (folder / "pebble.log").open("w")
    process = subprocess.Popen(
        ["pebble", "-config", str(folder / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        stdout=log,
        stderr=log,
        env=environment,
    )
    try:
        pebble = Pebble(port, management, folder / "ca.pem")
        _wait(pebble, process, folder)
        yield pebble
    finally:
        stop(process)
        log.close()


def _wait(pebble: Pebble, process: subprocess.Popen, folder: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            break
        with contextlib.suppress(OSError):
            pebble.management("roots/0")
            return
        time.sleep(0.05)
    pytest.fail("pebble did not start:\n" + (folder / "pebble.log").read_text())
