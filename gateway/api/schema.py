"""What drf-spectacular cannot infer for the OpenAPI schema: the body of a refused write. A
validation error (400) names each invalid field with what to fix, on every operation that takes
a body; a delete that rows still depend on is refused with 409 and names them
(``gateway.api.exceptions``)."""

WRITES = ("post", "put", "patch")
MESSAGES = {"anyOf": [{"type": "array", "items": {}}, {"type": "string"}, {"type": "object"}]}
COMPONENTS = {
    "ValidationError": {
        "type": "object",
        "description": "Each invalid field (or non_field_errors, or detail for a body that "
        "could not be read) with the messages that say what to fix.",
        "additionalProperties": MESSAGES,
    },
    "ProtectedError": {
        "type": "object",
        "properties": {
            "detail": {"type": "string"},
            "used_by": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["detail", "used_by"],
    },
}
RESPONSES = {
    "400": ("ValidationError", "The input is invalid; nothing was changed."),
    "409": ("ProtectedError", "Still in use by the objects named; nothing was deleted."),
}


def document_errors(result, generator, request, public):
    """drf-spectacular post-processing hook (``SPECTACULAR_SETTINGS``)."""
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method in WRITES and "requestBody" in operation:
                _add(operation, "400")
            elif method == "delete":
                _add(operation, "409")
    return result


def _add(operation: dict, code: str) -> None:
    component, description = RESPONSES[code]
    operation["responses"].setdefault(
        code,
        {
            "description": description,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}
            },
        },
    )
