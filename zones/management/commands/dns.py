"""``python manage.py dns check DOMAIN`` and the rest of the DNS app from a shell:

dns records DOMAIN              the records DOMAIN's mail needs
dns check DOMAIN [--resolver]   check them live (exit 1 when one is wrong)
dns zone DOMAIN                 print the zone file
dns plan DOMAIN                 what a push would change
dns push DOMAIN                 push it
dns dkim DOMAIN generate|activate|retire [--selector S]
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from gateway.bundle import RenderError
from gateway.models import Domain
from zones import selectors, services
from zones.choices import CheckTrigger
from zones.models import DkimKey
from zones.push import PushError
from zones.records import expected_records, presentation
from zones.resolver import Lookup, parse_servers

MARKS = {"ok": "ok  ", "fail": "FAIL", "warn": "warn", "info": "info"}


class Command(BaseCommand):
    help = "Show, check, export and push a domain's DNS records; rotate its DKIM keys."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        for name, text in [
            ("records", "List the records the domain's mail needs."),
            ("check", "Check them live; exit 1 when one is wrong."),
            ("zone", "Print the zone file of the domain's zone."),
            ("plan", "Show what a push would change."),
            ("push", "Push the zone to its push target."),
        ]:
            sub = actions.add_parser(name, help=text)
            sub.add_argument("domain")
            if name == "check":
                sub.add_argument("--resolver", help="address[:port], instead of the setting.")
        dkim = actions.add_parser("dkim", help="Generate, activate or retire a DKIM key.")
        dkim.add_argument("domain")
        dkim.add_argument("step", choices=["generate", "activate", "retire"])
        dkim.add_argument("--selector", default="")

    def handle(self, *args, action, domain, **options):
        target = Domain.objects.filter(name=domain.strip().rstrip(".").lower()).first()
        if target is None:
            raise CommandError(f"No domain is named {domain!r}.")
        try:
            getattr(self, f"_{action}")(target, **options)
        except (ValidationError, PushError, RenderError, ValueError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from None

    def _records(self, domain, **options):
        for record in expected_records(selectors.dns_facts(), domain.name):
            values = [presentation(record.rtype, v) for v in record.values] or ["(remove)"]
            for value in values:
                self.stdout.write(f"{record.name}. {record.ttl} IN {record.rtype} {value}")

    def _check(self, domain, resolver=None, **options):
        lookup = Lookup(parse_servers(resolver)) if resolver else Lookup()
        run = services.check_run(domain=domain, trigger=CheckTrigger.CLI, lookup=lookup)
        for result in run.results.all():
            self.stdout.write(f"{MARKS[result.status]} {result.name} {result.rtype}".rstrip())
            for line in (result.message, result.fix and f"fix: {result.fix}"):
                if line and result.status != "ok":
                    self.stdout.write(f"     {line}")
        summary = f"{run.passed} ok, {run.failed} wrong, {run.warnings} warnings ({run.resolver})"
        if not run.ok:
            raise CommandError(summary)
        self.stdout.write(summary)

    def _zone(self, domain, **options):
        self.stdout.write(services.zone_file_for(domain=domain).decode(), ending="")

    def _plan(self, domain, **options):
        self._show(services.push_plan(target=self._target(domain)))

    def _push(self, domain, **options):
        plan = services.push_apply(target=self._target(domain))
        self._show(plan)
        self.stdout.write(f"Pushed {len(plan.changes)} change(s).")

    def _show(self, plan):
        for change in plan.changes:
            self.stdout.write(f"{change.action:7} {change.name} {change.rtype}")
            for value in change.removes:
                self.stdout.write(f"        - {value}")
            for value in change.new:
                self.stdout.write(f"        + {value}")
        for record in plan.manual:
            self.stdout.write(f"by hand {record.name} {record.rtype} {' '.join(record.values)}")
        self.stdout.write(f"{len(plan.changes)} to change, {plan.unchanged} unchanged.")

    def _target(self, domain):
        target = selectors.push_target_for(domain)
        if target is None:
            raise CommandError(f"{domain} has no push target.")
        return target

    def _dkim(self, domain, step, selector="", **options):
        if step == "generate":
            key = services.dkim_key_generate(domain=domain, selector=selector)
        else:
            key = DkimKey.objects.filter(domain=domain, selector=selector).first()
            if key is None:
                raise CommandError(f"{domain} has no DKIM key with the selector {selector!r}.")
            key = getattr(services, f"dkim_key_{step}")(key=key)
        self.stdout.write(f"{key}: {key.state}")
