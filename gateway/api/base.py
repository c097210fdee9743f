"""Shared API building blocks: serializers that run the model's own validation, secrets that are
write-only, related fields and viewsets scoped exactly like the UI (``gateway.scoping``)."""

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers, viewsets
from rest_framework.serializers import as_serializer_error

from gateway.fields import EncryptedTextField
from gateway.scoping import acts_as_owner, choices_for


class ScopedChoicesMixin:
    """Each related field offers only the rows the caller may pick, as the forms' choices do
    (``gateway.scoping.choices_for``)."""

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None:
            return fields
        for field in fields.values():
            # A many-to-many field's choices are its child's (Domain.managers).
            relation = getattr(field, "child_relation", field)
            queryset = getattr(relation, "queryset", None)
            if isinstance(relation, serializers.RelatedField) and queryset is not None:
                relation.queryset = choices_for(queryset, request.user)
        return fields


class ModelCleanSerializer(ScopedChoicesMixin, serializers.ModelSerializer):
    """Validates through the model's ``full_clean()`` so that the API refuses exactly what the
    forms refuse; encrypted fields are write-only and reported as ``<name>_set``."""

    def get_fields(self):
        fields = super().get_fields()
        for name, field in fields.items():
            model_field = _model_field(self.Meta.model, name)
            if isinstance(model_field, EncryptedTextField):
                field.write_only = True
                field.required = False
                field.style = {"input_type": "password"}
        return fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for field in instance._meta.concrete_fields:
            if isinstance(field, EncryptedTextField):
                data[f"{field.name}_set"] = bool(getattr(instance, field.name))
        return data

    def validate(self, attrs):
        attrs = super().validate(attrs)
        model = self.Meta.model
        instance = self.instance or model()
        model_attrs = {
            key: value
            for key, value in attrs.items()
            if not _is_many_to_many(model, key) and _model_field(model, key)
        }
        for key, value in model_attrs.items():
            setattr(instance, key, value)
        try:
            instance.full_clean(validate_unique=True)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(as_serializer_error(exc)) from None
        # clean() may normalize values (lowercase, IDNA): keep what it made of them.
        for key in model_attrs:
            attrs[key] = getattr(instance, key)
        return attrs


def _model_field(model, name):
    try:
        return model._meta.get_field(name)
    except FieldDoesNotExist:
        return None


def _is_many_to_many(model, name) -> bool:
    field = _model_field(model, name)
    return bool(field and field.many_to_many)


class ScopedViewSet(viewsets.ModelViewSet):
    """Reads see ``visible_to(user)``; writes need ``manageable_by(user)``; creating a row of an
    owner-only model needs the owner."""

    owner_only = True
    # Writes that whoever may read the row may ask for, the serializer saying which fields.
    self_service_actions: tuple[str, ...] = ()

    select_related: tuple[str, ...] = ()

    def get_queryset(self):
        objects = self.queryset.model.objects
        return objects.visible_to(self.request.user).select_related(*self.select_related)

    def get_object(self):
        obj = super().get_object()
        writing = self.action not in ("retrieve", "list", *self.self_service_actions)
        manageable = type(obj).objects.manageable_by(self.request.user)
        if writing and not manageable.filter(pk=obj.pk).exists():
            raise exceptions.PermissionDenied("You may read this object but not change it.")
        return obj

    def create(self, request, *args, **kwargs):
        if self.owner_only and not acts_as_owner(request.user):
            raise exceptions.PermissionDenied("Only the owner can create this.")
        return super().create(request, *args, **kwargs)
