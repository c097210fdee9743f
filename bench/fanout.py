"""Deploy all against the slowest single host: 20 relay hosts, a real Celery worker with 4
processes, one change that alters every host's Postfix files.

    .venv/bin/python bench/fanout.py [--hosts 20] [--workers 4] [--repeat 3]   (as root)

Each host is a lab host in a network namespace (``lab.hosts``) with its own sshd and its own copy
of the machine's Postfix, which checks every file on the host (``postfix check``) before it
counts and reloads (the lab's stand-in systemctl takes ``RELOAD`` seconds, as a real reload
does). Measured in one run, best of ``--repeat``, from queueing until the last deployment has
finished: each host deployed alone through the worker, one after another (the slowest of them
is the peer), then all of them by "deploy all". Goal: deploy all takes at most 1.5x the slowest
single host.
"""

import argparse
import os
import shutil
import time
from pathlib import Path

import panel

WORK = panel.setup(
    MAILGATE_CONVERGE="false",  # only what the bench queues is deployed
)

import worker
from django.conf import settings
from django.core.management import call_command

from hosts import services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Deployment, Host, Relay
from lab.hosts import LabHost

PRIVATE = ("/etc/postfix", "/var/spool/postfix", "/var/lib/mailgate", "/usr/local/sbin")
RELOAD = 0.5  # seconds the stand-in systemctl takes
SYSTEMCTL = f"#!/bin/sh\nsleep {RELOAD}\n"


def lab_host(number: int) -> LabHost:
    lab = LabHost.create(prefix=f"fan{number}", private_dirs=PRIVATE)
    systemctl = lab.root / "private/usr/local/sbin/systemctl"
    systemctl.write_text(SYSTEMCTL)
    systemctl.chmod(0o755)
    return lab


def register(labs: list[LabHost]) -> tuple[Relay, list[Host]]:
    relay = Relay.objects.create(
        name="provider",
        kind="generic",
        host="smtp.provider.example",
        port=587,
        username="family@provider.example",
        password="relay-secret",
    )
    hosts = [
        Host.objects.create(
            name=f"relay{number:02}",
            is_relay=True,
            relay=relay,
            ssh_address=lab.address,
            ssh_private_key=lab.client_key,
            ssh_host_key=lab.host_key,
        )
        for number, lab in enumerate(labs)
    ]
    return relay, hosts


def finished(deployments: list[Deployment], timeout: float = 300) -> float:
    """Seconds until every deployment has ended (from the earliest creation), each succeeded."""
    ids = [deployment.pk for deployment in deployments]
    deadline = time.monotonic() + timeout
    while Deployment.objects.filter(pk__in=ids, status__in=Deployment.IN_PROGRESS).exists():
        if time.monotonic() > deadline:
            raise SystemExit("deployments did not finish in time")
        time.sleep(0.02)
    rows = list(Deployment.objects.filter(pk__in=ids))
    failed = [row for row in rows if row.status != DeploymentStatus.SUCCEEDED]
    if failed:
        raise SystemExit(f"{failed[0].host}: {failed[0].status}\n{failed[0].log}")
    return (
        max(row.finished_at for row in rows).timestamp()
        - min(row.created_at for row in rows).timestamp()
    )


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat, all cores)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def change(relay: Relay, port: int) -> None:
    """A change in every host's main.cf (its relayhost line)."""
    relay.port = port
    relay.save(update_fields=["port"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    settings.CELERY_WORKER_CONCURRENCY = options.workers
    call_command("migrate", verbosity=0)
    labs: list[LabHost] = []
    process = None
    try:
        labs = [lab_host(number) for number in range(options.hosts)]
        relay, hosts = register(labs)
        process = worker.start(WORK / "worker.log", options.workers)
        first = services.deploy_all(trigger=DeploymentTrigger.CLI)  # warms the worker up
        print(f"{options.hosts} hosts, first deployment of all: {finished(first):.3f}s")
        port, singles, alls, cpu, single_cpu = 2600, [], [], [], []
        for _ in range(options.repeat):
            port += 1
            change(relay, port)
            alone, before = [], busy_seconds()
            for host in hosts:
                queued = services.deployment_queue(host=host, trigger=DeploymentTrigger.CLI)
                alone.append(finished([queued]))
            singles.append(max(alone))
            single_cpu.append((busy_seconds() - before) / len(hosts))
            port += 1
            change(relay, port)
            before = busy_seconds()
            alls.append(finished(services.deploy_all(trigger=DeploymentTrigger.CLI)))
            cpu.append(busy_seconds() - before)
        report(options, min(singles), min(alls), min(cpu), min(single_cpu))
    finally:
        try:
            if process:
                worker.stop(process)
        finally:
            for lab in labs:
                lab.close()


def report(options, slowest: float, everything: float, cpu: float, per_host: float) -> None:
    cores = os.cpu_count() or 1
    print(
        f"one changed main.cf per host, checked and reloaded ({RELOAD}s); "
        f"{options.workers} worker processes; best of {options.repeat}"
    )
    print(f"{'slowest single host':24} {slowest:8.3f}s")
    print(f"{f'deploy all ({options.hosts} hosts)':24} {everything:8.3f}s")
    print(f"{'ratio':24} {everything / slowest:8.2f}x  (goal: at most 1.5x)")
    # The lab's hosts share this machine's cores: what they all do at once is bounded by them,
    # where each host of a real deployment has cores of its own.
    floor = max(slowest, options.hosts * per_host / cores)
    print(
        f"{'machine CPU, one host':24} {per_host:8.3f}s (the lab host's checks and Mailgate's "
        "side, alone)"
    )
    print(
        f"{'machine CPU, deploy all':24} {cpu:8.3f}s on {cores} cores: no run here can be "
        f"faster than {floor:.3f}s"
    )
    print(f"{'ratio to that floor':24} {everything / floor:8.2f}x")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
