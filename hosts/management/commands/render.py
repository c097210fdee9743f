"""``python manage.py render --host NAME --out DIR [--check]``: write a host's bundle to a
folder as it would land on the host, and optionally run the bundle's checks on this machine."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from gateway.bundle import RenderError
from hosts.checks import run_checks
from hosts.models import Host
from hosts.render import render_host


class Command(BaseCommand):
    help = "Render a host's configuration files into a folder (paths below it mirror the host)."

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="The host's name, e.g. vps.")
        parser.add_argument("--out", required=True, type=Path, help="The folder to write to.")
        parser.add_argument(
            "--check",
            action="store_true",
            help="Also run the bundle's checks here (needs postfix, haproxy, nginx, ...).",
        )

    def handle(self, *args, host, out, check, **options):
        try:
            bundle = render_host(Host.objects.get(name=host))
        except Host.DoesNotExist:
            raise CommandError(f"No host is named {host!r}.") from None
        except RenderError as exc:
            raise CommandError(f"{host}: {exc}") from None
        for path in bundle.write_to(out):
            self.stdout.write(str(path))
        for unit in bundle.units:
            if unit.instructions:
                self.stdout.write(f"\n{unit.name}: steps only you can do\n{unit.instructions}")
        if check:
            self._check(bundle, out)

    def _check(self, bundle, out: Path) -> None:
        failed = [result for result in run_checks(bundle, out) if not result.ok]
        for result in failed:
            self.stderr.write(f"{result.unit}: check failed\n{result.output}")
        if failed:
            units = sorted({result.unit for result in failed})
            raise CommandError(f"Checks failed for: {', '.join(units)}.")
        self.stdout.write(self.style.SUCCESS("All checks passed."))
