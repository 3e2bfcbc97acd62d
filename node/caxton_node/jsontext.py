"""Strict JSON for everything that comes from outside (API bodies, agents' messages).

Python's json module accepts what cannot be sent on: lone UTF-16 surrogates
("\\ud800") that no UTF-8 encoder will write, NaN and Infinity that JSON has no words
for, nesting deep enough to exhaust the recursion limit, and integers too long to
convert. Such text is refused here, once, with a message that says what was wrong,
so nothing downstream (storage, responses, other agents) ever meets it.

The common message costs two byte scans; the slower checks run only when those scans
find something that could be a problem.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
# A \uD800-\uDFFF escape, or a surrogate that json.loads's 'surrogatepass' would let through.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89abcdefABCDEF]|\xed[\xa0-\xbf]")


class JsonRejected(ValueError):
    """The text is not JSON this system accepts; the message says why."""


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def loads(raw: bytes | str) -> Any:
    """Parses JSON text, refusing lone surrogates, NaN/Infinity, nesting deeper than
    MAX_DEPTH and integers beyond Python's digit limit."""
    try:
        data = json.loads(raw, parse_constant=_constant)
    except JsonRejected:
        raise
    except UnicodeDecodeError as err:
        raise JsonRejected(f"not UTF-8 text: invalid byte at offset {err.start}") from None
    except json.JSONDecodeError as err:
        raise JsonRejected(f"not valid JSON: {err}") from None
    except RecursionError:
        raise JsonRejected(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as err:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise JsonRejected(f"not acceptable JSON: {err}") from None
    text = raw.encode() if isinstance(raw, str) else raw
    deep = text.count(b"[") + text.count(b"{") > MAX_DEPTH
    if deep or _MAYBE_SURROGATE.search(text):
        check(data)
    return data


def check(value: Any) -> None:
    """Walks a decoded value (without recursion): depth and strings that UTF-8 can carry."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonRejected(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, sub in item.items():
                    _text(key)
                    stack.append((sub, depth + 1))
            else:
                stack.extend((sub, depth + 1) for sub in item)


def _text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise JsonRejected(
            f"text contains a lone UTF-16 surrogate ({text[err.start]!r}) that cannot be sent as UTF-8"
        ) from None
