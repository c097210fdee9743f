"""``python manage.py adopt --host NAME [--from DIR] [--mailu-export FILE] [--dry-run]``: read
what a host runs into Mailgate, from a copy of its files, from Mailu's export, or (with neither)
from the host itself over SSH, read-only; print the report, then the plan."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hosts.adopt.report import AdoptionRefused
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import LocalTree, RemoteTree
from hosts.models import Host
from hosts.transport import Session, TransportError


class Command(BaseCommand):
    help = "Adopt an existing mail setup: fill Mailgate's rows from what a host runs."

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="The host's name in Mailgate.")
        parser.add_argument(
            "--from", dest="source", type=Path, help="A copy of the host's /etc and /opt/mailu."
        )
        parser.add_argument(
            "--mailu-export",
            type=Path,
            help="The output of 'flask mailu config-export --full --secrets' (YAML or JSON).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report and plan, but write nothing."
        )

    def handle(self, *args, host, source, mailu_export, dry_run, **options):
        try:
            target = Host.objects.get(name=host)
        except Host.DoesNotExist:
            raise CommandError(f"No host is named {host!r}.") from None
        export = (str(mailu_export), Path(mailu_export).read_text()) if mailu_export else None
        try:
            if source or export:
                tree = LocalTree(source) if source else None
                adoption = host_adopt(host=target, tree=tree, mailu_export=export, dry_run=dry_run)
            else:
                with Session(target) as session:
                    adoption = host_adopt(host=target, tree=RemoteTree(session), dry_run=dry_run)
        except AdoptionRefused as exc:
            self.stdout.write("\n".join(exc.report.lines()))
            raise CommandError("The input was refused (see above): nothing was written.") from None
        except (TransportError, OSError) as exc:
            raise CommandError(f"{target}: {exc}") from None
        self.stdout.write("\n".join(adoption.report.lines()))
        if adoption.plan is not None:
            self.stdout.write("\n".join(["", "Plan:", *adoption.plan.lines()]))
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
