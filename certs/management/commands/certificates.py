"""``python manage.py certificates list|renew`` from a shell:

certificates list                       every certificate, its names, issuer and expiry
certificates renew [--force] [NAME…]    renew what is due (--force: the NAMEs, or all, now)
"""

from django.core.management.base import BaseCommand, CommandError

from certs import services
from certs.choices import Outcome, Trigger


class Command(BaseCommand):
    help = "List Mailgate's certificates; renew those that are due, or force a renewal."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="Every certificate with its issuer and expiry.")
        renew = actions.add_parser("renew", help="Renew the certificates that are due.")
        renew.add_argument("names", nargs="*", help="Certificates (first names) to renew.")
        renew.add_argument("--force", action="store_true", help="Renew now, due or not.")

    def handle(self, *args, action, **options):
        getattr(self, f"_{action}")(**options)

    def _list(self, **options):
        for certificate in services.certificates_sync():
            current, latest = certificate.current, certificate.latest
            held = (
                f"{current.issuer}, serial {current.serial}, until {current.not_after:%Y-%m-%d}"
                if current
                else "never issued"
            )
            failed = latest and latest.outcome == Outcome.FAILED
            self.stdout.write(
                f"{certificate.host} {certificate.name} ({', '.join(certificate.names)}): {held}"
                + (f"; last attempt FAILED: {latest.message}" if failed else "")
            )

    def _renew(self, *, names, force, **options):
        certificates = services.certificates_sync()
        chosen = [c for c in certificates if not names or c.name in names]
        if names and not chosen:
            raise CommandError(f"No certificate is named {', '.join(names)}.")
        failed = 0
        for certificate in chosen:
            if force:
                attempt = services.certificate_force_renewal(certificate=certificate)
            elif services.certificate_due(certificate):
                attempt = services.certificate_issue(certificate=certificate, trigger=Trigger.UI)
            else:
                self.stdout.write(f"{certificate.name} on {certificate.host}: not due")
                continue
            failed += attempt.outcome == Outcome.FAILED
            self.stdout.write(f"{certificate.name} on {certificate.host}: {attempt.message}")
        if failed:
            raise CommandError(f"{failed} certificate(s) could not be issued.")
