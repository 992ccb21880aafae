"""One tolerant parser for every date shape Salla sends, returning aware UTC datetimes.

Shapes (see the Salla reference, §2.1 and §5):
- PHP DateTime objects: {"date": "2022-06-26 12:21:45.000000", "timezone_type": 3,
  "timezone": "Asia/Riyadh"}; the date is local wall time in the named zone.
- JS Date strings: "Sun Jun 26 2022 12:21:48 GMT+0300" (optionally "(Arabia Standard Time)").
- ISO 8601: "2024-03-24T10:30:00Z", "2021-10-09T21:00:00.000000Z", with or without an offset.
- Naive "YYYY-MM-DD HH:MM:SS" and "YYYY-MM-DD": Asia/Riyadh wall time (consistent with the docs).
- Unix timestamps in seconds (app.store.authorize `expires`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from data_pipeline.errors import InvalidPayload

RIYADH = ZoneInfo("Asia/Riyadh")
# Asia/Riyadh has been UTC+3 all year since long before EARLIEST (no DST; reference §5), so the
# fixed offset gives the same instants as the zone database, without its per-call cost.
RIYADH_FIXED = timezone(timedelta(hours=3))
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_JS_DATE = re.compile(
    r"^(?:[A-Za-z]{3}\s+)?(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})\s+(?P<year>\d{4})\s+"
    r"(?P<time>\d{1,2}:\d{2}:\d{2})\s+(?:GMT|UTC)(?P<offset>[+-]\d{2}:?\d{2})?(?:\s*\(.*\))?$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_salla_datetime(value: Any, *, field: str) -> datetime:
    """Parse any supported shape; raise InvalidPayload naming the field otherwise."""
    parsed = _parse(value, field)
    if not EARLIEST <= parsed < LATEST:
        raise InvalidPayload(f"{field}: {parsed.isoformat()} is outside the supported range")
    return parsed


def parse_optional_datetime(value: Any, *, field: str) -> datetime | None:
    if value is None or value == "" or (isinstance(value, dict) and not value.get("date")):
        return None
    return parse_salla_datetime(value, field=field)


def _parse(value: Any, field: str) -> datetime:
    if isinstance(value, str):  # the common case first
        stripped = value.strip()
        fast = _fast_js_date(stripped)
        if fast is not None:
            return fast
        return _parse_text(stripped, field)
    if isinstance(value, dict):
        text = value.get("date")
        if not isinstance(text, str):
            raise InvalidPayload(f"{field}: date object without a 'date' string")
        zone = _zone(value.get("timezone"), field)
        if zone is RIYADH_FIXED and len(text) >= 16 and text[10] == " ":
            # What Salla sends ("2022-06-26 12:21:45.000000", Riyadh): one C parse with the
            # offset appended, a third of the general path's cost (two of these per order).
            try:
                return datetime.fromisoformat(text + "+03:00").astimezone(UTC)
            except ValueError:
                pass  # an offset of its own, spaces, a bad date: the general path decides
        return _parse_naive(text, field).replace(tzinfo=zone).astimezone(UTC)
    if isinstance(value, bool):
        raise InvalidPayload(f"{field}: expected a date, got a boolean")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidPayload(f"{field}: {value!r} is not a Unix timestamp") from None
    raise InvalidPayload(f"{field}: expected a date, got {type(value).__name__}")


def _parse_text(text: str, field: str) -> datetime:
    if match := _JS_DATE.match(text):
        return _from_js_date(match, field)
    if "T" in text or text.endswith("Z") or _has_offset(text):
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidPayload(f"{field}: {text[:40]!r} is not a date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=RIYADH)
        return parsed.astimezone(UTC)
    return _parse_naive(text, field).replace(tzinfo=RIYADH_FIXED).astimezone(UTC)


def _fast_js_date(text: str) -> datetime | None:
    """'Sun Jun 26 2022 12:21:48 GMT+0300' rewritten as ISO 8601 for the C parser: a fifth of
    the regex's cost, and it ran for every event (the envelope's `created_at`). Anything else
    (a one-digit day, a zone name in parentheses, an odd offset) takes the general path below."""
    parts = text.split(" ")
    if len(parts) != 6:
        return None
    weekday, month, day, year, clock, zone = parts
    digits = _MONTH_DIGITS.get(month)
    if digits is None or len(day) != 2 or len(zone) != 8 or zone[:3] != "GMT" or zone[6] > "5":
        return None
    if weekday not in _WEEKDAYS:
        return None
    try:  # ASCII digits only, and a clock of exactly hh:mm:ss
        parsed = datetime.fromisoformat(f"{year}-{digits}-{day}T{clock}{zone[3:6]}:{zone[6:]}")
    except ValueError:
        return None
    offset = parsed.utcoffset()
    if len(clock) != 8 or offset is None or abs(offset) > _MAX_OFFSET:
        return None
    return parsed.astimezone(UTC)


_MONTH_DIGITS = {name.title(): f"{number:02d}" for name, number in _MONTHS.items()}
_WEEKDAYS = frozenset(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"])
_MAX_OFFSET = timedelta(hours=14)


def _parse_naive(text: str, field: str) -> datetime:
    text = text.strip()
    if len(text) >= 16 and text[10] == " ":  # "YYYY-MM-DD HH:MM[:SS[.ffffff]]": the C fast path
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise InvalidPayload(f"{field}: {text[:40]!r} is not a date")


def _from_js_date(match: re.Match[str], field: str) -> datetime:
    month = _MONTHS.get(match["mon"].lower())
    if month is None:
        raise InvalidPayload(f"{field}: unknown month {match['mon']!r}")
    try:
        hour, minute, second = (int(part) for part in match["time"].split(":"))
        local = datetime(int(match["year"]), month, int(match["day"]), hour, minute, second)
    except ValueError:
        raise InvalidPayload(f"{field}: {match.string[:40]!r} is not a valid date") from None
    zone = _offset_zone(match["offset"], field) if match["offset"] else UTC
    return local.replace(tzinfo=zone).astimezone(UTC)


def _has_offset(text: str) -> bool:
    return len(text) > 6 and bool(_OFFSET.match(text[-6:]) or _OFFSET.match(text[-5:]))


def _zone(name: Any, field: str) -> timezone | ZoneInfo:
    if name is None or name == "" or name == "Asia/Riyadh":
        return RIYADH_FIXED
    if not isinstance(name, str):
        raise InvalidPayload(f"{field}: timezone must be a string")
    if _OFFSET.match(name):  # PHP timezone_type 1: "+03:00"
        return _offset_zone(name, field)
    return _named_zone(name, field)


@lru_cache(maxsize=64)
def _named_zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPayload(f"{field}: unknown timezone {name[:40]!r}") from None


def _offset_zone(text: str, field: str) -> timezone:
    zone = _cached_offset_zone(text)
    if zone is None:
        raise InvalidPayload(f"{field}: bad UTC offset {text!r}")
    return zone


@lru_cache(maxsize=64)
def _cached_offset_zone(text: str) -> timezone | None:
    match = _OFFSET.match(text)
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-delta if sign == "-" else delta)
