"""Request bodies in, JSON out: DRF's BookSerializer rules with DRF's messages.

Every field error is collected into ``{field: [messages]}``. The price never passes
through a float: a JSON number is re-read as ``Decimal`` from the body's own text.
"""

from __future__ import annotations

import datetime as dt
import json as stdjson
import re
from decimal import Decimal, DecimalException, InvalidOperation
from typing import Any, Final

import orjson

from api import errors as e
from api.errors import ParseError, UnsupportedMediaType, ValidationError
from api.memory import room_to_parse
from db.query import BookValues
from db.schema import WRITABLE, parse_date

MAX_LENGTH: Final = 255
MAX_DIGITS: Final = 5
DECIMAL_PLACES: Final = 2
MAX_BULK: Final = 1000
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_NOT_DICT: Final = "Invalid data. Expected a dictionary, but got {kind}."
_EMPTY_LIST: Final = "This list may not be empty."
_MAX_ITEMS: Final = "Ensure this field has no more than {n} elements."


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Out of range float values are not JSON compliant: {name}")


def _stdlib_loads(body: bytes) -> Any:
    return stdjson.loads(body, parse_float=Decimal, parse_constant=_reject_constant)


def _parsed_by_stdlib(body: bytes) -> Any:
    try:
        return _stdlib_loads(body)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"JSON parse error - {_short(exc)}") from None


def _has_float_price(data: Any) -> bool:
    if isinstance(data, dict):
        return isinstance(data.get("price"), float)
    if isinstance(data, list):
        return any(isinstance(i, dict) and isinstance(i.get("price"), float) for i in data)
    return False


def parse_body(content_type: str | None, body: bytes) -> Any:
    """The JSON document of a write's body; ``{}`` for an empty body, as DRF does."""
    if not body:
        return {}
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise UnsupportedMediaType(media)
    if not room_to_parse(len(body)):
        # orjson would crash the worker out of memory; the standard library raises
        # MemoryError (answered 413) or parses in less.
        return _parsed_by_stdlib(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        # orjson refuses some valid JSON (integers past 64 bits): ask the standard
        # library, whose message is also the one DRF gives.
        return _parsed_by_stdlib(body)
    if _has_float_price(data):
        data = _stdlib_loads(body)
    return data


def _short(exc: Exception) -> str:
    text = str(exc) if not isinstance(exc, RecursionError) else "nesting too deep"
    return text[:200]


def _kind(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list"}.get(
        type(value), "NoneType" if value is None else type(value).__name__
    )


def _char(value: Any) -> tuple[str | None, list[str]]:
    if value is None:
        return None, [e.NULL]
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        return None, [e.NOT_STRING]
    text = str(value).strip()
    if not text:
        return None, [e.BLANK]
    errors = []
    if "\x00" in text:
        errors.append("Null characters are not allowed.")
    if _SURROGATE_RE.search(text):
        errors.append("Surrogate characters are not allowed.")
    if len(text) > MAX_LENGTH:
        errors.append(e.MAX_LENGTH.format(n=MAX_LENGTH))
    return (None, errors) if errors else (text, [])


def parse_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON string or number (never a float), else None."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    if len(text) > 1000:
        return None
    try:
        number = Decimal(text)
    except (DecimalException, InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _price(value: Any) -> tuple[int | None, list[str]]:
    if value is None:
        return None, [e.NULL]
    number = parse_decimal(value)
    if number is None:
        return None, [e.INVALID_NUMBER]
    if isinstance(value, Decimal) and number:
        # A JSON number (read exactly, never as a float): DRF reads 12.500 as the float
        # 12.5 and accepts it, so trailing zeros after the point do not count as places.
        number = number.normalize()
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    if exponent >= 0:
        total, places = len(digits) + exponent, 0
    elif len(digits) > -exponent:
        total, places = len(digits), -exponent
    else:
        total = places = -exponent
    whole = total - places
    if total > MAX_DIGITS:
        return None, [e.MAX_DIGITS.format(n=MAX_DIGITS)]
    if places > DECIMAL_PLACES:
        return None, [e.MAX_PLACES.format(n=DECIMAL_PLACES)]
    if whole > MAX_DIGITS - DECIMAL_PLACES:
        return None, [e.MAX_WHOLE.format(n=MAX_DIGITS - DECIMAL_PLACES)]
    if number < 0:
        return None, [e.MIN_VALUE.format(n=0)]
    return int(number.scaleb(DECIMAL_PLACES)), []


def _date(value: Any) -> tuple[dt.date | None, list[str]]:
    if value is None:
        return None, [e.NULL]
    parsed = parse_date(value)
    return (parsed, []) if parsed is not None else (None, [e.BAD_DATE])


# A parser for each writable field (``db.schema.WRITABLE``); the price comes out in cents.
_PARSERS: Final = {"title": _char, "author": _char, "published_date": _date, "price": _price}


def validate_book(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Field -> value for the fields present (the price in cents); raises ValidationError
    with all field errors."""
    if not isinstance(data, dict):
        raise ParseError(f"JSON parse error - Expected an object, got {_kind(data)}")
    values, errors = _collect(data, partial)
    if errors:
        raise ValidationError(errors)
    return values


def _collect(data: dict[str, Any], partial: bool) -> tuple[dict[str, Any], dict[str, list[str]]]:
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in WRITABLE:
        if name not in data:
            if not partial:
                errors[name] = [e.REQUIRED]
            continue
        value, messages = _PARSERS[name](data[name])
        if messages:
            errors[name] = messages
        else:
            values[name] = value
    return values, errors


def to_values(fields: dict[str, Any]) -> BookValues:
    return BookValues(**fields)


def validate_bulk(data: list[Any]) -> list[BookValues]:
    if not data:
        raise ValidationError({"non_field_errors": [_EMPTY_LIST]})
    if len(data) > MAX_BULK:
        raise ValidationError({"non_field_errors": [_MAX_ITEMS.format(n=MAX_BULK)]})
    items: list[BookValues] = []
    errors: dict[str, Any] = {}
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            errors[str(index)] = {"non_field_errors": [_NOT_DICT.format(kind=_kind(item))]}
            continue
        values, item_errors = _collect(item, partial=False)
        if item_errors:
            errors[str(index)] = item_errors
        else:
            items.append(BookValues(**values))
    if errors:
        raise ValidationError(errors)
    return items


def etag(book_id: int, version: int) -> str:
    return f'"{book_id}-{version}"'
