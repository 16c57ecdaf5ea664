"""Limit/offset and keyset-cursor pagination with DRF's envelope and absolute links.

A list request without ``offset`` or ``cursor`` gets ``count`` and a ``next`` link carrying
a cursor; with ``offset`` (at most the server's MAX_OFFSET) it links by offset; with
``cursor`` it has no ``count``. A cursor is base64url JSON of the ordering it was made for
(API field names) and the keyset position (the ordering values of a row and its id),
never a disguised offset.

A page with ``count`` says whether it is exact (``X-Count-Kind``); ``Prefer: count=exact``,
``count=estimated`` or ``count=none`` (RFC 7240) chooses, and ``Preference-Applied`` says
what was done. Such a page varies with ``Prefer`` (``Vary``): a cache keeps one answer per
preference.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, unquote_plus, urlencode

import orjson

from api import errors as e
from api.errors import ValidationError
from api.filters import last, parse_filter, parse_ordering
from db.query import Ordering, Page, PageQuery
from db.schema import NAMES, position_value

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
MAX_OFFSET: Final = 100_000  # the default of the MAX_OFFSET setting
DEEP_OFFSET: Final = (
    "Ensure this value is less than or equal to {n}: for deeper pages follow the next"
    " links, whose cursors cost the same at any depth."
)
COUNT_PREFERENCES: Final = ("exact", "estimated", "none")
# The headers of a page with a count; with Preference-Applied when Prefer asked for one.
_COUNT_HEADERS: Final = {
    (exact, applied): {
        "X-Count-Kind": "exact" if exact else "estimated",
        "Vary": "Prefer",
        **({"Preference-Applied": f"count={applied}"} if applied else {}),
    }
    for exact in (True, False)
    for applied in (None, "exact", "estimated")
}
_NO_COUNT_HEADERS: Final = {"Vary": "Prefer", "Preference-Applied": "count=none"}
_REPLACED: Final = frozenset({"cursor", "offset"})
# Unreserved characters, the separators of a query, and well-formed percent escapes.
_PLAIN_QUERY: Final = re.compile(r"(?:[A-Za-z0-9._~+=&,-]|%[0-9A-Fa-f]{2})*")


@dataclass(slots=True)
class Request:
    """A parsed list request: the query for db/ and what the links need."""

    query: PageQuery
    mode: str  # "first", "offset" or "cursor"
    ordering_key: str
    count_preference: str | None = None  # a known ``count=`` preference of Prefer


def _int(args: Mapping[str, Sequence[str]], name: str, lo: int, hi: int) -> int | None:
    raw = last(args, name)
    if raw is None:
        return None
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit() or not digits.isascii():
        raise ValidationError({name: ["A valid integer is required."]})
    value = int(text) if len(digits) < 30 else (hi + 1 if text[0] != "-" else lo - 1)
    if value < lo:
        raise ValidationError({name: [e.MIN_VALUE.format(n=lo)]})
    if value > hi:
        raise ValidationError({name: [f"Ensure this value is less than or equal to {hi}."]})
    return value


def _ordering_key(ordering: Ordering) -> str:
    return ",".join(("-" if desc else "") + name for name, desc in ordering)


def encode_cursor(ordering_key: str, position: Sequence[Any], backwards: bool) -> str:
    doc = {"o": ordering_key, "p": list(position), "b": backwards}
    return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()


def _decode_cursor(raw: str, ordering: Ordering, key: str) -> tuple[tuple[Any, ...], bool]:
    try:
        text = raw.strip()
        doc = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise _invalid_cursor() from None
    if not isinstance(doc, dict) or doc.get("o") != key or not isinstance(doc.get("b"), bool):
        raise _invalid_cursor()
    position = doc.get("p")
    if not isinstance(position, list) or len(position) != len(ordering):
        raise _invalid_cursor()
    values: list[Any] = []
    for (name, _), value in zip(ordering, position, strict=True):
        checked = position_value(name, value)
        if checked is None:
            raise _invalid_cursor()
        values.append(checked)
    return tuple(values), doc["b"]


def _invalid_cursor() -> ValidationError:
    # Made only when raised: building an exception on every cursor page cost more than
    # decoding the cursor.
    return ValidationError({"cursor": [e.INVALID_CURSOR]})


def count_preference(prefer: Sequence[str]) -> str | None:
    """The ``count`` preference of the ``Prefer`` header lines ``prefer`` (RFC 7240):
    preferences separated by commas, each a case-insensitive token with an optional value
    and parameters after ``;``; the first ``count`` counts, an unknown value or
    preference is ignored."""
    for line in prefer:
        for preference in line.split(","):
            name, _, value = preference.partition(";")[0].partition("=")
            if name.strip().lower() == "count":
                value = value.strip().strip('"').lower()
                return value if value in COUNT_PREFERENCES else None
    return None


def parse(
    args: Mapping[str, Sequence[str]],
    *,
    fields: tuple[str, ...] = NAMES,
    max_offset: int = MAX_OFFSET,
    prefer: Sequence[str] | None = None,
) -> Request:
    """The list request ``args`` ask for; ``fields``: the JSON fields of each book, in
    order (``PageQuery.fields``); ``max_offset``: the deepest offset allowed; ``prefer``:
    the request's Prefer header lines, if any."""
    flt = parse_filter(args)
    ordering = parse_ordering(args)
    key = _ordering_key(ordering)
    limit = _int(args, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    offset = _int(args, "offset", 0, 2**53)
    if offset is not None and offset > max_offset:
        raise ValidationError({"offset": [DEEP_OFFSET.format(n=max_offset)]})
    raw_cursor = last(args, "cursor")
    if raw_cursor is not None:
        if offset is not None:
            raise ValidationError({"offset": ["Cannot be combined with cursor."]})
        after, backwards = _decode_cursor(raw_cursor, ordering, key)
        query = PageQuery(
            filter=flt,
            ordering=ordering,
            limit=limit,
            after=after,
            backwards=backwards,
            with_count=False,
            fields=fields,
        )
        return Request(query=query, mode="cursor", ordering_key=key)
    query = PageQuery(filter=flt, ordering=ordering, limit=limit, offset=offset or 0, fields=fields)
    mode = "first" if offset is None else "offset"
    if prefer is None:
        return Request(query=query, mode=mode, ordering_key=key)
    wanted = count_preference(prefer)
    if wanted == "none":
        query.with_count = False
    elif wanted == "exact":
        query.exact_count = True
    return Request(query=query, mode=mode, ordering_key=key, count_preference=wanted)


def headers(req: Request, page: Page) -> Mapping[str, str] | None:
    """The headers of a list page: X-Count-Kind, Vary and Preference-Applied when it is a
    page that counts (or could: ``count=none``); None for a cursor page."""
    if req.mode == "cursor":
        return None
    if page.count is None:
        return _NO_COUNT_HEADERS
    return _COUNT_HEADERS[page.count_exact, req.count_preference]


def _link_prefix(base: str, query_string: str) -> str:
    """A link up to its last parameter: the request's own, less ``cursor`` and ``offset``,
    which go last (a cursor is base64url and an offset digits: neither needs escaping).

    A query string of plain characters and well-formed escapes is kept as the client
    wrote it, parameter by parameter; any other is decoded and encoded again. Decoding
    and encoding every query was a thirtieth of a cursor page's CPU time.
    """
    if _PLAIN_QUERY.fullmatch(query_string):
        kept = [p for p in query_string.split("&") if p and _name(p) not in _REPLACED]
        return f"{base}?{'&'.join(kept)}&" if kept else f"{base}?"
    pairs = [
        (k, v) for k, v in parse_qsl(query_string, keep_blank_values=True) if k not in _REPLACED
    ]
    return f"{base}?{urlencode(pairs)}&" if pairs else f"{base}?"


def _name(part: str) -> str:
    name = part.partition("=")[0]
    return unquote_plus(name) if "%" in name or "+" in name else name


def envelope(
    req: Request, page: Page, results: Any, base_url: str, query_string: str
) -> dict[str, Any]:
    q = req.query
    next_url = previous_url = None
    prefix = _link_prefix(base_url, query_string)
    key = req.ordering_key
    if req.mode == "cursor":
        forward_more = page.has_more if not q.backwards else True
        backward_more = page.has_more if q.backwards else True
        if page.last is not None and forward_more:
            next_url = f"{prefix}cursor={encode_cursor(key, page.last, False)}"
        if page.first is not None and backward_more:
            previous_url = f"{prefix}cursor={encode_cursor(key, page.first, True)}"
        if page.first is None and q.after is not None:
            # Past either end: step back over the position the cursor named.
            link = f"{prefix}cursor={encode_cursor(key, list(q.after), not q.backwards)}"
            if q.backwards:
                next_url = link
            else:
                previous_url = link
        return {"next": next_url, "previous": previous_url, "results": results}
    if req.mode == "first":
        if page.has_more and page.last is not None:
            next_url = f"{prefix}cursor={encode_cursor(key, page.last, False)}"
    else:
        if page.has_more:
            next_url = f"{prefix}offset={q.offset + q.limit}"
        if q.offset > 0:
            previous_url = f"{prefix}offset={max(q.offset - q.limit, 0)}"
    if not q.with_count:  # Prefer: count=none
        return {"next": next_url, "previous": previous_url, "results": results}
    return {"count": page.count, "next": next_url, "previous": previous_url, "results": results}
