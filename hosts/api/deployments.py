"""API for deploying: plan, apply, deploy all, host-key confirmation, deployment history with
its log, and rollback. Long work is queued (202); a plan is read from the host at once."""

from contextlib import contextmanager

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway.api.exceptions import Conflict
from gateway.api.schema import errors
from gateway.bundle import RenderError
from gateway.scoping import acts_as_owner
from hosts import services
from hosts.choices import DeploymentTrigger, FileChange
from hosts.models import Deployment, DeploymentFile
from hosts.plan import PlanChanged, RemovalsUnconfirmed
from hosts.transport import TransportError


class HostUnreachable(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The host could not be reached over SSH."
    default_code = "host_unreachable"


class NotRenderable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The host's files cannot be rendered."
    default_code = "not_renderable"


@contextmanager
def host_errors():
    """What cannot be rendered is 422; a host that cannot be reached, 502."""
    try:
        yield
    except RenderError as exc:
        raise NotRenderable(str(exc)) from None
    except TransportError as exc:
        raise HostUnreachable(str(exc)) from None


class FilePlanSerializer(serializers.Serializer):
    path = serializers.CharField()
    unit = serializers.CharField()
    change = serializers.CharField()
    drift = serializers.BooleanField()
    before_sha256 = serializers.CharField()
    after_sha256 = serializers.CharField()
    diff = serializers.CharField()


class PlanSerializer(serializers.Serializer):
    host = serializers.CharField(source="host.name")
    digest = serializers.CharField(help_text="Pass it to deploy/ to deploy exactly this plan.")
    changes = FilePlanSerializer(many=True)
    drift = FilePlanSerializer(many=True)
    destructive = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the host holds that the plan takes away (domains, mailboxes, aliases, "
        "settings): deploying it needs confirm_destructive=true.",
    )
    unchanged = serializers.SerializerMethodField()

    def get_unchanged(self, plan) -> int:
        return len(plan.files) - len(plan.changes)


class HostDeploySerializer(serializers.Serializer):
    digest = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="The digest of the plan you reviewed (plan/): a plan that changed since is "
        "answered 409 with the new plan, and nothing is deployed.",
    )
    confirm_destructive = serializers.BooleanField(
        default=False,
        help_text="Confirm the removals of the plan you reviewed (its destructive list; needs "
        "its digest). A plan with removals is otherwise answered 409, or without a digest held "
        "for confirmation.",
    )


class HostKeySerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The key as fetched, 'ssh-ed25519 AAAA…'.")
    fingerprint = serializers.CharField(help_text="The SHA256 fingerprint you compared.")


class DeploymentFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeploymentFile
        fields = [
            "path",
            "unit",
            "change",
            "before_sha256",
            "after_sha256",
            "mode",
            "owner",
            "diff",
        ]


class DeploymentSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    triggered_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    approved_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    destructive_confirmed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    plan_digest = serializers.CharField(
        read_only=True,
        help_text="The digest of the plan it deploys; for a plan waiting for approval, pass it "
        "to approve/.",
    )
    files = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "host",
            "status",
            "trigger",
            "triggered_by",
            "approved_by",
            "destructive",
            "destructive_confirmed_by",
            "plan_digest",
            "rollback_of",
            "created_at",
            "started_at",
            "finished_at",
            "files",
        ]

    def get_files(self, deployment) -> list[dict]:
        changed = [row for row in deployment.files.all() if row.change != FileChange.UNCHANGED]
        return DeploymentFileSerializer(changed, many=True).data


class DeploymentLogSerializer(serializers.Serializer):
    status = serializers.CharField()
    offset = serializers.IntegerField(help_text="Pass it back to get only what follows.")
    log = serializers.CharField()


