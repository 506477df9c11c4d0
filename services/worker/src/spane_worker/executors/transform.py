"""``transform``: reshape the input with a JMESPath expression and/or merge constant fields into it.

- ``expression`` (optional): the output is the expression's value on the input;
- ``set`` (optional): an object merged into the result (its keys win). The result must then be an object, or
  ``null`` (taken as ``{}``); merging into a list or a scalar is a non-retryable error rather than a silent drop.

An empty config passes the input through unchanged. Besides JMESPath's built-in functions, expressions (here and
in ``condition``) may use the string functions ``upper(s)``, ``lower(s)``, ``trim(s)`` and ``split(s, sep)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath.parser import ParsedResult
from spane_core.sdk import NodeContext, NonRetryableError


class StringFunctions(jmespath_functions.Functions):
    """String helpers that JMESPath lacks."""

    @jmespath_functions.signature({"types": ["string"]})
    def _func_upper(self, s: str) -> str:
        return s.upper()

    @jmespath_functions.signature({"types": ["string"]})
    def _func_lower(self, s: str) -> str:
        return s.lower()

    @jmespath_functions.signature({"types": ["string"]})
    def _func_trim(self, s: str) -> str:
        return s.strip()

    @jmespath_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_split(self, s: str, sep: str) -> list[str]:
        return s.split(sep) if sep else list(s)


OPTIONS = jmespath.Options(custom_functions=StringFunctions())


@lru_cache(maxsize=1024)
def compile_expression(expression: str) -> ParsedResult:
    """A compiled JMESPath expression; an invalid one is a non-retryable error."""
    try:
        return jmespath.compile(expression)
    except jmespath_errors.JMESPathError as e:
        raise NonRetryableError(f"invalid JMESPath expression {expression!r}: {e}") from e


def search(expression: str, data: Any) -> Any:
    try:
        return compile_expression(expression).search(data, options=OPTIONS)
    except jmespath_errors.JMESPathError as e:  # e.g. a function applied to a value of the wrong type
        raise NonRetryableError(f"JMESPath expression {expression!r} failed: {e}") from e


def apply_transform(config: Mapping[str, Any], data: Any) -> Any:
    expression = config.get("expression")
    result = data if expression is None else search(str(expression), data)
    extra = config.get("set")
    if extra is None:
        return result
    if not isinstance(extra, Mapping):
        raise NonRetryableError(f"transform.set must be an object, got {type(extra).__name__}")
    if result is None:
        return dict(extra)
    if not isinstance(result, Mapping):
        raise NonRetryableError(
            f"transform.set merges into an object, but the result is {type(result).__name__}; "
            "wrap it with an expression such as '{value: @}'"
        )
    return {**result, **extra}


async def transform(ctx: NodeContext) -> Any:
    return apply_transform(ctx.config, ctx.input)
