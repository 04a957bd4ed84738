"""Temporal expressions in queries resolved to time windows (memora.memory.when)."""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memora.memory.when import TimeWindow, resolve_time

UTC = dt.UTC
WED = "2024-03-13T15:00"  # a Wednesday
SAT = "2024-03-16T10:00"
SUN = "2024-03-17T10:00"
MON = "2024-03-18T09:00"


def at(iso: str, tz: dt.tzinfo = UTC) -> float:
    """Epoch seconds of an ISO date or date-time in ``tz``."""
    return dt.datetime.fromisoformat(iso).replace(tzinfo=tz).timestamp()


# (query, now, first day of the window, the day after it, matched text)
CASES = [
    ("What did I eat yesterday?", WED, "2024-03-12", "2024-03-13", "yesterday"),
    ("what did I do today", WED, "2024-03-13", "2024-03-14", "today"),
    ("who called last night", WED, "2024-03-12", "2024-03-13", "last night"),
    ("the day before yesterday", WED, "2024-03-11", "2024-03-12", "the day before yesterday"),
    ("What happened 3 days ago?", WED, "2024-03-10", "2024-03-11", "3 days ago"),
    ("What happened three days ago?", WED, "2024-03-10", "2024-03-11", "three days ago"),
    ("twelve days ago", WED, "2024-03-01", "2024-03-02", "twelve days ago"),
    ("Who did I meet last week?", WED, "2024-03-04", "2024-03-11", "last week"),
    ("Who did I meet this week?", WED, "2024-03-11", "2024-03-18", "this week"),
    ("two weeks ago I ran", WED, "2024-02-26", "2024-03-04", "two weeks ago"),
    ("2 weeks ago I ran", WED, "2024-02-26", "2024-03-04", "2 weeks ago"),
    ("a week ago", WED, "2024-03-04", "2024-03-11", "a week ago"),
    ("Where did I go hiking last weekend?", WED, "2024-03-09", "2024-03-11", "last weekend"),
    ("Where did I go hiking last weekend?", SAT, "2024-03-09", "2024-03-11", "last weekend"),
    ("Where did I go hiking last weekend?", SUN, "2024-03-09", "2024-03-11", "last weekend"),
    ("Where did I go hiking last weekend?", MON, "2024-03-16", "2024-03-18", "last weekend"),
    ("this weekend", SUN, "2024-03-16", "2024-03-18", "this weekend"),
    ("What did I cook last Saturday?", WED, "2024-03-09", "2024-03-10", "last Saturday"),
    ("What did I cook last Saturday?", SAT, "2024-03-09", "2024-03-10", "last Saturday"),
    ("What did I do on Monday?", WED, "2024-03-11", "2024-03-12", "on Monday"),
    ("What did I do on Wednesday?", WED, "2024-03-06", "2024-03-07", "on Wednesday"),
    ("this past Friday", WED, "2024-03-08", "2024-03-09", "this past Friday"),
    ("on Friday", "2024-01-02T12:00", "2023-12-29", "2023-12-30", "on Friday"),
    ("What did I read last month?", WED, "2024-02-01", "2024-03-01", "last month"),
    ("last month", "2024-01-02T08:00", "2023-12-01", "2024-01-01", "last month"),
    ("last month", "2024-03-31T12:00", "2024-02-01", "2024-03-01", "last month"),
    ("this month", WED, "2024-03-01", "2024-04-01", "this month"),
    ("3 months ago", WED, "2023-12-01", "2024-01-01", "3 months ago"),
    ("eleven months ago", WED, "2023-04-01", "2023-05-01", "eleven months ago"),
    ("Where did I travel in March?", WED, "2024-03-01", "2024-04-01", "in March"),
    ("Where did I travel in November?", WED, "2023-11-01", "2023-12-01", "in November"),
    ("in December", "2024-12-31T23:00", "2024-12-01", "2025-01-01", "in December"),
    ("in February", "2024-03-30T12:00", "2024-02-01", "2024-03-01", "in February"),
    ("in may", WED, "2023-05-01", "2023-06-01", "in may"),
    ("last March", WED, "2023-03-01", "2023-04-01", "last March"),
    ("last February", "2024-02-29T12:00", "2023-02-01", "2023-03-01", "last February"),
    ("last May", WED, "2023-05-01", "2023-06-01", "last May"),
    ("What did I buy in March 2023?", WED, "2023-03-01", "2023-04-01", "in March 2023"),
    ("March 2022", WED, "2022-03-01", "2022-04-01", "March 2022"),
    ("What did I do on March 3?", WED, "2024-03-03", "2024-03-04", "on March 3"),
    ("on March 20", WED, "2023-03-20", "2023-03-21", "on March 20"),
    ("on March 3, 2023", WED, "2023-03-03", "2023-03-04", "on March 3, 2023"),
    ("on 3 March 2023", WED, "2023-03-03", "2023-03-04", "on 3 March 2023"),
    ("on the 3rd of March", WED, "2024-03-03", "2024-03-04", "on the 3rd of March"),
    ("Jan 5", WED, "2024-01-05", "2024-01-06", "Jan 5"),
    ("sept 3, 2022", WED, "2022-09-03", "2022-09-04", "sept 3, 2022"),
    ("What was on 2024-03-03?", WED, "2024-03-03", "2024-03-04", "on 2024-03-03"),
    ("2024-03-03", WED, "2024-03-03", "2024-03-04", "2024-03-03"),
    ("3/3/2024", WED, "2024-03-03", "2024-03-04", "3/3/2024"),
    ("on February 29, 2024", WED, "2024-02-29", "2024-03-01", "on February 29, 2024"),
    ("on February 29", "2025-06-01T12:00", "2024-02-29", "2024-03-01", "on February 29"),
    ("yesterday", "2024-03-01T00:30", "2024-02-29", "2024-03-01", "yesterday"),
    ("last week", "2024-01-02T12:00", "2023-12-25", "2024-01-01", "last week"),
    ("What did I read last year?", WED, "2023-01-01", "2024-01-01", "last year"),
    ("last year", "2024-01-01T00:10", "2023-01-01", "2024-01-01", "last year"),
    ("this year", WED, "2024-01-01", "2025-01-01", "this year"),
    ("2 years ago", WED, "2022-01-01", "2023-01-01", "2 years ago"),
    ("What did I read in 2023?", WED, "2023-01-01", "2024-01-01", "in 2023"),
    ("a dog 3 days ago and a cat last week", WED, "2024-03-10", "2024-03-11", "3 days ago"),
]


