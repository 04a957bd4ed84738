"""Temporal expressions in a search query, resolved to a time window.

``resolve_time("Where did I go hiking last weekend?", now)`` finds the expression ("last
weekend") and turns it into ``[start, end)`` in epoch seconds, relative to ``now`` (when the
question is asked), so that search can favour records whose ``occurred_at`` falls inside.

Two steps. A compiled regular expression finds the expression: it knows only the forms below,
so a query without one costs a few microseconds and never reaches the parser, and words that
merely look like dates ("May I ask", "Sun", "Will", "Jan" the name) are not taken. The
expression is then parsed by ``dateparser`` (imported on the first call that needs it: 0.2 to
0.5 s for its import and English data), which does the calendar arithmetic, reads numbers as
digits or words (one..twelve) and prefers dates in the past; its ``period`` gives the window's
granularity. The expression's window is that whole day, week, month or year:

* day: ``yesterday``, ``today``, ``tonight``, ``last night``, ``this morning``, ``the day
  before yesterday``, ``3 days ago``, ``last Saturday``, ``on Monday``, ``on March 3``, ``on
  March 3, 2024``, ``on 3 March 2024``, ``the 3rd of March``, ``2024-03-03``, ``3/3/2024``
  (month first when ambiguous);
* week (Monday 00:00 to Monday 00:00): ``last week``, ``this week``, ``two weeks ago``;
* weekend (Saturday 00:00 to Monday 00:00): ``last weekend`` is the weekend just before now's
  week, so on a Sunday it is the weekend before the current one (that is ``this weekend``);
* month: ``last month``, ``this month``, ``3 months ago``, ``in March`` (the most recent March
  not after now, the current one included), ``last March`` (the latest March before the current
  month), ``in March 2024``, ``March 2024``;
* year: ``last year``, ``this year``, ``2 years ago``, ``in 2023``.

A weekday without ``last``/``on``/``past`` ("Sunday roast") and a bare month or year without
``in``/``during`` ("May I ask", "2023 dollars") are not taken. ``last <weekday>`` and ``on
<weekday>`` asked on that weekday mean a week ago. Month abbreviations count only before a day
or a year ("Jan 5"). The first expression that dateparser can read wins. Vague spans
("recently", "a few days ago", "in the past 3 days", "since May") resolve to None. Windows
are in the calendar of ``tz`` (UTC by default; a :class:`zoneinfo.ZoneInfo` keeps days right
across DST changes).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["TimeWindow", "resolve_time"]

_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_ABBR = r"(?:jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_MONTH = rf"(?:{_MONTHS}|{_ABBR})(?!['’]\w)"
_FULL_MONTH = rf"(?:{_MONTHS})(?!['’]\w)"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]|2[01])\d\d"
_NUM = r"(?:\d{1,3}|an?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_WEEKDAY = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_PREP = r"(?:(?:on|in|during)\s+)?"

# Ordered: at one position the first alternative that matches wins, so longer forms come first.
_EXPR = re.compile(
    rf"""\b(?:
      (?P<weekend>(?:last|this|past)\s+weekend)
    | {_PREP}(?:\d{{4}}-\d{{1,2}}-\d{{1,2}} | \d{{1,2}}/\d{{1,2}}/\d{{4}})
    | {_PREP}(?:the\s+)?{_DAY}\s+(?:of\s+)?{_MONTH}(?:,?\s+{_YEAR})?
    | {_PREP}{_MONTH}\s+(?:{_DAY}(?:,?\s+{_YEAR})?|{_YEAR})
    | (?:in|during)\s+(?:{_FULL_MONTH}|{_YEAR})
    | (?P<last_month>last\s+{_FULL_MONTH})
    | {_NUM}\s+(?:day|week|month|year)s?\s+ago
    | (?:last|this)\s+(?:week|month|year)
    | (?:last|on|(?:this\s+)?past)\s+(?:{_WEEKDAY})
    | the\s+day\s+before\s+yesterday | yesterday | today | tonight | last\s+night
    | this\s+(?:morning|afternoon|evening)
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)
_STRIP = re.compile(rf"^(?:on|in|during|(?:this\s+)?past|last(?=\s+{_FULL_MONTH}))\s+", re.I)
_ALIASES = {"tonight": "today", "last night": "yesterday", "this morning": "today",
            "this afternoon": "today", "this evening": "today"}  # fmt: skip
