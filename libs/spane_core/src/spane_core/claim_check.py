"""The claim check: a value too large to travel through Redis is stored aside and travels as a reference.

A reference is the object ``{"$spane.payload": "sha256:<64 hex digits>", "size": <bytes>}``: the sha256 of the
value's canonical JSON (keys sorted, no spaces) and that JSON's length. It is content-addressed, so a value passed
along unchanged by ten nodes is one stored payload, and its bytes are immutable, so any process may cache them.
Only an object with exactly these two keys, a well-formed id and an integer size is a reference; the ``$`` key is
reserved, and the API refuses user input that contains one.

These functions are pure; ``spane_core.store.payloads`` stores and fetches the bytes. A payload is stored whole
only from a value as a client or an executor gave it (executors see their input with every reference resolved), so
a payload never holds a reference and one lookup resolves a value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

REF_KEY = "$spane.payload"
SIZE_KEY = "size"
_ID = re.compile(r"sha256:[0-9a-f]{64}")
# A reference's key as it appears in any encoding of a value (JSON or msgpack): its absence rules references out
# with one byte search in C, instead of a walk in Python over a value that may hold thousands of items.
_MARKER = REF_KEY.encode()

_canonical = msgspec.json.Encoder(order="sorted")
_msgpack = msgspec.msgpack.Encoder()


def canonical_json(value: Any) -> bytes:
    """The bytes that are measured against the limit, hashed and stored: the same value always gives the same."""
    return _canonical.encode(value)


def payload_id(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def reference(pid: str, size: int) -> dict[str, Any]:
    return {REF_KEY: pid, SIZE_KEY: size}


def reference_id(value: Any) -> str | None:
    """The payload id when ``value`` is a reference, else None."""
    if type(value) is not dict or len(value) != 2:
        return None
    pid, size = value.get(REF_KEY), value.get(SIZE_KEY)
    if type(pid) is str and type(size) is int and _ID.fullmatch(pid):
        return pid
    return None


def may_hold_references(value: Any, encoded: bytes | None = None) -> bool:
    """False when ``value`` (or ``encoded``, any encoding of it) surely holds no reference."""
    if value is None or isinstance(value, bool | int | float | str):
        return False
    return _MARKER in (encoded if encoded is not None else _msgpack.encode(value))


def references_in(value: Any) -> set[str]:
    """The ids of every reference in ``value``, at any depth."""
    found: set[str] = set()
    if may_hold_references(value):
        _collect(value, found)
    return found


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        pid = reference_id(value)
        if pid is not None:
            found.add(pid)
            return
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def substitute(value: Any, payloads: Mapping[str, bytes], decode: Callable[[bytes], Any]) -> Any:
    """``value`` with each reference replaced by its decoded payload; a reference missing from ``payloads`` stays.

    Every occurrence is decoded on its own, as it would have been inline: an executor that changes one part of its
    input in place must not see another part change with it.
    """
    if not may_hold_references(value):
        return value
    return _substitute(value, payloads, decode)


def _substitute(value: Any, payloads: Mapping[str, bytes], decode: Callable[[bytes], Any]) -> Any:
    if isinstance(value, dict):
        pid = reference_id(value)
        if pid is not None:
            data = payloads.get(pid)
            return value if data is None else decode(data)
        return {k: _substitute(v, payloads, decode) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, payloads, decode) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Offloaded:
    """A value as it may travel (itself, a reference, or an object holding references) and the payloads that must
    be stored before it does, by id."""

    value: Any
    payloads: dict[str, bytes] = field(default_factory=dict)


def offload(value: Any, limit: int) -> Offloaded:
    """``value`` if its canonical JSON fits in ``limit`` bytes, else the claim check for it.

    An object over the limit first has its large members offloaded (by the same rule, recursively) and stays an
    object when that is enough: a join's output ``{parentId: output}`` then travels as the references its parents'
    outputs travelled as, already stored, rather than as one new payload that holds them all again. Only objects
    get this, because that is the shape the engine itself builds from outputs; any other large value, and an
    object still too large without its large members, is stored whole.
    """
    payloads: dict[str, bytes] = {}
    return Offloaded(_offload(value, limit, payloads, 0), payloads)


# Objects nested deeper than this are stored whole: bounds the work (each level encodes its large members again).
MAX_DEPTH = 32


def _offload(value: Any, limit: int, payloads: dict[str, bytes], depth: int) -> Any:
    data = canonical_json(value)
    if len(data) <= limit:
        return value
    if isinstance(value, dict) and depth < MAX_DEPTH:
        found: dict[str, bytes] = {}
        slim = {key: _offload(member, limit, found, depth + 1) for key, member in value.items()}
        if found and len(canonical_json(slim)) <= limit:
            payloads.update(found)
            return slim
    pid = payload_id(data)
    payloads[pid] = data
    return reference(pid, len(data))
