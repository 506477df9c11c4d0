"""Config schemas of node types: how a node type says which ``config`` it accepts.

A node type is registered with a ``NodeTypeSpec``, or ``None`` to accept any config object:

- a ``msgspec.Struct`` subclass: the config must convert to it (``msgspec.convert``, strict JSON types;
  msgspec reports the first problem only);
- a ``ConfigCheck``: a function ``(config, ctx) -> Iterable[FieldError]`` that returns every problem, each
  with a path relative to the config (``"url"``, ``"headers.Accept"``, ``"items[0]"``; ``""`` for the config
  itself). ``FieldReader(config, "", errors)`` from ``spane_core.fields`` does the usual typed reads.

The node-level keys ``retryPolicy``, ``circuitBreaker``, ``rateLimit`` and ``timeoutMs`` are checked apart and
left out of the config a check sees, so no schema needs to know them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import msgspec

from spane_core.errors import FieldError
from spane_core.expressions import jmespath_problem
from spane_core.fields import WORKFLOW_ID_RULE, FieldReader, is_workflow_id, join_path, json_type, show
from spane_core.ids import NodeId
from spane_core.templates import OPEN, has_placeholders, template_problems

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# ``duration`` (ms), ``durationSeconds`` and ``durationMinutes`` are the original SPANE's names.
DELAY_KEYS = ("ms", "seconds", "until", "duration", "durationSeconds", "durationMinutes")


@dataclass(frozen=True, slots=True)
class ConfigContext:
    """What a config check may know of the node besides its config: its id and its children in the graph."""

    node_id: NodeId
    children: tuple[NodeId, ...]


ConfigCheck: TypeAlias = Callable[[Mapping[str, Any], ConfigContext], Iterable[FieldError]]
NodeTypeSpec: TypeAlias = type[msgspec.Struct] | ConfigCheck


def check_config(spec: NodeTypeSpec | None, config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    """Every problem ``spec`` finds in ``config``, with paths relative to the config."""
    if spec is None:
        return []
    if not isinstance(spec, type):
        return list(spec(config, ctx))
    return _check_struct(spec, config)


def _check_struct(spec: type[msgspec.Struct], config: Mapping[str, Any]) -> list[FieldError]:
    try:
        msgspec.convert(config, type=spec)
    except msgspec.ValidationError as e:
        # msgspec says "Expected `int`, got `str` - at `$.timeoutMs`"; the part after " - at " is the path.
        message, _, where = str(e).partition(" - at `")
        path = where.removesuffix("`").removeprefix("$").removeprefix(".")
        return [FieldError(path, message)]
    return []


def _expression(reader: FieldReader, key: str, *, required: bool) -> None:
    expression = reader.string(key, required=required)
    if expression is not None and (problem := jmespath_problem(expression)) is not None:
        reader.error(key, f"{key} is not a valid JMESPath expression: {problem}")


def check_transform(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    errors: list[FieldError] = []
    reader = FieldReader(config, "", errors)
    _expression(reader, "expression", required=False)
    reader.mapping("set")
    return errors


def check_condition(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    errors: list[FieldError] = []
    reader = FieldReader(config, "", errors)
    _expression(reader, "expression", required=True)
    children = ", ".join(ctx.children) or "none"
    if ctx.children and config.get("trueBranch") is None and config.get("falseBranch") is None:
        # Naming neither side would skip every child whatever the expression says: surely a mistake.
        reader.error(
            "trueBranch",
            f"a condition must name the children to run: trueBranch and/or falseBranch (its children: {children})",
        )
    for key in ("trueBranch", "falseBranch"):
        match config.get(key):
            case None:
                targets: list[tuple[str, object]] = []
            case str() as single:
                targets = [(key, single)]
            case list() as items:
                targets = [(join_path(key, i), item) for i, item in enumerate(items)]
            case other:
                reader.error(key, f"{key} must be a child node id or a list of them, got {json_type(other)}")
                continue
        for path, target in targets:
            if not isinstance(target, str):
                errors.append(FieldError(path, f"{key} must name nodes by id, got {json_type(target)}"))
            elif target not in ctx.children:
                message = f"{key} names {show(target)}, which is not a child of node {show(ctx.node_id)}"
                errors.append(FieldError(path, f"{message} (its children: {children})"))
    return errors


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_http(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    errors: list[FieldError] = []
    reader = FieldReader(config, "", errors)
    url = reader.string("url", required=True, non_empty=True)
    if url is not None and not _is_http_url_template(url):
        reader.error("url", f"url must be an absolute http:// or https:// URL, got {show(url)}")
    reader.choice("method", HTTP_METHODS)
    headers = reader.string_map("headers")
    for name, value in (headers or {}).items():
        errors.extend(_header_problems(name, value))
    reader.mapping("query")
    for key in ("url", "headers", "query", "body"):  # their strings may hold placeholders (spane_core.templates)
        errors.extend(template_problems(config.get(key), key))
    return errors


# A header's name is an HTTP token (RFC 9110): letters, digits and these marks, no space, no colon.
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")


def _header_problems(name: str, value: str) -> list[FieldError]:
    """A header no request could carry: a name that is not a token, a value (as written, before its placeholders
    are filled in) that is not ASCII or breaks the line."""
    where = join_path("headers", name)
    if HEADER_NAME.match(name) is None:
        message = "a header name is letters, digits and !#$%&'*+-.^_`|~ (no space, no colon, no placeholder)"
        return [FieldError(where, f"{message}, got {show(name)}")]
    literal = value if not has_placeholders(value) else ""
    if not literal.isascii() or "\r" in literal or "\n" in literal:
        return [FieldError(where, "a header value is ASCII text on one line (send other text in the body or query)")]
    return []


def _is_http_url_template(url: str) -> bool:
    """An absolute http(s) URL, or a template of one: its text before the first placeholder starts like one (the
    worker checks the whole URL once it is filled in)."""
    if not has_placeholders(url):
        return _is_http_url(url)
    head = url.split(OPEN, 1)[0].lower()
    return not head or any(scheme.startswith(head) or head.startswith(scheme) for scheme in ("http://", "https://"))


# The longest delay: a hundred years (a longer one is a mistake, and past int64 milliseconds it cannot be stored).
MAX_DELAY_MS = 100 * 365 * 24 * 3_600_000


def check_delay(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    errors: list[FieldError] = []
    given = [key for key in DELAY_KEYS if config.get(key) is not None]
    if len(given) != 1:
        got = f"got {' and '.join(given)}" if given else "got none"
        keys = "ms, seconds or until (or the original SPANE's duration, durationSeconds or durationMinutes)"
        errors.append(FieldError("", f"a delay needs exactly one of {keys}; {got}"))
    reader = FieldReader(config, "", errors)
    for key, unit_ms in (("ms", 1), ("duration", 1)):
        reader.integer(key, minimum=0, maximum=MAX_DELAY_MS // unit_ms)
    for key, unit_ms in (("seconds", 1_000), ("durationSeconds", 1_000), ("durationMinutes", 60_000)):
        reader.number(key, minimum=0, maximum=MAX_DELAY_MS // unit_ms)
    until = reader.string("until")
    if until is not None:
        try:
            datetime.fromisoformat(until)
        except ValueError:
            reader.error("until", f"until must be an ISO 8601 date-time, got {show(until)}")
    return errors


def check_sub_workflow(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    errors: list[FieldError] = []
    reader = FieldReader(config, "", errors)
    workflow_id = reader.string("workflowId", required=True)
    if workflow_id is not None and not is_workflow_id(workflow_id):
        reader.error("workflowId", f"workflowId must be {WORKFLOW_ID_RULE}, got {show(workflow_id)}")
    reader.integer("version", minimum=1)
    for key in ("inputMapping", "outputMapping"):
        for target, source in (reader.string_map(key) or {}).items():
            where = join_path(key, target)
            if not target or any(not part for part in target.split(".")):
                errors.append(FieldError(where, f"{key} targets must be keys or dotted paths, got {show(target)}"))
            if (problem := jmespath_problem(source)) is not None:
                errors.append(FieldError(where, f"{source!r} is not a valid JMESPath expression: {problem}"))
    return errors


# A signal's name, as a wait node's config and the API's path name it (anchored: also an OpenAPI pattern).
SIGNAL_NAME_PATTERN = "^[A-Za-z0-9_.:-]{1,100}$"


def is_signal_name(name: str) -> bool:
    return re.fullmatch(SIGNAL_NAME_PATTERN, name) is not None


def check_wait(config: Mapping[str, Any], ctx: ConfigContext) -> list[FieldError]:
    """A ``wait`` node: the ``signal`` it waits for (its timeout is the node's ``timeoutMs``)."""
    errors: list[FieldError] = []
    reader = FieldReader(config, "", errors)
    signal = reader.string("signal", required=True)
    if signal is not None and not is_signal_name(signal):
        reader.error("signal", f"signal must be 1-100 characters of A-Z a-z 0-9 _ . : -, got {show(signal)}")
    return errors


BUILTIN_NODE_TYPES: dict[str, NodeTypeSpec] = {
    "transform": check_transform,
    "condition": check_condition,
    "http": check_http,
    "delay": check_delay,
    "sub-workflow": check_sub_workflow,
    "wait": check_wait,
}
