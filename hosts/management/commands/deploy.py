"""``python manage.py deploy --host NAME [--plan] [--confirm-destructive USER]``: show what
would change on a host, or deploy it now, in this process, printing the deployment's log. A plan
that takes away what the host holds waits for confirmation, unless the person named by
``--confirm-destructive`` confirms the removals of the plan printed first."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from gateway.bundle import RenderError
from hosts import engine, services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Host
from hosts.plan import Plan
from hosts.transport import TransportError


class Command(BaseCommand):
    help = "Plan or deploy one host's configuration over SSH."

    def add_arguments(self, parser):
        parser.add_argument("--host", required=True, help="The host's name, e.g. vps.")
        parser.add_argument(
            "--plan", action="store_true", help="Only show what would change (and any drift)."
        )
        parser.add_argument(
            "--confirm-destructive",
            metavar="USER",
            help="The owner account that confirms the removals of the plan shown first.",
        )

    def handle(self, *args, host, plan, confirm_destructive, **options):
        try:
            target = Host.objects.get(name=host)
        except Host.DoesNotExist:
            raise CommandError(f"No host is named {host!r}.") from None
        if plan:
            self._plan(target)
            return
        confirmed = {}
        if confirm_destructive:
            confirmed = {
                "plan": self._plan(target),
                "removals_confirmed_by": self._owner(confirm_destructive),
            }
        try:
            deployment = services.deployment_run_here(
                host=target, trigger=DeploymentTrigger.CLI, **confirmed
            )
        except engine.Busy as exc:
            raise CommandError(str(exc)) from None
        status = deployment.status
        self.stdout.write(deployment.log)
        if status == DeploymentStatus.RUNNING:
            raise CommandError(
                f"Deployment #{deployment.pk} needs recovery (see above): Celery beat "
                "concludes it from what the host reports."
            )
        if status != DeploymentStatus.SUCCEEDED:
            raise CommandError(f"Deployment #{deployment.pk} {status}.")

    def _owner(self, username: str):
        owner = get_user_model().objects.filter(username=username, is_superuser=True).first()
        if owner is None:
            raise CommandError(f"{username!r} is not an owner account: only the owner confirms.")
        return owner

    def _plan(self, host: Host) -> Plan:
        try:
            plan = services.host_plan(host=host)
        except (RenderError, TransportError) as exc:
            raise CommandError(f"{host}: {exc}") from None
        self.stdout.write("\n".join(plan.lines()))
        return plan
