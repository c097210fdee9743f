"""``python manage.py lab up|down|status|verify`` (as root): the reference setup
(docs/reference-setups.md, "Tried here") in network namespaces on this machine, deployed by Mailgate
and checked end to end (``lab.world``, ``lab.verify``)."""

import os
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from hosts.choices import GatewayProxy, MailBackend
from lab import verify, world
from lab.hosts import LabError

GATEWAYS = {"haproxy": GatewayProxy.HAPROXY, "traefik": GatewayProxy.TRAEFIK_HAPROXY}
MAIL_BACKENDS = {"postfix-dovecot": MailBackend.POSTFIX_DOVECOT, "mailu": MailBackend.MAILU}


class Command(BaseCommand):
    help = "Build, check or remove the gateway lab (network namespaces; needs root)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["up", "down", "status", "verify"])
        parser.add_argument(
            "--folder",
            type=Path,
            default=None,
            help="Where the lab keeps its state (default: the data folder's lab/).",
        )
        parser.add_argument(
            "--gateway",
            choices=sorted(GATEWAYS),
            default="haproxy",
            help="up: HAProxy for every port (default), or Traefik with HAProxy for port 25 "
            "(the Mailu-behind-Traefik setup of docs/reference-setups.md).",
        )
        parser.add_argument(
            "--mail-backend",
            choices=sorted(MAIL_BACKENDS),
            default="postfix-dovecot",
            help="up: the home server's Postfix + Dovecot (default), or Mailu: its containers "
            "played natively with Mailu's own start scripts and templates.",
        )

    def handle(self, *args, action, folder, gateway, mail_backend, **options):
        if os.geteuid() != 0:
            raise CommandError("The lab builds network namespaces: run it as root.")
        folder = folder or world.default_folder()
        say = self.stdout.write
        try:
            if action == "up":
                world.up(
                    folder=folder,
                    say=say,
                    gateway=GATEWAYS[gateway],
                    mail_backend=MAIL_BACKENDS[mail_backend],
                )
            elif action == "down":
                world.down(folder=folder, say=say)
            elif action == "status":
                self._status(folder)
            else:
                self._verify(folder)
        except LabError as exc:
            raise CommandError(str(exc)) from None
        except ValidationError as exc:  # the demo rows clash with what the panel holds
            raise CommandError(f"The lab cannot register its hosts: {exc}") from None

    def _status(self, folder: Path) -> None:
        rows = world.status(folder=folder)
        if not rows:
            self.stdout.write("No lab is up. Start one with: python manage.py lab up")
        for role, text in rows:
            self.stdout.write(f"{role:9} {text}")

    def _verify(self, folder: Path) -> None:
        lab = world.Lab.load(folder)
        if lab is None:
            raise CommandError("No lab is up. Start one with: python manage.py lab up")
        results = verify.run_all(lab)
        for result in results:
            mark = "PASS" if result.ok else "FAIL"
            self.stdout.write(f"[{mark}] {result.name}")
            for line in result.evidence.splitlines():
                self.stdout.write(f"       {line}")
        failed = sum(not result.ok for result in results)
        self.stdout.write(f"{len(results) - failed} passed, {failed} failed")
        if failed:
            raise CommandError(f"{failed} of {len(results)} lab checks failed.")
