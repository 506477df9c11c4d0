"""JMESPath, the expression language of definitions (``transform``, ``condition``, mappings, http templates):
whether an expression compiles, and why not, in words a definition's author can act on."""

from __future__ import annotations

import jmespath
from jmespath import exceptions as jmespath_errors


def jmespath_problem(expression: str) -> str | None:
    """Why ``expression`` is not valid JMESPath, or None when it compiles."""
    try:
        jmespath.compile(expression)
    except jmespath_errors.JMESPathError as e:
        match e:
            case jmespath_errors.EmptyExpressionError():
                return "the expression is empty"
            case jmespath_errors.IncompleteExpressionError():
                return "the expression ends too early"
            case jmespath_errors.LexerError():
                return f"{e.message} at character {e.lexer_position + 1}"
            case jmespath_errors.ParseError() if isinstance(e.lex_position, int):
                return f"{e.msg} at character {e.lex_position + 1}"
            case _:
                return str(e).splitlines()[0]
    return None
