from rest_framework import serializers

from gateway.api.base import ModelCleanSerializer, ScopedChoicesMixin
from gateway.models import Domain
from zones import services
from zones.models import CheckResult, CheckRun, DkimKey, PushTarget, ZoneSettings, validate_selector


class CheckResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckResult
        fields = [
            "kind",
            "name",
            "rtype",
            "purpose",
            "status",
            "expected",
            "found",
            "message",
            "fix",
        ]


class CheckRunSerializer(serializers.ModelSerializer):
    domain = serializers.SlugRelatedField(slug_field="name", read_only=True)
    ok = serializers.BooleanField(read_only=True)

    class Meta:
        model = CheckRun
        fields = [
            "id",
            "domain",
            "trigger",
            "resolver",
            "started_at",
            "finished_at",
            "ok",
            "passed",
            "failed",
            "warnings",
            "dnssec",
        ]


class CheckRunDetailSerializer(CheckRunSerializer):
    results = CheckResultSerializer(many=True, read_only=True)

    class Meta(CheckRunSerializer.Meta):
        fields = [*CheckRunSerializer.Meta.fields, "results"]


class RecordSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField(source="rtype")
    ttl = serializers.IntegerField()
    values = serializers.ListField(child=serializers.CharField())
    purpose = serializers.CharField()
    zone = serializers.SerializerMethodField(help_text="The managed zone it lives in, if any.")
    reverse = serializers.BooleanField(help_text="A PTR, set at the address's provider.")

    def get_zone(self, record) -> str | None:
        return self.context["zone_of"](record.name)


class DnsZoneSerializer(serializers.ModelSerializer):
    latest_check = serializers.SerializerMethodField()

    class Meta:
        model = Domain
        fields = ["id", "name", "latest_check"]

    def get_latest_check(self, domain) -> dict | None:
        run = self.context.get("latest", {}).get(domain.pk)
        return CheckRunSerializer(run).data if run else None


class ZoneChangeSerializer(serializers.Serializer):
    action = serializers.CharField()
    name = serializers.CharField()
    type = serializers.CharField(source="rtype")
    ttl = serializers.IntegerField()
    removes = serializers.ListField(child=serializers.CharField())
    writes = serializers.ListField(child=serializers.CharField(), source="new")
    purpose = serializers.CharField()


class ZonePlanSerializer(serializers.Serializer):
    zone = serializers.CharField()
    digest = serializers.CharField(help_text="Pass it to push/ to apply exactly this plan.")
    changes = ZoneChangeSerializer(many=True)
    unchanged = serializers.IntegerField()
    manual = RecordSerializer(many=True, help_text="Records to add by hand.")


class PushSerializer(serializers.Serializer):
    digest = serializers.CharField(required=False, allow_blank=True)


class DkimKeySerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    selector = serializers.CharField(
        required=False, allow_blank=True, validators=[validate_selector], max_length=63
    )
    record = serializers.SerializerMethodField()

    class Meta:
        model = DkimKey
        fields = [
            "id",
            "domain",
            "selector",
            "state",
            "active",
            "retired_at",
            "created_at",
            "record",
        ]
        read_only_fields = ["state", "active", "retired_at", "created_at"]
        validators = []  # the selector may be left out; dkim_key_generate checks uniqueness

    def get_record(self, key) -> str:
        from zones.records import dkim_text

        return f"{key.record_name}. IN TXT {dkim_text(key.public_key)}"


class ZoneSettingsSerializer(ModelCleanSerializer):
    class Meta:
        model = ZoneSettings
        fields = ["id", "domain", *ZoneSettings.EDITABLE_FIELDS]


class PushTargetSerializer(ModelCleanSerializer):
    class Meta:
        model = PushTarget
        fields = ["id", "domain", *PushTarget.EDITABLE_FIELDS, "last_pushed_at"]
        read_only_fields = ["last_pushed_at"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        services.push_target_check_change(
            target=self.instance or PushTarget(), values=attrs, user=self.context["request"].user
        )
        return attrs
