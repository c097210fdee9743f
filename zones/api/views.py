"""DNS API: a domain's expected records, zone file, live check and push (``dns-zones``), its
check history (``dns-checks``), DKIM keys with their rotation (``dkim-keys``), settings
(``dns-settings``) and push target (``dns-push-targets``). A domain's managers and the owner may
use all of it for that domain; others see nothing of it (404)."""

from django.http import HttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway.api.base import ScopedViewSet
from gateway.api.filters import IdFilter
from gateway.api.schema import errors
from gateway.bundle import RenderError
from zones import selectors, services
from zones.api import serializers
from zones.choices import CheckTrigger
from zones.models import CheckRun, DkimKey, PushTarget, ZoneSettings
from zones.push import PushError
from zones.records import expected_records, zone_of


class Unprocessable(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = "The request cannot be carried out."
    default_code = "unprocessable"


class PushFailed(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The DNS server or provider did not take the update."
    default_code = "push_failed"


# What a push (or reading the zone for one) may answer: a model's refusal, no push target, a DNS
# server that did not take it; the DKIM key actions push too.
PUSH_ERRORS = errors(exceptions.ValidationError, Unprocessable, PushFailed)
KEY_ERRORS = errors(exceptions.ValidationError, PushFailed)


class DnsZoneViewSet(viewsets.ReadOnlyModelViewSet):
    """Each domain's DNS: what it should hold and how its last check went."""

    serializer_class = serializers.DnsZoneSerializer

    def get_queryset(self):
        return selectors.dns_domains(self.request.user)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        latest = selectors.latest_by_domain([domain.pk for domain in page])
        context = {**self.get_serializer_context(), "latest": latest}
        return self.get_paginated_response(
            self.get_serializer(page, many=True, context=context).data
        )

    def retrieve(self, request, pk=None):
        domain = self.get_object()
        facts = selectors.dns_facts()
        records = expected_records(facts, domain.name)
        context = {"zone_of": lambda name: zone_of(facts, name)}
        latest = selectors.latest_check(domain)
        return Response(
            {
                "id": domain.pk,
                "name": domain.name,
                "problems": list(facts.problems),
                "records": serializers.RecordSerializer(records, many=True, context=context).data,
                "latest_check": serializers.CheckRunDetailSerializer(latest).data
                if latest
                else None,
            }
        )

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR, **errors(Unprocessable)})
    @action(detail=True, methods=["get"], url_path="zone-file")
    def zone_file(self, request, pk=None):
        """The zone file of the records Mailgate manages in this domain's zone."""
        try:
            content = services.zone_file_for(domain=self.get_object())
        except RenderError as exc:
            raise Unprocessable(str(exc)) from None
        return HttpResponse(content, content_type="text/plain; charset=utf-8")

    @extend_schema(request=None, responses={201: serializers.CheckRunDetailSerializer})
    @action(detail=True, methods=["post"])
    def check(self, request, pk=None):
        """Check the domain's records now against the configured resolver (a few seconds)."""
        run = services.check_run(domain=self.get_object(), trigger=CheckTrigger.API)
        data = serializers.CheckRunDetailSerializer(run).data
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.ZonePlanSerializer, **PUSH_ERRORS})
    @action(detail=True, methods=["get"])
    def plan(self, request, pk=None):
        """What a push would add, change and delete; only managed names and types are read."""
        plan = _run_push(services.push_plan, target=self._target())
        return Response(serializers.ZonePlanSerializer(plan, context=self._records_context()).data)

    @extend_schema(
        request=serializers.PushSerializer,
        responses={200: serializers.ZonePlanSerializer, **PUSH_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def push(self, request, pk=None):
        """Apply the plan (with ``digest``: only if it is still the plan you saw)."""
        given = serializers.PushSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        digest = given.validated_data.get("digest", "")
        plan = _run_push(services.push_apply, target=self._target(), digest=digest)
        return Response(serializers.ZonePlanSerializer(plan, context=self._records_context()).data)

    def _target(self) -> PushTarget:
        target = selectors.push_target_for(self.get_object())
        if target is None:
            raise Unprocessable("This domain has no push target (dns-push-targets).")
        return target

    def _records_context(self) -> dict:
        facts = selectors.dns_facts()
        return {"zone_of": lambda name: zone_of(facts, name)}


def _run_push(function, **kwargs):
    try:
        return function(**kwargs)
    except PushError as exc:
        raise PushFailed(str(exc)) from None


class CheckRunFilter(filters.FilterSet):
    domain = IdFilter(field_name="domain_id", help_text="Only this domain (its id).")

    class Meta:
        model = CheckRun
        fields = ["domain"]


class CheckRunViewSet(viewsets.ReadOnlyModelViewSet):
    """The history of live checks, newest first; filter with ``?domain=<id>``."""

    filterset_class = CheckRunFilter

    def get_queryset(self):
        runs = CheckRun.objects.visible_to(self.request.user).select_related("domain")
        if self.action == "retrieve":
            runs = runs.prefetch_related("results")
        return runs

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.CheckRunDetailSerializer
        return serializers.CheckRunSerializer


@extend_schema_view(destroy=extend_schema(responses={204: None, **KEY_ERRORS}))
class DkimKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """DKIM keys: POST generates one (the private key never leaves Mailgate), ``activate``
    switches signing to it, ``retire`` withdraws its record, DELETE forgets a retired key."""

    serializer_class = serializers.DkimKeySerializer

    def get_queryset(self):
        return DkimKey.objects.visible_to(self.request.user).select_related("domain")

    def perform_create(self, serializer):
        serializer.instance = services.dkim_key_generate(
            domain=serializer.validated_data["domain"],
            selector=serializer.validated_data.get("selector", ""),
        )

    def perform_destroy(self, instance):
        _run_push(services.dkim_key_forget, key=self._manageable(instance))

    @extend_schema(request=None, responses={200: serializers.DkimKeySerializer, **KEY_ERRORS})
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        key = _run_push(services.dkim_key_activate, key=self._manageable(self.get_object()))
        return Response(self.get_serializer(key).data)

    @extend_schema(request=None, responses={200: serializers.DkimKeySerializer, **KEY_ERRORS})
    @action(detail=True, methods=["post"])
    def retire(self, request, pk=None):
        key = _run_push(services.dkim_key_retire, key=self._manageable(self.get_object()))
        return Response(self.get_serializer(key).data)

    def _manageable(self, key: DkimKey) -> DkimKey:
        if not DkimKey.objects.manageable_by(self.request.user).filter(pk=key.pk).exists():
            raise exceptions.PermissionDenied("You may read this key but not change it.")
        return key


class ZoneSettingsViewSet(ScopedViewSet):
    queryset = ZoneSettings.objects.all()
    serializer_class = serializers.ZoneSettingsSerializer
    owner_only = False
    select_related = ("domain",)


class PushTargetViewSet(ScopedViewSet):
    queryset = PushTarget.objects.all()
    serializer_class = serializers.PushTargetSerializer
    owner_only = False
    select_related = ("domain",)
