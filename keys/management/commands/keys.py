"""``manage.py keys check | import-ca FILE | fetch-protonca``: what an admin scripts or runs
from cron where no Celery beat runs."""

from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from keys import services


class Command(BaseCommand):
    help = "Check contact keys' certifications, or trust ProtonCA's key."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        check = commands.add_parser("check", help="Refresh validities and certification alerts.")
        check.add_argument(
            "--at",
            type=datetime.fromisoformat,
            help="Check as of this moment (ISO 8601 with a time zone), e.g. to look ahead.",
        )
        import_ca = commands.add_parser("import-ca", help="Trust ProtonCA's key from a file.")
        import_ca.add_argument("file", type=Path)
        import_ca.add_argument("--name", default="ProtonCA")
        commands.add_parser("fetch-protonca", help="Fetch ProtonCA's key by WKD and trust it.")

    def handle(self, *args, command, **options):
        try:
            if command == "check":
                self._check(options["at"])
            elif command == "import-ca":
                data = options["file"].read_bytes()
                anchor = services.trust_anchor_import(key_data=data, name=options["name"])
                self.stdout.write(f"Trusted {anchor}.")
            else:
                self.stdout.write(f"Trusted {services.trust_anchor_fetch_protonca()}.")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except OSError as exc:
            raise CommandError(str(exc)) from None

    def _check(self, at: datetime | None) -> None:
        if at is not None and at.tzinfo is None:
            raise CommandError("Give --at with a time zone, e.g. 2027-06-01T00:00:00+00:00.")
        alerts = services.certifications_check(now=at)
        for alert in alerts:
            self.stdout.write(
                f"{alert.get_kind_display()}: {alert.user_id} ({alert.contact_key.fingerprint}) "
                f"by {alert.trust_anchor.name}, {alert.expires_at:%Y-%m-%d %H:%M} UTC"
            )
        self.stdout.write(f"{len(alerts)} alert(s).")
        if alerts:
            self.stderr.write("Some certifications have expired or expire within 30 days.")
