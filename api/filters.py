"""List query parameters: filters, ordering and sparse fieldsets, each checked by name.

A bad value raises ValidationError ``{"<parameter>": ["message"]}``: never a 500, never
silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    Context,
    Decimal,
    InvalidOperation,
)
from typing import Final

from api import errors as e
from api.errors import ValidationError
from api.serializers import parse_decimal
from db.query import NO_FILTER, BookFilter, Ordering
from db.schema import NAMES, ORDERABLE, parse_date

# Past any price: a bound beyond it means the same as the bound itself (db/ clamps it to
# what its columns hold).
_FAR: Final = 10**22
_NULL_CHAR: Final = "Null characters are not allowed."
_CENT: Final = Decimal("0.01")
# Wide enough that quantizing any parsed bound below 1e20 is one exact rounding step.
_EXACT: Final = Context(prec=60, Emin=MIN_EMIN, Emax=MAX_EMAX, traps=[InvalidOperation])


def last(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The last value of a query parameter, as Django's QueryDict.get gives it."""
    # Sanic's RequestParameters.get gives the first value (a str), not the list.
    values = args.getlist(name) if hasattr(args, "getlist") else args.get(name)
    return values[-1] if values else None


def _text(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    value = last(args, name)
    if value is not None and "\x00" in value:
        raise ValidationError({name: [_NULL_CHAR]})
    return value


def _cents(args: Mapping[str, Sequence[str]], name: str, rounding: str) -> int | None:
    """A price bound in whole cents, rounded inwards (``rounding``). Exact for any finite
    decimal: no step runs in the default context, whose precision and exponent limits would
    round the bound or raise (a 500) on ``1e99999999999``.
    """
    raw = last(args, name)
    if raw is None:
        return None
    number = parse_decimal(raw)
    if number is None:
        raise ValidationError({name: [e.INVALID_NUMBER]})
    if number.is_zero():
        return 0
    if number.adjusted() >= 20:  # far past any price
        return -_FAR if number.is_signed() else _FAR
    bound = number.quantize(_CENT, rounding=rounding, context=_EXACT)
    return int(bound.scaleb(2, context=_EXACT))


def _date(args: Mapping[str, Sequence[str]], name: str):  # type: ignore[no-untyped-def]
    raw = last(args, name)
    if raw is None:
        return None
    parsed = parse_date(raw)
    if parsed is None:
        raise ValidationError({name: [e.BAD_DATE]})
    return parsed


FILTERS: Final = frozenset(
    {"author", "search", "published_after", "published_before", "min_price", "max_price"}
)


def parse_filter(args: Mapping[str, Sequence[str]]) -> BookFilter:
    if FILTERS.isdisjoint(args.keys()):
        return NO_FILTER
    search = _text(args, "search")
    return BookFilter(
        author=_text(args, "author"),
        search=search.strip() or None if search is not None else None,
        published_after=_date(args, "published_after"),
        published_before=_date(args, "published_before"),
        min_cents=_cents(args, "min_price", ROUND_CEILING),
        max_cents=_cents(args, "max_price", ROUND_FLOOR),
    )


def parse_ordering(args: Mapping[str, Sequence[str]]) -> Ordering:
    """(field, descending) pairs ending with the id tie-break, so every order is total."""
    raw = last(args, "ordering")
    pairs: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for part in (raw or "").split(","):
        name = part.strip()
        if not name:
            continue
        desc = name.startswith("-")
        field = name[1:] if desc else name
        if field not in ORDERABLE:
            raise ValidationError(
                {"ordering": [f"Unknown field {field!r}. Choose from {', '.join(ORDERABLE)}."]}
            )
        if field in seen or "id" in seen:  # id is unique: nothing after it changes the order
            continue
        seen.add(field)
        pairs.append((field, desc))
    if "id" not in seen:
        # In the direction of the last field: a descending order is then the reverse of an
        # ascending one, and an index of (field, id) read backwards serves it as it is.
        pairs.append(("id", pairs[-1][1] if pairs else False))
    return tuple(pairs)


def parse_fields(args: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The fields each book of a list shows, in ``NAMES`` order (all of them by default)."""
    raw = last(args, "fields")
    if raw is None:
        return NAMES
    wanted = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = sorted(wanted - set(NAMES))
    if unknown:
        raise ValidationError(
            {"fields": [f"Unknown field(s): {', '.join(unknown)}. Choose from {', '.join(NAMES)}."]}
        )
    if not wanted:
        return NAMES
    return tuple(f for f in NAMES if f in wanted)
