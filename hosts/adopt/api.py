"""``POST /api/hosts/{id}/adopt/`` (owner only): the host's adoption over SSH, read-only there,
answered with the report and the plan; ``dry_run`` (the default) writes nothing."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway.api.schema import errors
from hosts import transport
from hosts.adopt.report import AdoptionRefused, Report
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import RemoteTree
from hosts.api.deployments import HostUnreachable, PlanSerializer


class InputRefused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "What the host holds was refused (see the report): nothing was written."
    default_code = "adoption_refused"

    def __init__(self, report: Report):
        super().__init__()
        self.extra = {"report": report_data(report)}


class AdoptSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(
        default=True, help_text="Report and plan only; false adopts what the host holds."
    )


class ReportSerializer(serializers.Serializer):
    adopted = serializers.ListField(child=serializers.CharField())
    not_understood = serializers.ListField(
        child=serializers.CharField(), help_text="Each with its file and line; kept here."
    )
    conflicts = serializers.ListField(child=serializers.CharField())
    errors = serializers.ListField(child=serializers.CharField())
    routing = serializers.ListField(
        child=serializers.CharField(), help_text="Addresses that would route otherwise."
    )


class AdoptionSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    report = ReportSerializer()
    plan = PlanSerializer(allow_null=True)


def report_data(report: Report) -> dict:
    fields = ("adopted", "not_understood", "conflicts", "errors", "routing")
    return {name: [str(item) for item in getattr(report, name)] for name in fields}


class HostAdoptMixin:
    """The adoption action on ``/api/hosts/`` (beside ``HostDeployMixin``, whose ``_owned_host``
    it uses: only the owner adopts)."""

    @extend_schema(
        request=AdoptSerializer,
        responses={200: AdoptionSerializer, **errors(InputRefused, HostUnreachable)},
    )
    @action(detail=True, methods=["post"])
    def adopt(self, request, pk=None):
        """Read what the host runs (Mailu's export and mailu.env, Postfix's tables, Dovecot's
        users, the relay, WireGuard) over SSH without changing anything there, and fill
        Mailgate's rows from it unless ``dry_run``; the report, then the plan."""
        host = self._owned_host()
        given = AdoptSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        dry_run = given.validated_data["dry_run"]
        try:
            with transport.Session(host) as session:
                adoption = host_adopt(host=host, tree=RemoteTree(session), dry_run=dry_run)
        except AdoptionRefused as exc:
            raise InputRefused(exc.report) from None
        except (transport.TransportError, OSError) as exc:
            raise HostUnreachable(str(exc)) from None
        plan = PlanSerializer(adoption.plan).data if adoption.plan else None
        data = {"dry_run": dry_run, "report": report_data(adoption.report), "plan": plan}
        return Response(data)
