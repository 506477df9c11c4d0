"""Templates in an ``http`` node's config: ``{{ expression }}`` placeholders filled in when the node runs.

A string of the node's ``url``, ``headers``, ``query`` or ``body`` may hold placeholders:

- ``{{ user.id }}``: a JMESPath expression on the node's input (with the functions ``transform`` has);
- ``{{ $secrets.STRIPE_KEY }}``: a secret of the worker's (``SPANE_SECRET_STRIPE_KEY``, or a file in
  ``SPANE_SECRETS_DIR``), never written into a definition, an event, a log or an error message.

A string that is one placeholder and nothing else takes the value's own JSON type (``"items": "{{ orders }}"`` puts
the list there); placeholders among other text are written into it (a string as is, ``null`` as nothing, anything
else as JSON). ``{{ '{{' }}`` writes ``{{`` itself. An expression may contain ``}}`` (``{{ {id: id} }}``): a
placeholder ends at the first ``}}`` after which what it holds is valid.

Here the templates are parsed (at registration, to refuse a broken one with its path); the worker renders them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from spane_core.errors import FieldError
from spane_core.expressions import jmespath_problem
from spane_core.fields import join_path

OPEN, CLOSE = "{{", "}}"
SECRETS_PREFIX = "$secrets"
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateError(ValueError):
    """A template that cannot be parsed; the message says why, for the definition's author."""


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``{{ ... }}``: an expression on the input, or (``secret`` set) a secret's name."""

    expression: str
    secret: str | None = None


Part = str | Placeholder


def has_placeholders(text: str) -> bool:
    return OPEN in text


@lru_cache(maxsize=4096)
def parse(text: str) -> tuple[Part, ...]:
    """``text`` as literal parts and placeholders; ``TemplateError`` when a placeholder is broken."""
    parts: list[Part] = []
    at = 0
    while (start := text.find(OPEN, at)) >= 0:
        if start > at:
            parts.append(text[at:start])
        placeholder, at = _placeholder(text, start)
        parts.append(placeholder)
    if at < len(text):
        parts.append(text[at:])
    return tuple(parts)


def _placeholder(text: str, start: int) -> tuple[Placeholder, int]:
    inner_start = start + len(OPEN)
    end = text.find(CLOSE, inner_start)
    if end < 0:
        raise TemplateError(f"a placeholder opened at character {start + 1} is not closed with '}}}}'")
    first_problem: str | None = None
    while end >= 0:
        inner = text[inner_start:end].strip()
        if inner.startswith(SECRETS_PREFIX):
            return _secret(inner), end + len(CLOSE)
        problem = jmespath_problem(inner) if inner else "the placeholder is empty"
        if problem is None:
            return Placeholder(inner), end + len(CLOSE)
        first_problem = first_problem or problem
        end = text.find(CLOSE, end + 1)
    shown = text[inner_start : text.find(CLOSE, inner_start)].strip()
    raise TemplateError(f"the placeholder {{{{ {shown} }}}} is not valid JMESPath: {first_problem}")


def _secret(inner: str) -> Placeholder:
    name = inner.removeprefix(SECRETS_PREFIX)
    if not name.startswith(".") or _SECRET_NAME.match(name[1:]) is None:
        raise TemplateError(
            f"{{{{ {inner} }}}} does not name a secret: write {{{{ $secrets.NAME }}}} (NAME: letters, digits and '_')"
        )
    return Placeholder(inner, secret=name[1:])


def template_problems(value: Any, path: str) -> list[FieldError]:
    """A ``FieldError`` for each string in ``value`` (nested in objects and arrays) whose template is broken."""
    problems = []
    for where, text in _strings(value, path):
        if has_placeholders(text):
            try:
                parse(text)
            except TemplateError as e:
                problems.append(FieldError(where, str(e)))
    return problems


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    match value:
        case str():
            yield path, value
        case dict():
            for key, item in value.items():
                yield from _strings(item, join_path(path, str(key)))
        case list():
            for i, item in enumerate(value):
                yield from _strings(item, join_path(path, i))
