"""Every API error has one shape (documented as ``Error`` by ``gateway.api.schema``):
``{"detail": "<one sentence>", "code": "<machine code>"}``, plus ``errors`` (each invalid field,
or ``non_field_errors``, with its messages) on a validation error, and the extra keys of a
``Conflict`` (``used_by`` on a blocked delete, ``plan`` on a changed deployment plan)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

INVALID = "The input is invalid; nothing was changed."


class Conflict(exceptions.APIException):
    """409, with keys of its own beside ``detail`` and ``code`` that say what is in the way."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"

    def __init__(self, detail=None, code=None, **extra):
        super().__init__(detail, code)
        self.extra = extra


def exception_handler(exc, context):
    """DRF's handler, with a delete blocked by rows that still use the object as a 409 naming
    them and a model validation error raised by a service as a 400, answered in the one shape."""
    if isinstance(exc, ProtectedError):
        used_by = sorted({str(obj) for obj in exc.protected_objects})[:10]
        exc = Conflict("This object is still in use.", "protected", used_by=used_by)
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = _body(exc, response.data)
    return response


def _body(exc, data) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        return {"detail": INVALID, "code": "invalid", "errors": _field_errors(data)}
    body = {"detail": str(data["detail"]), "code": data["detail"].code}
    return {**body, **getattr(exc, "extra", {})}


def _field_errors(data) -> dict:
    """Messages by field, always in a list (or nested by field); messages not about one field
    under ``non_field_errors``."""
    if not isinstance(data, dict):
        data = {api_settings.NON_FIELD_ERRORS_KEY: data}
    return {
        field: messages if isinstance(messages, list | dict) else [messages]
        for field, messages in data.items()
    }


def not_found(request, exception):
    """``handler404``: a path under /api/ that no route matches answers in the API's shape; every
    other path gets Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "No API operation at this path.", "code": "not_found"}, status=404
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    """``handler500``: the API's shape under /api/ (never Django's HTML page), Django's page
    elsewhere. What went wrong is in the server's log, not in the answer."""
    if request.path.startswith("/api/"):
        body = {"detail": "The server failed; nothing is known to have changed.", "code": "error"}
        return JsonResponse(body, status=500)
    return defaults.server_error(request)
