"""A real ACME server for the certificate tests: Let's Encrypt's Pebble (Debian ``pebble``) on
loopback, asking the test's own named (``tests.zones_named``) for the DNS-01 records, and
stopped by its own pid when the test ends.

Pebble's own HTTPS listener gets a certificate from a throwaway CA (``lab.acme.configure``), which
the client trusts through ``MAILGATE_ACME_CA_FILE``; the CA that signs what Pebble issues is
made anew at every start and is read from Pebble's management interface (``roots/0``).
"""

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab import acme
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
        base = f"https://{HOST}:{self.management_port}"
        return acme.management(base, path, str(self.ca_file))

    @property
    def root(self) -> str:
        """The root of the certificates Pebble issues (its chain ends below it)."""
        return self.management("roots/0")


@contextlib.contextmanager
def running(folder: Path, dns_port: int, *, http_port: int = 0):
    """Pebble until the block ends; every validation it makes asks 127.0.0.1:``dns_port``, and
    its HTTP-01 validations connect to ``http_port`` (a free port, where nothing answers,
    unless one is given)."""
    folder.mkdir(parents=True, exist_ok=True)
    port, management = free_port(), free_port()
    ports = (port, management, http_port or free_port(), free_port())
    acme.configure(folder, HOST, ca_name="Pebble listener test CA", ports=ports)
    environment = {
        **os.environ,
        **acme.ENVIRONMENT,
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
        pebble = Pebble(port, management, folder / "listener-ca.pem")
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
