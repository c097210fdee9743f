from datetime import datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.serializers import as_serializer_error

from gateway import liveness, passwords, services, totp
from gateway.api.base import ModelCleanSerializer, ScopedChoicesMixin
from gateway.models import (
    Alias,
    ApiToken,
    AppPassword,
    Domain,
    Mailbox,
    StatusChange,
    StatusItem,
)
from gateway.scoping import acts_as_owner
from gateway.validators import validate_local_part


class LivenessListSerializer(serializers.ListSerializer):
    """Asks ``gateway.liveness`` once for the whole page instead of once per row."""

    def to_representation(self, data):
        rows = list(data.all() if hasattr(data, "all") else data)
        self.context["liveness"] = liveness.of(self.child.Meta.model, rows)
        return super().to_representation(rows)


class LivenessSerializer(ModelCleanSerializer):
    """Whether the row's last change is on the hosts (read-only)."""

    live = serializers.SerializerMethodField(
        help_text="Whether its last change is on every host Mailgate deploys."
    )
    pending_since = serializers.SerializerMethodField(
        help_text="When the change that is not live yet was made; null once it is live."
    )
    live_state = serializers.SerializerMethodField(
        help_text="pending, waiting (for the owner's approval), live or failed."
    )
    deployment = serializers.SerializerMethodField(
        help_text="The deployment it went out in, waits in or failed in (owner: "
        "/api/deployments/{id}/)."
    )

    class Meta:
        list_serializer_class = LivenessListSerializer

    def _liveness(self, row) -> liveness.Liveness:
        known = self.context.get("liveness") or {}
        if row.pk not in known:
            known = liveness.of(type(row), [row])
            self.context["liveness"] = known
        return known[row.pk]

    def get_live(self, row) -> bool:
        return self._liveness(row).live

    def get_pending_since(self, row) -> datetime | None:
        return self._liveness(row).pending_since

    @extend_schema_field(serializers.ChoiceField(choices=liveness.State.choices))
    def get_live_state(self, row) -> str:
        return self._liveness(row).state

    def get_deployment(self, row) -> int | None:
        return self._liveness(row).deployment_id


LIVENESS_FIELDS = ["live", "pending_since", "live_state", "deployment"]


class DomainSerializer(LivenessSerializer):
    aliases_to = serializers.PrimaryKeyRelatedField(
        queryset=Mailbox.objects.all(),
        write_only=True,
        required=False,
        help_text="On creation: the mailbox that receives abuse@, postmaster@ and the other "
        "standard aliases.",
    )
    first_mailbox = serializers.CharField(
        write_only=True,
        required=False,
        validators=[validate_local_part],
        help_text="On creation: a mailbox to create in the new domain for the standard aliases.",
    )
    # Blank or absent alike: services.domain_create says what a first mailbox's password needs.
    first_mailbox_password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, style={"input_type": "password"}
    )

    class Meta(LivenessSerializer.Meta):
        model = Domain
        fields = [
            "id",
            *Domain.EDITABLE_FIELDS,
            "created_at",
            "aliases_to",
            "first_mailbox",
            "first_mailbox_password",
            *LIVENESS_FIELDS,
        ]

    def validate(self, attrs):
        creation = {
            key: attrs.pop(key, None)
            for key in ("aliases_to", "first_mailbox", "first_mailbox_password")
        }
        attrs = super().validate(attrs)
        self._check_managers(attrs.get("managers"))
        # Both or neither of aliases_to and first_mailbox, or the first mailbox without a good
        # password: services.domain_create refuses them, a 400 in the API's shape
        # (gateway.api.exceptions).
        self.creation = creation
        return attrs

    def _check_managers(self, managers) -> None:
        """Who manages a domain is the owner's to say, never a token limited to domains (it
        could hand its domain to another account)."""
        if managers is None or acts_as_owner(self.context["request"].user):
            return
        if self.instance is None or set(managers) != set(self.instance.managers.all()):
            raise serializers.ValidationError(
                {"managers": "Only the owner, with a token not limited to domains, changes this."}
            )

    def create(self, validated_data):
        return services.domain_create(
            aliases_to=self.creation["aliases_to"],
            first_mailbox=self.creation["first_mailbox"] or "",
            first_mailbox_password=self.creation["first_mailbox_password"] or "",
            **validated_data,
        )


class AddressSerializer(LivenessSerializer):
    """A mailbox or alias, saved through ``services.address_save`` so that losing a race for
    its address is a 400 that says so."""

    def create(self, validated_data):
        row = self.Meta.model(**validated_data)
        services.address_save(row)
        return row

    def update(self, instance, validated_data):
        for name, value in validated_data.items():
            setattr(instance, name, value)
        services.address_save(instance)
        return instance


