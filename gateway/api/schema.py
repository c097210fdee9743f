"""What drf-spectacular cannot infer for the OpenAPI schema: the errors. Every error response has
the one body of ``gateway.api.exceptions``, the ``Error`` component. Each operation lists what it
can return: 401 and 403 everywhere, 404 where the path names an object, 400 where it takes a body
or query parameters, 409 on a delete (rows still use the object). An operation declares any
other error itself (``@extend_schema(responses={200: ..., **errors(HostUnreachable)})``) and gets
the same body."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework.settings import api_settings

ERROR = {
    "type": "object",
    "description": "An error: one sentence, a machine code, and per error kind its details.",
    "properties": {
        "detail": {"type": "string", "description": "One sentence that says what went wrong."},
        "code": {
            "type": "string",
            "description": "A machine code: invalid, parse_error, not_authenticated, "
            "authentication_failed, permission_denied, not_found, protected, plan_changed, "
            "not_renderable, unprocessable, throttled, host_unreachable, push_failed, ...",
        },
        "errors": {
            "type": "object",
            "description": "On a validation error (400, code invalid): each invalid field, or "
            f"{api_settings.NON_FIELD_ERRORS_KEY} for what is not about one field, with the "
            "messages that say what to fix.",
            "additionalProperties": {"anyOf": [{"type": "array", "items": {}}, {"type": "object"}]},
        },
        "used_by": {
            "type": "array",
            "items": {"type": "string"},
            "description": "On a refused delete (409, code protected): what still uses it.",
        },
        "plan": {
            "type": "object",
            "description": "On a deployment whose plan changed (409, code plan_changed): the plan "
            "now, as the host's plan/ returns it; review it and deploy it with its digest.",
        },
    },
    "required": ["detail", "code"],
}
REF = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
DESCRIPTIONS = {
    "400": "The input is invalid; nothing was changed.",
    "401": "No valid token or session.",
    "403": "Not allowed: not the owner, not a manager of the domain, or a token limited so.",
    "404": "No such object, or one you may not see.",
    "409": "Still in use by the objects named; nothing was deleted.",
}


def errors(*exceptions) -> dict:
    """The responses of the API exceptions an operation may raise, for ``extend_schema``."""
    return {
        exc.status_code: OpenApiResponse(description=str(exc.default_detail)) for exc in exceptions
    }


def document_errors(result, generator, request, public):
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS``)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for code in _errors(path, method, operation):
                responses.setdefault(code, {"description": DESCRIPTIONS[code]})
            for code, response in responses.items():
                if int(code) >= 400:
                    response["content"] = REF
    return result


def _errors(path: str, method: str, operation: dict) -> list[str]:
    codes = ["401", "403"]
    queried = any(parameter["in"] == "query" for parameter in operation.get("parameters", []))
    if "requestBody" in operation or queried:
        codes.append("400")
    if "{" in path:
        codes.append("404")
    if method == "delete":
        codes.append("409")
    return codes
