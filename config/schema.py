"""The OpenAPI schema (drf-spectacular): every operation documents its error answers too.

DRF answers errors in two shapes: ``{"detail": "…"}`` (401 not authenticated, 403 not
allowed, 404 not found, 409 conflict, and a 400 for a body that is not JSON at all), and a
validation error, an object from field name (``non_field_errors`` for the whole object) to
its messages. Clients and schema-driven tools (the schema fuzz in tests/test_api_schema.py)
need to know both, so every operation lists the codes it can answer, with their shape.

Added by a postprocessing hook (drf-spectacular's ``POSTPROCESSING_HOOKS``) rather than per
view: ``@extend_schema(responses=…)`` on a view replaces what a schema class would add.
"""

from typing import Any

ERROR_DETAIL = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person to read."}
    },
    "required": ["detail"],
}

VALIDATION_ERROR = {
    "type": "object",
    "description": "Field name (non_field_errors for the whole object, detail for a body "
    "that could not be parsed) to its messages; nested objects for nested fields.",
    "additionalProperties": {
        "anyOf": [{"type": "array", "items": {}}, {"type": "object"}, {"type": "string"}]
    },
    "example": {"currency": ["Must be a 3-letter ISO currency code, e.g. USD."]},
}

DESCRIPTIONS = {
    "400": ("ValidationError", "Invalid input: the messages per field."),
    "401": ("ErrorDetail", "No API token, or one that is not valid."),
    "403": ("ErrorDetail", "The user's role does not allow this."),
    "404": ("ErrorDetail", "No such object, or page."),
    "409": ("ErrorDetail", "Conflicts with the object's state or its records."),
}

#: The error answers each method can give.
ERROR_CODES = {
    "get": ("400", "401", "403", "404"),
    "post": ("400", "401", "403", "404"),
    "patch": ("400", "401", "403", "404", "409"),
    "put": ("400", "401", "403", "404", "409"),
    "delete": ("401", "403", "404", "409"),
}


PAGE = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 0}]}


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Postprocessing hook: document every operation's error answers and their shapes."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorDetail", ERROR_DETAIL)
    schemas.setdefault("ValidationError", VALIDATION_ERROR)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "page" and parameter.get("in") == "query":
                    # DRF reads ``page=`` as the first page: sent empty counts as absent.
                    parameter["schema"] = PAGE
            responses = operation.setdefault("responses", {})
            for code in ERROR_CODES.get(method, ()):
                component, description = DESCRIPTIONS[code]
                responses.setdefault(
                    code,
                    {
                        "description": description,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{component}"}
                            }
                        },
                    },
                )
    return result