class MailboxSerializer(AddressSerializer):
    address = serializers.CharField(read_only=True)
    forward_to = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=Mailbox._meta.get_field("forward_to").help_text,
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        validators=[passwords.validate_mailbox_password],
        style={"input_type": "password"},
        help_text="Required on creation; stored only as a {BLF-CRYPT} hash.",
    )

    class Meta(LivenessSerializer.Meta):
        model = Mailbox
        fields = [
            "id",
            *Mailbox.EDITABLE_FIELDS,
            "address",
            "quota_used_bytes",
            "quota_read_at",
            "created_at",
            "password",
            *LIVENESS_FIELDS,
        ]

    def validate(self, attrs):
        password = attrs.pop("password", None)
        services.mailbox_require_password(mailbox=self.instance or Mailbox(), password=password)
        request = self.context["request"]
        if "owner" in attrs and not acts_as_owner(request.user):
            raise serializers.ValidationError({"owner": "Only the owner assigns panel accounts."})
        self._check_self_service(attrs)
        attrs = super().validate(attrs)
        if password:
            attrs["password_hash"] = passwords.hash_password(password)
        return attrs

    def _check_self_service(self, attrs) -> None:
        """The mailbox's own user changes its settings (and password), never what the domain's
        managers decide (its address, quota, whether it is enabled)."""
        mailbox, user = self.instance, self.context["request"].user
        if mailbox is None or Mailbox.objects.manageable_by(user).filter(pk=mailbox.pk).exists():
            return
        refused = {
            name: "Only the domain's managers change this."
            for name, value in attrs.items()
            if name not in Mailbox.SETTINGS_FIELDS and value != getattr(mailbox, name)
        }
        if refused:
            raise serializers.ValidationError(refused)


class AliasSerializer(AddressSerializer):
    address = serializers.CharField(read_only=True)
    destinations = serializers.ListField(child=serializers.CharField(), allow_empty=False)

    class Meta(LivenessSerializer.Meta):
        model = Alias
        fields = ["id", *Alias.EDITABLE_FIELDS, "address", "created_at", *LIVENESS_FIELDS]


class ApiTokenSerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    """A token as listed; on creation the response also carries ``token``, that once."""

    domains = serializers.PrimaryKeyRelatedField(
        many=True, required=False, queryset=Domain.objects.all()
    )
    password = serializers.CharField(
        write_only=True,
        required=False,
        style={"input_type": "password"},
        help_text="Your password, asked again to make a token (or give otp_token).",
    )
    otp_token = serializers.CharField(
        write_only=True,
        required=False,
        help_text="Or a current code from your authenticator, if two-factor is on.",
    )

    class Meta:
        model = ApiToken
        fields = [
            "id",
            *ApiToken.EDITABLE_FIELDS,
            "limited",
            "hint",
            "created_at",
            "last_used_at",
            "password",
            "otp_token",
        ]
        read_only_fields = ["limited", "hint", "created_at", "last_used_at"]

    def validate(self, attrs):
        totp.reauthenticate(
            self.context["request"],
            password=attrs.pop("password", ""),
            otp_token=attrs.pop("otp_token", ""),
        )
        return attrs

    def create(self, validated_data):
        row, token = ApiToken.issue(user=self.context["request"].user, **validated_data)
        row.plaintext = token
        return row

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if getattr(instance, "plaintext", None):
            data["token"] = instance.plaintext
        return data


class AppPasswordSerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    """A device password as listed; on creation the response also carries ``password``, that
    once."""

    mailbox = serializers.PrimaryKeyRelatedField(queryset=Mailbox.objects.all())

    class Meta:
        model = AppPassword
        fields = ["id", "mailbox", "name", "created_at", "last_used_at"]
        validators = []  # AppPassword.issue() cleans the row, with the page's messages

    def create(self, validated_data):
        try:
            row, secret = AppPassword.issue(**validated_data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(as_serializer_error(exc)) from None
        row.plaintext = secret
        return row

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if getattr(instance, "plaintext", None):
            data["password"] = instance.plaintext
        return data


class StatusItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatusItem
        fields = [
            "id",
            "key",
            "section",
            "label",
            "colour",
            "message",
            "fix",
            "domain",
            "element",
            "checked_at",
            "changed_at",
        ]
        read_only_fields = fields


class StatusChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = StatusChange
        fields = ["id", "key", "label", "domain", "before", "after", "message", "at"]
        read_only_fields = fields


class DomainDeletedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    effects = serializers.ListField(
        child=serializers.CharField(), help_text="What the delete did to other rows."
    )