class HostDeployMixin:
    """Actions on ``/api/hosts/`` (owner only, like hosts themselves)."""

    @extend_schema(
        request=None, responses={200: PlanSerializer, **errors(NotRenderable, HostUnreachable)}
    )
    @action(detail=True, methods=["get"])
    def plan(self, request, pk=None):
        """What a deployment would change now: per-file diffs (secrets masked) and drift."""
        host = self._owned_host()
        with host_errors():
            plan = services.host_plan(host=host)
        return Response(PlanSerializer(plan).data)

    @extend_schema(
        request=HostDeploySerializer,
        responses={
            202: DeploymentSerializer,
            409: OpenApiResponse(
                description="The plan changed since it was shown, or it takes away what the "
                "host holds and confirm_destructive was not given (its plan is the plan now); "
                "nothing was deployed."
            ),
            **errors(NotRenderable, HostUnreachable),
        },
    )
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        """Queue a deployment of the host (with ``digest``: only of the plan you reviewed);
        follow it at ``/api/deployments/{id}/log/``."""
        host = self._owned_host()
        given = HostDeploySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            with host_errors():
                deployment = services.host_deploy(
                    host=host,
                    plan_digest=given.validated_data.get("digest", ""),
                    trigger=DeploymentTrigger.API,
                    user=request.user,
                    confirm_destructive=given.validated_data["confirm_destructive"],
                )
        except PlanChanged as exc:
            plan = PlanSerializer(exc.plan).data
            raise Conflict(str(exc), "plan_changed", plan=plan) from None
        except RemovalsUnconfirmed as exc:
            plan = PlanSerializer(exc.plan).data
            raise Conflict(str(exc), "destructive_unconfirmed", plan=plan) from None
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: DeploymentSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="deploy-all", pagination_class=None)
    def deploy_all(self, request):
        """Queue one deployment per host with a confirmed key; they run in parallel."""
        if not acts_as_owner(request.user):
            raise exceptions.PermissionDenied("Only the owner deploys.")
        deployments = services.deploy_all(trigger=DeploymentTrigger.API, user=request.user)
        data = DeploymentSerializer(deployments, many=True).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        methods=["get"], request=None, responses={200: HostKeySerializer, **errors(HostUnreachable)}
    )
    @extend_schema(methods=["post"], request=HostKeySerializer, responses={204: None})
    @action(detail=True, methods=["get", "post"], url_path="host-key")
    def host_key(self, request, pk=None):
        """GET fetches the key the host presents (first contact); POST pins it once you have
        compared the fingerprint with the host's own."""
        host = self._owned_host()
        if request.method == "GET":
            try:
                key, fingerprint = services.host_scan_key(host=host)
            except TransportError as exc:
                raise HostUnreachable(str(exc)) from None
            return Response({"key": key, "fingerprint": fingerprint})
        given = HostKeySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        services.host_confirm_key(host=host, **given.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _owned_host(self):
        if not acts_as_owner(self.request.user):
            raise exceptions.PermissionDenied("Only the owner deploys.")
        return self.get_object()


class DeploymentFilter(filters.FilterSet):
    host = filters.CharFilter(field_name="host__name", help_text="The host's name, e.g. vps.")

    class Meta:
        model = Deployment
        fields = ["host", "status", "trigger"]


class DeploymentApproveSerializer(serializers.Serializer):
    digest = serializers.CharField(
        help_text="The plan_digest of the waiting deployment whose files you reviewed."
    )
    confirm_destructive = serializers.BooleanField(
        default=False,
        help_text="Confirm the removals the plan lists (its destructive list); required when "
        "there are any, whoever or whatever made the plan.",
    )


class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The deployment history (owner only); ``?status=awaiting`` lists the plans that wait for
    your approval."""

    serializer_class = DeploymentSerializer
    filterset_class = DeploymentFilter

    def get_queryset(self):
        if not acts_as_owner(self.request.user):
            return Deployment.objects.none()
        return Deployment.objects.select_related(
            "host", "triggered_by", "approved_by", "destructive_confirmed_by"
        ).prefetch_related("files")

    @extend_schema(
        parameters=[OpenApiParameter("offset", int, description="Bytes already read.")],
        responses=DeploymentLogSerializer,
    )
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        """The deployment's status and its log from ``offset`` on, for following it live."""
        deployment = self.get_object()
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
        except ValueError:
            raise exceptions.ValidationError({"offset": "Give a whole number."}) from None
        text = deployment.log.encode()
        return Response(
            {
                "status": deployment.status,
                "offset": len(text),
                "log": text[offset:].decode(errors="replace"),
            }
        )

    @extend_schema(request=None, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Deploy this (successful) deployment's files again, as they were."""
        rollback = services.deployment_rollback(
            deployment=self.get_object(), trigger=DeploymentTrigger.API, user=request.user
        )
        return Response(DeploymentSerializer(rollback).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=DeploymentApproveSerializer, responses={202: DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Deploy a plan that waits for approval, exactly the one whose ``digest`` you give: a
        plan that changed since fails with nothing written, and the newer plan waits."""
        given = DeploymentApproveSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        deployment = services.deployment_approve(
            deployment=self.get_object(),
            plan_digest=given.validated_data["digest"],
            user=request.user,
            confirm_destructive=given.validated_data["confirm_destructive"],
        )
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_202_ACCEPTED)