@pytest.mark.parametrize(("query", "now", "first", "after", "text"), CASES)
def test_expression_resolves_to_its_window(
    query: str, now: str, first: str, after: str, text: str
) -> None:
    assert resolve_time(query, at(now)) == TimeWindow(at(first), at(after), text)


NOT_TEMPORAL = [
    "What does my sister do?",
    "Where do I live now?",
    "May I ask what Mark's job is?",
    "I may go to the gym",
    "Will you help me plan a trip?",
    "Sun is hot in the desert",
    "I met Sat and Jan at the bar",
    "Can I get a second opinion?",
    "Did I leave it in May's room?",
    "What did I give to June?",
    "Sunday roast recipes",
    "Mondays are hard",
    "I paid 2023 dollars for the bike",
    "I ran 5 miles 3 times",
    "What is my last name?",
    "When was the last time I saw Mark?",
    "room 12/3 is booked",
    "Which weekday do I like?",
    "",
]


@pytest.mark.parametrize("query", NOT_TEMPORAL)
def test_query_without_a_time_expression_is_none(query: str) -> None:
    assert resolve_time(query, at(WED)) is None


def test_an_impossible_date_is_none_or_gives_way_to_the_next_expression() -> None:
    assert resolve_time("on 29 February 2023", at(WED)) is None
    window = resolve_time("on 29 February 2023 or yesterday?", at(WED))
    assert window == TimeWindow(at("2024-03-12"), at("2024-03-13"), "yesterday")


