"""Templates in http configs: how ``{{ ... }}`` placeholders are parsed, and the definitions refused for them."""

from __future__ import annotations

from typing import Any

import pytest
from spane_core.errors import InvalidInput
from spane_core.templates import Placeholder, TemplateError, parse, template_problems
from spane_core.validation import BUILTIN_NODE_TYPES, parse_definition


def test_a_template_is_literal_text_and_placeholders_in_order() -> None:
    assert parse("https://api.test/users/{{ user.id }}/orders?x={{x}}") == (
        "https://api.test/users/",
        Placeholder("user.id"),
        "/orders?x=",
        Placeholder("x"),
    )
    assert parse("no placeholders") == ("no placeholders",)


def test_a_secret_placeholder_names_the_secret() -> None:
    assert parse("Bearer {{ $secrets.API_TOKEN }}") == ("Bearer ", Placeholder("$secrets.API_TOKEN", "API_TOKEN"))


def test_an_expression_may_hold_closing_braces_and_a_literal_brace_pair_is_a_raw_string() -> None:
    assert parse("{{ {id: id, n: {m: n}} }}") == (Placeholder("{id: id, n: {m: n}}"),)
    assert parse("{{ '{{' }} name }}") == (Placeholder("'{{'"), " name }}")


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("https://x/{{ id", "a placeholder opened at character 11 is not closed"),
        ("{{ }}", "the placeholder is empty"),
        ("{{ a[ }}", "is not valid JMESPath"),
        ("{{ $secrets }}", "does not name a secret"),
        ("{{ $secrets.bad-name }}", "does not name a secret"),
        ("{{ $secrets.A.B }}", "does not name a secret"),
    ],
)
def test_a_broken_placeholder_says_why(template: str, why: str) -> None:
    with pytest.raises(TemplateError, match=why):
        parse(template)


def test_problems_are_found_in_nested_strings_with_their_paths() -> None:
    body: dict[str, Any] = {"ok": "{{ a }}", "items": [1, "{{ b[ }}"], "deep": {"x": "{{ $secrets.9 }}"}}
    assert [p.path for p in template_problems(body, "body")] == ["body.items[1]", "body.deep.x"]


def http_definition(config: dict[str, Any]) -> dict[str, Any]:
    return {"id": "tpl", "nodes": [{"id": "call", "type": "http", "config": config}]}


def test_a_definition_with_templates_in_url_headers_query_and_body_is_accepted() -> None:
    config = {
        "url": "https://api.test/users/{{ id }}",
        "headers": {"Authorization": "Bearer {{ $secrets.TOKEN }}"},
        "query": {"q": "{{ name }}"},
        "body": {"ids": "{{ ids }}"},
        "method": "POST",
    }
    definition = parse_definition(http_definition(config), BUILTIN_NODE_TYPES)
    assert definition.nodes[0].config["url"] == "https://api.test/users/{{ id }}"  # stored as written
    # The whole URL may come from the input: the worker checks it once filled in.
    parse_definition(http_definition({"url": "{{ endpoint }}"}), BUILTIN_NODE_TYPES)


def test_broken_templates_are_refused_at_registration_with_their_paths() -> None:
    config = {
        "url": "ftp://{{ host }}/x",
        "headers": {"X-Key": "{{ $secrets.k-1 }}"},
        "query": {"q": "{{ a[ }}"},
        "body": ["{{ "],
    }
    with pytest.raises(InvalidInput) as raised:
        parse_definition(http_definition(config), BUILTIN_NODE_TYPES)
    paths = [e.path for e in raised.value.errors]
    assert paths == [
        "nodes[0].config.url",
        'nodes[0].config.headers["X-Key"]',
        "nodes[0].config.query.q",
        "nodes[0].config.body[0]",
    ]
