"""Typed reads of JSON-decoded objects that record one ``FieldError`` per problem instead of raising.

Paths use the form the API reports: ``nodes[2].inputs[0]``, ``nodes[1].config.url``, ``headers["X-Key"]``.
A key whose value is ``null`` counts as absent, as JSON writers often emit ``null`` for an unset field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from typing import Any, TypeGuard

from spane_core.errors import FieldError

WORKFLOW_ID_RULE = "1-100 characters of a-z, 0-9, '-', '_' and '.'"
_WORKFLOW_ID = re.compile(r"[a-z0-9._-]{1,100}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SHOWN_CHARS = 60


def is_workflow_id(value: str) -> bool:
    return _WORKFLOW_ID.match(value) is not None


def join_path(base: str, key: str | int) -> str:
    """``base`` extended by an object key or an array index."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    if _IDENTIFIER.match(key) is None:
        return f"{base}[{json.dumps(key)}]"
    return f"{base}.{key}" if base else key


def nest_path(base: str, relative: str) -> str:
    """A path relative to ``base`` (as a config check reports it) made absolute; ``""`` is ``base`` itself."""
    if not relative:
        return base
    if relative.startswith("[") or not base:
        return base + relative
    return f"{base}.{relative}"


def json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            return "a number"
        case str():
            return "a string"
        case list() | tuple():
            return "an array"
        case dict():
            return "an object"
        case _:
            return type(value).__name__


def show(value: str) -> str:
    """A string quoted for a message, cut short so a huge value does not flood the error list."""
    if len(value) > _SHOWN_CHARS:
        value = value[:_SHOWN_CHARS] + "…"
    return f"'{value}'"


def is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _integer_kind(minimum: int | None, maximum: int | None) -> str:
    match minimum, maximum:
        case int(), int():
            return f"an integer from {minimum} to {maximum}"
        case 0, None:
            return "a non-negative integer"
        case 1, None:
            return "a positive integer"
        case int(), None:
            return f"an integer of at least {minimum}"
        case None, int():
            return f"an integer of at most {maximum}"
        case _:
            return "an integer"


class FieldReader:
    """Reads the fields of one object; each wrong field appends a ``FieldError`` to ``errors``."""

    def __init__(self, obj: Mapping[str, Any], base: str, errors: list[FieldError]) -> None:
        self.obj = obj
        self.base = base
        self.errors = errors

    def path(self, key: str) -> str:
        return join_path(self.base, key)

    def error(self, key: str, message: str) -> None:
        self.errors.append(FieldError(self.path(key), message))

    def present(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def _get(self, key: str, required: bool) -> Any:
        value = self.obj.get(key)
        if value is None and required:
            self.error(key, f"{key} is required")
        return value

    def _wrong(self, key: str, expected: str, value: object) -> None:
        self.error(key, f"{key} must be {expected}, got {json_type(value)}")

    def string(self, key: str, *, required: bool = False, non_empty: bool = False) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self._wrong(key, "a string", value)
            return None
        if non_empty and not value.strip():
            self.error(key, f"{key} must not be empty")
            return None
        return value

    def integer(
        self, key: str, *, required: bool = False, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        expected = _integer_kind(minimum, maximum)
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            value = int(value)  # JSON has one number type: 3.0 is the integer 3 (as JSON Schema says too)
        if not is_int(value):
            self._wrong(key, expected, value)
            return None
        if not -(2**63) <= value < 2**63:  # JSON allows any size; SPANE stores 64-bit integers
            self.error(key, f"{key} must be {expected} that fits in 64 bits, got {value}")
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(key, f"{key} must be {expected}, got {value}")
            return None
        return value

    def number(self, key: str, *, minimum: float | None = None, maximum: float | None = None) -> float | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not is_number(value):
            self._wrong(key, "a number", value)
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else f" from {minimum}"
            high = "" if maximum is None else f" to {maximum}"
            self.error(key, f"{key} must be a number{low}{high}, got {value}")
            return None
        return float(value)

    def boolean(self, key: str) -> bool | None:
        value = self._get(key, False)
        if value is None or isinstance(value, bool):
            return value
        self._wrong(key, "true or false", value)
        return None

    def choice(self, key: str, choices: Collection[str], *, required: bool = False) -> str | None:
        value = self.string(key, required=required)
        if value is None:
            return None
        if value not in choices:
            self.error(key, f"{key} must be one of {', '.join(choices)}, got {show(value)}")
            return None
        return value

    def mapping(self, key: str, *, required: bool = False) -> dict[str, Any] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._wrong(key, "an object", value)
            return None
        return value

    def array(self, key: str, *, required: bool = False) -> list[Any] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            self._wrong(key, "an array", value)
            return None
        return value

    def string_list(self, key: str) -> list[str] | None:
        items = self.array(key)
        if items is None:
            return None
        ok = True
        for index, item in enumerate(items):
            if not isinstance(item, str):
                where = join_path(self.path(key), index)
                self.errors.append(FieldError(where, f"each entry of {key} must be a string, got {json_type(item)}"))
                ok = False
        return items if ok else None

    def string_map(self, key: str) -> dict[str, str] | None:
        """An object whose values are all strings."""
        obj = self.mapping(key)
        if obj is None:
            return None
        ok = True
        for name, value in obj.items():
            if not isinstance(value, str):
                where = join_path(self.path(key), name)
                self.errors.append(FieldError(where, f"each value of {key} must be a string, got {json_type(value)}"))
                ok = False
        return obj if ok else None
