"""The OpenAPI document describes every answer: each 2xx response of every route has a
schema (a JSON model, or the media type of a file), so a client knows what it gets."""

from __future__ import annotations

from typing import Any

from services.app import create_app


def _described(schema: dict[str, Any] | None) -> bool:
    """A named model, a list of them, a file, an object whose fields are listed, or a map
    whose values are described (``dict[str, int]``); a bare ``dict[str, Any]`` says
    nothing."""
    if not schema:
        return False
    if "$ref" in schema or schema.get("format") == "binary":
        return True
    if "anyOf" in schema:
        return all(_described(s) or s.get("type") == "null" for s in schema["anyOf"])
    if schema.get("type") == "array":
        return _described(schema.get("items"))
    if schema.get("type") == "object":
        values = schema.get("additionalProperties")
        return bool(schema.get("properties")) or (isinstance(values, dict) and _described(values))
    return schema.get("type") in ("string", "integer", "number", "boolean")


def _undescribed(spec: dict[str, Any]) -> list[str]:
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                if not status.startswith("2") or status == "204":
                    continue
                content = response.get("content") or {}
                schemas = [media.get("schema") for media in content.values()]
                if not schemas or not all(_described(s) for s in schemas):
                    missing.append(f"{method.upper()} {path} {status}")
    return missing


def test_every_2xx_response_has_a_schema() -> None:
    spec = create_app().openapi()
    assert len(spec["paths"]) > 50
    assert _undescribed(spec) == []


def test_an_answer_without_schema_is_noticed() -> None:
    bare = {"type": "object", "additionalProperties": True}
    responses = {"200": {"content": {"application/json": {"schema": bare}}}}
    spec = {"paths": {"/x": {"get": {"responses": responses}}}}
    assert _undescribed(spec) == ["GET /x 200"]
