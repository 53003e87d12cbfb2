"""JSON for ``contiv-cni`` without importing :mod:`json` (which imports ``re`` and ``enum``).

The binary runs once per pod operation; importing :mod:`json` is about a third of its start
(14 ms of 42 here). The C accelerator :mod:`_json` that :mod:`json` itself uses does the work:
its scanner parses exactly what :func:`json.loads` parses (same errors for bad input, as
:class:`ValueError`), and strings are encoded by its ``encode_basestring_ascii``. Tests compare
both directions with :mod:`json` (hypothesis).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Context:
    """What ``_json.make_scanner`` reads from a ``JSONDecoder`` (its default settings)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed context
_WHITESPACE = " \t\n\r"


class JSONDecodeError(ValueError):
    """The input is not one JSON document (the message names the position)."""


def loads(text: str) -> Any:
    """Parse one JSON document, like :func:`json.loads` for ``str`` input."""
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise JSONDecodeError(f"Expecting value: char {exc.value}") from None
    except (ValueError, SystemError):
        # _json reports a malformed document with json.decoder's JSONDecodeError, which it
        # only finds when json is loaded (else a SystemError): bad input is the rare path,
        # so json parses it again for the message.
        import json

        try:
            json.loads(text)
        except ValueError as exc:
            raise JSONDecodeError(str(exc)) from None
        raise
    rest = len(text) - len(text[end:].lstrip(_WHITESPACE))
    if rest != len(text):
        raise JSONDecodeError(f"Extra data: char {rest}")
    return value


def dumps(value: Any) -> str:
    """Serialise dicts, lists, strings, ints, floats, booleans and None (ASCII output)."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(_json.encode_basestring_ascii(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{value!r} is not JSON")
        out.append(float.__repr__(value))
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                raise TypeError(f"JSON object keys must be strings, got {key!r}")
            if i:
                out.append(", ")
            out.append(_json.encode_basestring_ascii(key))
            out.append(": ")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(", ")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
