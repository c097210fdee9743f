"""From Save to live: a mailbox created through the API until its first IMAP login through the
gateway succeeds, and an alias until mail to it is accepted, in the lab.

    .venv/bin/python bench/converge.py [--repeat 20]   (as root)

Builds the lab (``lab.world``: a gateway, a Postfix + Dovecot home server and a relay in network
namespaces), starts a real Celery worker on the embedded broker, and changes the directory as a
family member would, through the API. Nothing else deploys: convergence (docs/architecture.md,
"Convergence: changes go live by themselves") notices the change after commit, renders, checks and
applies it on the home server. Meanwhile a client on the lab's internet host tries, a new connection
every 0.1 s, to log in over IMAPS at the gateway (or to have the gateway accept mail for the alias).
Prints p50 and p95 of the seconds from the API's answer to the first success. Goal: p95 at most 3 s.
"""

import argparse
import ipaddress
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import time

import panel

WORK = panel.setup(
    MAILGATE_BCRYPT_ROUNDS="10",
    ALLOWED_HOSTS="testserver",  # the API client in this process
)

import worker
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from gateway.models import Domain
from hosts.models import Deployment
from lab import world
from lab.world import DOMAIN, MAIL_HOST, VPS_PUBLIC

WAIT = 60  # seconds a client tries before the bench gives up
# The addresses the IMAP client logs in from, one after another (lab.probe.until_login): added
# to the internet host beside its own for the bench.
SOURCES = "203.0.113.128/26"


def settled(timeout: float = 120) -> None:
    """Until no deployment is pending or running (a change before the bench's own)."""
    deadline = time.monotonic() + timeout
    while Deployment.objects.filter(status__in=Deployment.IN_PROGRESS).exists():
        if time.monotonic() > deadline:
            raise SystemExit("deployments did not settle")
        time.sleep(0.1)


class Client:
    """A client on the lab's internet host (``lab.probe``'s until- verbs), started before the
    change so that Python's start is not measured."""

    def __init__(self, lab, verb: str, *arguments: str, password: str = ""):
        *given, last = arguments
        ordered = [*given, str(WAIT), last] if verb == "until-login" else [*arguments, str(WAIT)]
        command = [sys.executable, "-m", "lab.probe", verb, *ordered]
        self.process = lab.hosts["internet"].popen(
            "env",
            f"LAB_PROBE_PASSWORD={password}",
            f"PYTHONPATH={panel.ROOT}",
            *command,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit(f"the client did not start: {verb} {' '.join(arguments)}")

    def succeeded_at(self) -> float:
        result = json.loads(self.process.stdout.read())
        self.process.wait()
        if result.get("at") is None:
            raise SystemExit(f"no success within {WAIT}s: {result}")
        return result["at"]


def mailbox_live(lab, api, domain, number: int) -> float:
    local, password = f"bench{number}", secrets.token_urlsafe(16)
    ca = str(lab.folder / "ca.pem")
    address = f"{local}@{DOMAIN}"
    client = Client(lab, "until-login", MAIL_HOST, address, ca, SOURCES, password=password)
    answer = api.post(
        "/api/mailboxes/",
        {"domain": domain.pk, "local_part": local, "password": password},
        format="json",
    )
    saved = time.time()
    if answer.status_code != 201:
        raise SystemExit(f"the API refused the mailbox: {answer.status_code} {answer.content}")
    return client.succeeded_at() - saved


def alias_live(lab, api, domain, number: int) -> float:
    local = f"benchalias{number}"
    client = Client(lab, "until-accepted", VPS_PUBLIC, "25", f"{local}@{DOMAIN}")
    answer = api.post(
        "/api/aliases/",
        {"domain": domain.pk, "local_part": local, "destinations": [f"alice@{DOMAIN}"]},
        format="json",
    )
    saved = time.time()
    if answer.status_code != 201:
        raise SystemExit(f"the API refused the alias: {answer.status_code} {answer.content}")
    return client.succeeded_at() - saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    folder = WORK / "lab"
    process = None
    try:
        lab = world.up(folder=folder, say=lambda line: None, prefix="conv")
        internet = lab.hosts["internet"]
        route = internet.run(f"ip -o -4 route get {VPS_PUBLIC}").stdout
        device = route.split(" dev ")[1].split()[0]
        for source in ipaddress.ip_network(SOURCES).hosts():
            internet.run(f"ip addr add {source}/32 dev {device}")
        process = worker.start(WORK / "worker.log", 2)
        settled()
        owner = get_user_model().objects.create_superuser("bench-owner", password=None)
        api = APIClient()
        api.force_authenticate(owner)
        domain = Domain.objects.get(name=DOMAIN)
        rows = []
        measures = (("mailbox -> IMAP login", mailbox_live), ("alias -> RCPT", alias_live))
        for label, measure in measures:
            seconds, deploying = [], []
            for number in range(options.repeat):
                settled()
                since = timezone.now()
                seconds.append(measure(lab, api, domain, number))
                settled()
                deploying += [
                    (row.finished_at - row.started_at).total_seconds()
                    for row in Deployment.objects.filter(created_at__gte=since)
                ]
            rows.append((label, seconds, deploying))
        report(options, rows)
    finally:
        try:
            if process:
                worker.stop(process)
        finally:
            world.down(folder=folder, say=lambda line: None)


def report(options, rows) -> None:
    print(f"{options.repeat} changes each, through the API, until live through the gateway")
    print(f"{'':24} {'p50':>8} {'p95':>8} {'max':>8}")
    for label, seconds, deploying in rows:
        p95 = (
            statistics.quantiles(seconds, n=20, method="inclusive")[-1]
            if len(seconds) > 1
            else seconds[0]
        )
        print(
            f"{label:24} {statistics.median(seconds):7.2f}s {p95:7.2f}s {max(seconds):7.2f}s"
            "  (goal: p95 at most 3 s)"
        )
        print(
            f"{'  of it, deploying':24} {statistics.median(deploying):7.2f}s "
            f"(median of {len(deploying)} deployments: render, checks, transaction)"
        )


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
