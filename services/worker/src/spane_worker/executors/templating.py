"""Filling in an http node's templates (``spane_core.templates``) when it runs, and keeping its secrets out of
what the node leaves behind: its error messages (which go into the log) and its trace."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

from opentelemetry.trace import Span
from spane_core.errors import NonRetryableError
from spane_core.secrets import Secrets
from spane_core.templates import Placeholder, TemplateError, has_placeholders, parse

from spane_worker.executors.http_redact import shown_url
from spane_worker.executors.transform import search

REDACTED = "***"

# The secret values the running http request carries, for the tracing hook (it runs in the request's task).
_secrets_in_use: ContextVar[tuple[str, ...]] = ContextVar("spane_secrets_in_use", default=())


class Renderer:
    """Renders templates against one node's input; remembers the secret values it wrote."""

    def __init__(self, data: Any, secrets: Secrets) -> None:
        self.data = data
        self.secrets = secrets
        self.used: list[str] = []

    def text(self, template: str) -> str:
        """``template`` filled in, as text."""
        if not has_placeholders(template):
            return template
        return "".join(part if isinstance(part, str) else _as_text(self._fill(part)) for part in self._parse(template))

    def url(self, template: str) -> str:
        """``template`` filled in as a URL, each value percent-encoded for where it lands, so that an input cannot
        steer the request (and the node's credentials) elsewhere: in the path or the query, ``../admin`` or
        ``1?role=admin#`` stays one segment or one value; in the host, ``evil.test/#`` stays part of the host name.
        A value before ``://`` (``{{ base }}/x``) is written as is: the definition lets the input choose the URL."""
        if not has_placeholders(template):
            return template
        written = ""
        for part in self._parse(template):
            written += part if isinstance(part, str) else _url_encoded(_as_text(self._fill(part)), written)
        return written

    def value(self, value: Any) -> Any:
        """``value`` with each string in it filled in; a string that is one placeholder alone takes its value."""
        match value:
            case str() if has_placeholders(value):
                parts = self._parse(value)
                if len(parts) == 1 and isinstance(parts[0], Placeholder):
                    return self._fill(parts[0])
                return self.text(value)
            case dict():
                return {key: self.value(item) for key, item in value.items()}
            case list():
                return [self.value(item) for item in value]
            case _:
                return value

    def _parse(self, template: str) -> tuple[str | Placeholder, ...]:
        try:
            return parse(template)
        except TemplateError as e:  # a definition stored before templates were checked
            raise NonRetryableError(str(e)) from None

    def _fill(self, placeholder: Placeholder) -> Any:
        if placeholder.secret is None:
            return search(placeholder.expression, self.data)
        value = self.secrets.get(placeholder.secret)
        if value:
            # As written, without the blanks around it (as a header sends it), and as a URL carries it once encoded
            # (in a query, or a path).
            written = {value, value.strip(" \t"), quote(value, safe=""), quote_plus(value), quote(value)}
            self.used.extend(v for v in written if v)
        return value

    def redact(self, error: BaseException) -> None:
        """Replace the secrets this renderer wrote with ``***`` in ``error``'s message and its causes'."""
        if self.used:
            for e in _chain(error):
                e.args = tuple(self.hide(a) if isinstance(a, str) else a for a in e.args)

    def hide(self, text: str) -> str:
        return _hide(text, self.used)

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """While the request is sent: its trace hook knows which values to hide."""
        token = _secrets_in_use.set(tuple(self.used))
        try:
            yield
        finally:
            _secrets_in_use.reset(token)


def _hide(text: str, values: Iterable[str]) -> str:
    for value in sorted(values, key=len, reverse=True):  # the longest first: one value may contain another
        text = text.replace(value, REDACTED)
    return text


def _url_encoded(text: str, before: str) -> str:
    """``text`` encoded for the place in a URL that follows ``before`` (the URL as written so far)."""
    scheme_end = before.find("://")
    if scheme_end < 0:
        return text
    if any(mark in before[scheme_end + 3 :] for mark in "/?#"):  # in the path, the query or the fragment
        # "." and ".." as a whole segment would be resolved away (/users/../x is /x): their dots encoded too.
        return quote(text, safe="") if text not in (".", "..") else text.replace(".", "%2E")
    return quote(text, safe=":[]")  # in the authority: a host, a port, an IPv6 address; user info encoded


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


async def hide_secrets_in_span(span: Span, request: Any) -> None:
    """The http client's tracing hook: the URL is recorded as errors and logs show it (no user info, query values
    masked: a key may be written in a definition's query), with any secret the request carries hidden as well."""
    if not span.is_recording():
        return
    url = shown_url(_hide(str(request.url), _secrets_in_use.get()))
    span.set_attribute("url.full", url)
    span.set_attribute("http.url", url)