def test_days_follow_the_time_zone_across_dst() -> None:
    ny = ZoneInfo("America/New_York")  # clocks went forward on 2024-03-10
    window = resolve_time("what did I do yesterday", at("2024-03-11T08:00", ny), tz=ny)
    assert window == TimeWindow(at("2024-03-10", ny), at("2024-03-11", ny), "yesterday")
    assert window.end - window.start == 23 * 3600
    # 23:30 in New York is already the next day in UTC
    late = at("2024-03-13T23:30", ny)
    assert resolve_time("today", late, tz=ny) == TimeWindow(
        at("2024-03-13", ny), at("2024-03-14", ny), "today"
    )
    assert resolve_time("today", late) == TimeWindow(at("2024-03-14"), at("2024-03-15"), "today")


def test_a_moment_before_midnight_is_still_that_day() -> None:
    now = at("2030-07-01") - 5e-7  # datetime.fromtimestamp would round it up to midnight
    assert resolve_time("today", now) == TimeWindow(at("2030-06-30"), at("2030-07-01"), "today")


def test_now_defaults_to_the_current_time() -> None:
    window = resolve_time("what happened today")
    assert window is not None
    assert window.start <= time.time() < window.end


PAST = [
    "yesterday",
    "today",
    "the day before yesterday",
    "last night",
    "4 days ago",
    "one day ago",
    "last week",
    "three weeks ago",
    "last weekend",
    "last Sunday",
    "on Tuesday",
    "last month",
    "5 months ago",
    "last year",
    "2 years ago",
    "last June",
]
CURRENT = ["this week", "this month", "this year", "today", "in {month}"]
NOWS = st.floats(min_value=at("2000-01-01T00:00"), max_value=at("2090-12-31T00:00"))
ZONES = st.sampled_from([UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")])
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def end_of_day(now: float, tz: dt.tzinfo) -> float:
    date = dt.datetime.fromtimestamp(now, tz).date() + dt.timedelta(days=1)
    return dt.datetime.combine(date, dt.time(tzinfo=tz)).timestamp()


@FAST
@given(now=NOWS, tz=ZONES, expr=st.sampled_from(PAST))
def test_past_expressions_end_by_the_end_of_today(now: float, tz: dt.tzinfo, expr: str) -> None:
    window = resolve_time(f"what did I do {expr}?", now, tz=tz)
    assert window is not None
    assert window.text == expr
    assert window.start < window.end <= end_of_day(now, tz)
    assert window.start <= now
    assert resolve_time(f"what did I do {expr}?", now, tz=tz) == window


@FAST
@given(now=NOWS, tz=ZONES, expr=st.sampled_from(CURRENT))
def test_current_periods_hold_now(now: float, tz: dt.tzinfo, expr: str) -> None:
    month = dt.datetime.fromtimestamp(now, tz).strftime("%B")
    window = resolve_time(expr.format(month=month), now, tz=tz)
    assert window is not None
    assert window.start <= now < window.end


@FAST
@given(now=NOWS, month=st.integers(1, 12))
def test_in_month_is_the_latest_such_month_not_after_now(now: float, month: int) -> None:
    name = dt.date(2000, month, 1).strftime("%B")
    window = resolve_time(f"where was I in {name}", now)
    assert window is not None
    start = dt.datetime.fromtimestamp(window.start, UTC)
    assert (start.month, start.day, start.hour) == (month, 1, 0)
    assert window.start <= now < window.start + 366 * 86400


@FAST
@given(query=st.text(max_size=60), now=NOWS)
def test_any_text_is_none_or_a_window_of_its_own_words(query: str, now: float) -> None:
    window = resolve_time(query, now)
    assert window == resolve_time(query, now)
    if window is not None:
        assert window.start < window.end
        assert " ".join(window.text.split()) in " ".join(query.split())