_SETTINGS = {"PREFER_DATES_FROM": "past", "TIMEZONE": "UTC", "TO_TIMEZONE": "UTC",
             "RETURN_AS_TIMEZONE_AWARE": False}  # fmt: skip
_PARSER: Any = None


@dataclass(frozen=True)
class TimeWindow:
    """A span of time named in a query.

    Attributes:
        start: epoch seconds, inclusive (00:00 of the first day in the window's time zone).
        end: epoch seconds, exclusive (00:00 of the day after the last one).
        text: the expression as it stands in the query, e.g. ``"last weekend"``.
    """

    start: float
    end: float
    text: str


def resolve_time(
    query: str, now: float | None = None, *, tz: dt.tzinfo = dt.UTC
) -> TimeWindow | None:
    """The time window the first readable temporal expression of ``query`` names, or None.

    Args:
        query: the search query, e.g. ``"What did I cook yesterday?"``.
        now: when the question is asked, in epoch seconds (default: the current time).
        tz: the time zone whose calendar days, weeks, months and years the window follows.

    Returns:
        The window ``[start, end)`` with the matched text, or None when the query names no
        time this module understands.
    """
    today: dt.datetime | None = None
    for match in _EXPR.finditer(query):  # almost always none or one
        # whole seconds: fromtimestamp rounds to the microsecond, which can cross midnight
        today = today or dt.datetime.fromtimestamp(
            math.floor(time.time() if now is None else now), tz
        )
        window = _resolve(match, today, tz)
        if window is not None:
            return window
    return None


def _resolve(match: re.Match[str], today: dt.datetime, tz: dt.tzinfo) -> TimeWindow | None:
    """The window of one matched expression, or None when dateparser cannot read it."""
    text = " ".join(match.group(0).split())
    if match.group("weekend"):
        monday = today.date() - dt.timedelta(days=today.weekday())
        last = text.lower().startswith(("last", "past"))
        first = monday + dt.timedelta(days=-2 if last else 5)
        return _window(first, first + dt.timedelta(days=2), text, tz)
    parsed = _parse(_ALIASES.get(text.lower(), text), today.replace(tzinfo=None))
    if parsed is None:
        return None
    day, period = parsed
    if match.group("last_month") and (day.year, day.month) == (today.year, today.month):
        day = day.replace(year=day.year - 1, day=1)
    return _span(day, period, text, tz)


def _parse(text: str, base: dt.datetime) -> tuple[dt.date, str] | None:
    """``text`` read by dateparser relative to ``base`` (naive, in the window's time zone):
    the date and its period ("day", "week", "month" or "year"), or None."""
    global _PARSER
    if _PARSER is None:
        from dateparser.date import DateDataParser  # type: ignore[import-untyped]

        _PARSER = DateDataParser
    parser = _PARSER(languages=["en"], settings={**_SETTINGS, "RELATIVE_BASE": base})
    data = parser.get_date_data(_STRIP.sub("", text))
    found: dt.datetime | None = data.date_obj
    if found is None:
        return None
    period: str = data.period or "day"
    return found.date(), period


def _span(day: dt.date, period: str, text: str, tz: dt.tzinfo) -> TimeWindow:
    """The whole ``period`` (day, week, month or year) that holds ``day``."""
    if period == "week":
        first = day - dt.timedelta(days=day.weekday())
        return _window(first, first + dt.timedelta(days=7), text, tz)
    if period == "month":
        first = day.replace(day=1)
        after = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        return _window(first, after, text, tz)
    if period == "year":
        return _window(dt.date(day.year, 1, 1), dt.date(day.year + 1, 1, 1), text, tz)
    return _window(day, day + dt.timedelta(days=1), text, tz)


def _window(first: dt.date, after: dt.date, text: str, tz: dt.tzinfo) -> TimeWindow:
    """``[first 00:00, after 00:00)`` in ``tz`` as epoch seconds."""
    midnight = dt.time(tzinfo=tz)
    start = dt.datetime.combine(first, midnight).timestamp()
    return TimeWindow(start, dt.datetime.combine(after, midnight).timestamp(), text)
