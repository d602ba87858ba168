"""profiles.conditions, the rule core: value checks and dates as calculated attributes (no
clock: absolute dates only) and audience rules (a ``now``: relative dates too) see them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from profiles.conditions import (
    OPERATORS,
    ConditionError,
    check_value,
    validate_where,
    value_test,
)
from profiles.schema.merge import stamp

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("value", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_a_date_beyond_the_calendar_in_utc_is_a_bad_where_not_a_crash(value: str) -> None:
    with pytest.raises(ConditionError) as refused:
        validate_where([{"property": "at", "op": ">", "value": value, "type": "date"}])
    assert refused.value.code == "bad_where" and "out of range" in refused.value.message
    assert check_value(OPERATORS[">"], "date", value, NOW) == "date value out of range"


def test_relative_dates_need_a_clock() -> None:
    later = OPERATORS[">"]
    assert check_value(later, "date", "now-30d", NOW) is None
    assert "not allowed here" in (check_value(later, "date", "now-30d", None) or "")
    assert check_value(later, "date", "2026-05-01", None) is None
    recent = value_test("date", ">", "now-1d", NOW)
    assert recent(stamp(NOW)) and not recent(stamp(datetime(2026, 5, 1, tzinfo=UTC)))


def test_a_number_condition_says_what_it_expected() -> None:
    equal = OPERATORS["="]
    assert check_value(equal, "numeric", "10", None) == "expected a number"
    assert check_value(equal, "numeric", float("inf"), None) == "expected a finite number"
    assert check_value(OPERATORS["in"], "numeric", [1, True], NOW) == "expected a number"
