"""Merge operators and field types.

The properties that matter for identity resolution and rebuilds: a profile's value
depends only on which events it saw, not on their arrival order nor on how they were
split across profiles that later merged. Pure unit tests: no database.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiles.schema.merge import (
    DEFAULT_CAPPED_CAPACITY,
    FIELD_TYPES,
    OPERATORS,
    Count,
    FieldTypeError,
    Max,
    MergeError,
    Min,
    Oldest,
    Sum,
    coerce,
    get_operator,
    operator_fits,
    stamp,
)

BASE = datetime(2026, 1, 1, tzinfo=UTC)
NOW = BASE + timedelta(days=30)
PROPERTY = settings(max_examples=100, deadline=None)

Event = tuple[Any, datetime]


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def fold(op: Any, events: list[Event], capacity: int | None = None) -> Any:
    state = None
    for value, when in events:
        state = op.add(state, value, when, capacity)
    return state


# --------------------------------------------------------------------------- strategies

times = st.integers(min_value=0, max_value=24 * 20).map(lambda h: at(h))  # ties and same days
words = st.sampled_from(["a", "b", "c", "d", "e", "f"])
small_ints = st.integers(min_value=-50, max_value=50)
keys = st.sampled_from(["k1", "k2", "k3", "k4"])

VALUES: dict[str, st.SearchStrategy[Any]] = {
    "latest": st.one_of(words, small_ints),
    "oldest": st.one_of(words, small_ints),
    "sum": small_ints,
    "count": words,
    "min": small_ints,
    "max": small_ints,
    "merge": st.lists(words, max_size=3),
    "capped": st.lists(words, min_size=1, max_size=3),
    "mapsum": st.dictionaries(keys, small_ints, min_size=1, max_size=3),
    "mapmax": st.dictionaries(keys, small_ints, min_size=1, max_size=3),
    "mapmin": st.dictionaries(keys, small_ints, min_size=1, max_size=3),
    "latestmap": st.dictionaries(keys, words, min_size=1, max_size=3),
}
MAP_MERGE_VALUES = st.dictionaries(keys, words, min_size=1, max_size=3)


def events_of(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Event]]:
    return st.lists(st.tuples(values, times), max_size=12)


def same(op: Any, a: Any, b: Any, keep_days: int | None = None) -> None:
    assert a == b
    assert op.value(a, NOW, keep_days) == op.value(b, NOW, keep_days)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("name", sorted(VALUES))
def test_arrival_order_does_not_change_the_state(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        events = data.draw(events_of(VALUES[name]))
        shuffled = data.draw(st.permutations(events))
        keep_days = data.draw(st.sampled_from([None, 5, 15, 40]))
        same(op, fold(op, events), fold(op, shuffled), keep_days)

    check()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_two_profiles_merged_equal_one_profile_that_saw_everything(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        events = data.draw(events_of(VALUES[name]))
        sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
        left = [e for e, side in zip(events, sides, strict=True) if side]
        right = [e for e, side in zip(events, sides, strict=True) if not side]
        whole = fold(op, events)
        same(op, op.merge(fold(op, left), fold(op, right)), whole)
        same(op, op.merge(fold(op, right), fold(op, left)), whole)

    check()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_merge_is_commutative_and_associative(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(a=events_of(VALUES[name]), b=events_of(VALUES[name]), c=events_of(VALUES[name]))
    def check(a: list[Event], b: list[Event], c: list[Event]) -> None:
        sa, sb, sc = fold(op, a), fold(op, b), fold(op, c)
        assert op.merge(sa, sb) == op.merge(sb, sa)
        assert op.merge(op.merge(sa, sb), sc) == op.merge(sa, op.merge(sb, sc))

    check()


@PROPERTY
@given(data=st.data())
def test_map_merge_is_order_independent_too(data: st.DataObject) -> None:
    op = OPERATORS["merge"]
    events = data.draw(events_of(MAP_MERGE_VALUES))
    shuffled = data.draw(st.permutations(events))
    half = data.draw(st.integers(min_value=0, max_value=len(events)))
    same(op, fold(op, events), fold(op, shuffled), 10)
    same(op, op.merge(fold(op, shuffled[:half]), fold(op, shuffled[half:])), fold(op, events))


@pytest.mark.parametrize("name", ["capped", "merge"])
def test_sets_past_capacity_stay_order_independent(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        capacity = data.draw(st.integers(min_value=1, max_value=3))
        events = data.draw(events_of(VALUES["capped"]))
        shuffled = data.draw(st.permutations(events))
        half = data.draw(st.integers(min_value=0, max_value=len(events)))
        whole = fold(op, events, capacity)
        same(op, whole, fold(op, shuffled, capacity), 7)
        split = op.merge(fold(op, shuffled[:half], capacity), fold(op, shuffled[half:], capacity),
                         capacity)
        same(op, split, whole, 7)
        assert whole is None or len(whole["values"]) <= capacity

    check()


@pytest.mark.parametrize("name", ["mapsum", "mapmax", "mapmin"])
def test_which_map_keys_survive_capacity_does_not_depend_on_order(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        capacity = data.draw(st.integers(min_value=1, max_value=3))
        events = data.draw(events_of(VALUES[name]))
        shuffled = data.draw(st.permutations(events))
        a, b = fold(op, events, capacity), fold(op, shuffled, capacity)
        assert (a is None) == (b is None)
        if a is not None:
            assert set(a["keys"]) == set(b["keys"])
            assert {k: c[0] for k, c in a["keys"].items()} == {
                k: c[0] for k, c in b["keys"].items()}

    check()


@pytest.mark.parametrize("make", [lambda: Sum(buckets=3), lambda: Count(buckets=3),
                                  lambda: Min(buckets=2), lambda: Max(buckets=2),
                                  lambda: Oldest(buckets=2)])
def test_day_buckets_that_roll_up_stay_order_independent(make: Callable[[], Any]) -> None:
    op = make()

    @PROPERTY
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        events = data.draw(events_of(small_ints))
        shuffled = data.draw(st.permutations(events))
        half = data.draw(st.integers(min_value=0, max_value=len(events)))
        whole = fold(op, events)
        same(op, whole, fold(op, shuffled))
        same(op, op.merge(fold(op, shuffled[:half]), fold(op, shuffled[half:])), whole)
        if whole is not None:
            assert len(whole["days"]) <= op.buckets
            # with keep_days None the rolled-up rest counts whole: same as unbounded buckets
            assert op.value(whole, NOW) == op.value(fold(type(op)(), events), NOW)

    check()


@pytest.mark.parametrize("name", sorted(VALUES))
def test_states_survive_a_json_round_trip(name: str) -> None:
    op = OPERATORS[name]

    @PROPERTY
    @given(events=events_of(VALUES[name]), more=events_of(VALUES[name]))
    def check(events: list[Event], more: list[Event]) -> None:
        state = fold(op, events)
        stored = json.loads(json.dumps(state))
        assert stored == state
        for value, when in more:
            state = op.add(state, value, when)
            stored = op.add(stored, value, when)
        assert stored == state

    check()


@PROPERTY
@given(events=events_of(VALUES["sum"]))
def test_add_never_modifies_the_state_it_is_given(events: list[Event]) -> None:
    op = OPERATORS["sum"]
    state = fold(op, events)
    frozen = json.dumps(state, sort_keys=True)
    op.add(state, 7, at(3))
    op.merge(state, op.single(1, at(5)))
    assert json.dumps(state, sort_keys=True) == frozen


# --------------------------------------------------------------------------- each operator


def test_latest_follows_event_time_not_arrival() -> None:
    op = OPERATORS["latest"]
    state = op.add(None, "new", at(10))
    state = op.add(state, "late arrival from earlier", at(1))
    assert op.value(state, NOW) == "new"


def test_latest_tie_is_broken_by_value_whatever_the_order() -> None:
    op = OPERATORS["latest"]
    one = op.add(op.add(None, "apple", at(1)), "pear", at(1))
    other = op.add(op.add(None, "pear", at(1)), "apple", at(1))
    assert op.value(one, NOW) == op.value(other, NOW) == "pear"


def test_latest_expires_after_keep_days() -> None:
    op = OPERATORS["latest"]
    state = op.add(None, "x", NOW - timedelta(days=3))
    assert op.value(state, NOW, keep_days=5) == "x"
    assert op.value(state, NOW, keep_days=2) is None
    assert op.value(state, NOW, keep_days=0) == "x"  # 0 keeps forever


def test_oldest_keeps_the_first_touch_and_moves_on_when_it_expires() -> None:
    op = OPERATORS["oldest"]
    state = fold(op, [("second", NOW - timedelta(days=2)), ("first", NOW - timedelta(days=9))])
    assert op.value(state, NOW) == "first"
    assert op.value(state, NOW, keep_days=5) == "second"


def test_sum_and_count_over_a_window() -> None:
    events = [(10, NOW - timedelta(days=40)), (5, NOW - timedelta(days=3)), (1, NOW)]
    assert OPERATORS["sum"].value(fold(OPERATORS["sum"], events), NOW) == 16
    assert OPERATORS["sum"].value(fold(OPERATORS["sum"], events), NOW, keep_days=30) == 6
    assert OPERATORS["count"].value(fold(OPERATORS["count"], events), NOW) == 3
    assert OPERATORS["count"].value(fold(OPERATORS["count"], events), NOW, keep_days=7) == 2


def test_sum_of_floats_is_close_whatever_the_order() -> None:
    op = OPERATORS["sum"]
    events = [(0.1, at(1)), (0.2, at(2)), (0.3, at(30))]
    assert op.value(fold(op, events), NOW) == pytest.approx(0.6)
    assert op.value(fold(op, events[::-1]), NOW) == pytest.approx(0.6)


def test_min_and_max_of_numbers_strings_and_dates() -> None:
    numbers = [(3, at(1)), (-2, at(2)), (7.5, at(3))]
    assert OPERATORS["min"].value(fold(OPERATORS["min"], numbers), NOW) == -2
    assert OPERATORS["max"].value(fold(OPERATORS["max"], numbers), NOW) == 7.5
    texts = [("pear", at(1)), ("apple", at(2))]
    assert OPERATORS["min"].value(fold(OPERATORS["min"], texts), NOW) == "apple"
    dates = [(datetime(2024, 5, 1, tzinfo=UTC), at(1)), (datetime(2023, 1, 1, tzinfo=UTC), at(2))]
    assert OPERATORS["min"].value(fold(OPERATORS["min"], dates), NOW) == (
        "2023-01-01T00:00:00.000000Z")


def test_max_forgets_old_days_with_keep_days() -> None:
    op = OPERATORS["max"]
    state = fold(op, [(100, NOW - timedelta(days=60)), (4, NOW - timedelta(days=1))])
    assert op.value(state, NOW) == 100
    assert op.value(state, NOW, keep_days=30) == 4


def test_merge_is_a_sorted_union_for_sets() -> None:
    op = OPERATORS["merge"]
    state = fold(op, [(["Sailing", "Kayaking"], at(1)), (["Parasailing", "Sailing"], at(2)),
                      ("Surfing", at(3))])
    assert op.value(state, NOW) == ["Kayaking", "Parasailing", "Sailing", "Surfing"]


def test_merge_set_drops_values_not_seen_for_keep_days() -> None:
    op = OPERATORS["merge"]
    state = fold(op, [(["old"], NOW - timedelta(days=20)), (["new"], NOW - timedelta(days=1))])
    assert op.value(state, NOW, keep_days=7) == ["new"]


def test_merge_set_past_capacity_drops_the_least_recently_seen() -> None:
    op = OPERATORS["merge"]
    state = fold(op, [(["a"], at(1)), (["b"], at(2)), (["c"], at(3)), (["a"], at(4))],
                 capacity=2)
    assert op.value(state, NOW) == ["a", "c"]


def test_merge_for_maps_keeps_each_keys_latest_value() -> None:
    op = OPERATORS["merge"]
    state = fold(op, [({"size": "M", "colour": "red"}, at(5)), ({"size": "L"}, at(1))])
    assert op.value(state, NOW) == {"size": "M", "colour": "red"}


def test_merge_refuses_to_mix_sets_and_maps() -> None:
    op = OPERATORS["merge"]
    with pytest.raises(MergeError):
        op.add(op.add(None, ["a"], at(1)), {"k": "v"}, at(2))


def test_capped_keeps_the_newest_values_newest_first() -> None:
    op = OPERATORS["capped"]
    state = fold(op, [("p1", at(1)), ("p2", at(2)), ("p3", at(3)), ("p1", at(4))], capacity=2)
    assert op.value(state, NOW) == ["p1", "p3"]
    default = fold(op, [(f"p{i:02d}", at(i)) for i in range(20)])
    assert len(op.value(default, NOW)) == DEFAULT_CAPPED_CAPACITY


def test_mapsum_counts_per_key() -> None:
    op = OPERATORS["mapsum"]
    state = fold(op, [({"cuisine": 1}, at(1)), ({"cuisine": 1, "travel": 1}, at(2))])
    assert op.value(state, NOW) == {"cuisine": 2, "travel": 1}
    old = op.add(state, {"sport": 1}, NOW - timedelta(days=100))
    assert op.value(old, NOW, keep_days=60) == {"cuisine": 2, "travel": 1}


def test_mapmax_and_mapmin_per_key() -> None:
    events = [({"a": 3, "b": 1}, at(1)), ({"a": 5}, at(2)), ({"b": -4}, at(3))]
    assert OPERATORS["mapmax"].value(fold(OPERATORS["mapmax"], events), NOW) == {"a": 5, "b": 1}
    assert OPERATORS["mapmin"].value(fold(OPERATORS["mapmin"], events), NOW) == {"a": 3, "b": -4}


def test_mapmax_of_dates_gives_the_last_time_per_key() -> None:
    op = OPERATORS["mapmax"]
    first, later = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    state = fold(op, [({"signup": later}, at(2)), ({"signup": first}, at(1))])
    assert op.value(state, NOW) == {"signup": "2025-06-01T00:00:00.000000Z"}


def test_latestmap_replaces_the_whole_map() -> None:
    op = OPERATORS["latestmap"]
    state = fold(op, [({"a": 1, "b": 2}, at(1)), ({"c": 3}, at(2))])
    assert op.value(state, NOW) == {"c": 3}
    with pytest.raises(MergeError):
        op.add(None, "not a map", at(1))


def test_missing_value_leaves_the_state_alone() -> None:
    for op in OPERATORS.values():
        assert op.add(None, None, at(1)) is None
        assert op.value(None, NOW) is None


@pytest.mark.parametrize(("name", "value"), [
    ("sum", "12"), ("sum", True), ("sum", float("inf")), ("mapsum", {"a": "x"}),
    ("mapsum", ["a"]), ("capped", [1]), ("min", ["a"]), ("max", {"a": 1}),
])
def test_values_of_the_wrong_shape_are_refused(name: str, value: Any) -> None:
    with pytest.raises(MergeError):
        OPERATORS[name].add(None, value, at(1))


def test_registry_and_fit_checks() -> None:
    assert set(OPERATORS) == {"latest", "oldest", "sum", "count", "min", "max", "merge",
                              "capped", "mapsum", "mapmax", "mapmin", "latestmap"}
    assert all(op.doc for op in OPERATORS.values())
    assert operator_fits("latest", "string")
    assert operator_fits("merge", "[]string")
    assert operator_fits("mapsum", "map[string]int")
    assert not operator_fits("sum", "string")
    assert not operator_fits("capped", "map[string]int")
    with pytest.raises(MergeError, match="unknown merge operator 'newest'"):
        get_operator("newest")


def test_stamps_are_fixed_width_utc() -> None:
    assert stamp(datetime(2024, 1, 2, 3, 4, 5)) == "2024-01-02T03:04:05.000000Z"
    plus2 = timezone(timedelta(hours=2))
    assert stamp(datetime(2024, 1, 2, 3, 4, 5, tzinfo=plus2)) == "2024-01-02T01:04:05.000000Z"
    assert stamp(datetime(5, 1, 1, tzinfo=UTC)) == "0005-01-01T00:00:00.000000Z"
    with pytest.raises(MergeError):
        stamp("2024-01-01")  # type: ignore[arg-type]


def test_naive_event_times_count_as_utc() -> None:
    op = OPERATORS["latest"]
    aware = op.add(None, "x", datetime(2024, 1, 1, tzinfo=UTC))
    naive = op.add(None, "x", datetime(2024, 1, 1))
    assert aware == naive


# --------------------------------------------------------------------------- field types


@pytest.mark.parametrize(("field_type", "value", "expected"), [
    ("string", "Gold", "Gold"),
    ("string", 42, "42"),
    ("string", 2.5, "2.5"),
    ("string", True, "true"),
    ("int", 7, 7),
    ("int", "42", 42),
    ("int", " -3 ", -3),
    ("int", 4.0, 4),
    ("int", "4.0", 4),
    ("number", 2, 2.0),
    ("number", "2.5", 2.5),
    ("bool", True, True),
    ("bool", "false", False),
    ("bool", "Yes", True),
    ("bool", 0, False),
    ("date", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("date", 1704164645000, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("date", datetime(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
    ("[]string", ["Parasailing", "Sailing", "Parasailing", "", None],
     ["Parasailing", "Sailing"]),
    ("[]string", "single", ["single"]),
    ("[]string", [1, 2], ["1", "2"]),
    ("map[string]int", {"a": 1, "b": "2", "c": None}, {"a": 1, "b": 2}),
    ("map[string]number", {"a": "1.5"}, {"a": 1.5}),
    ("map[string]string", {"a": "x", "b": 3}, {"a": "x", "b": "3"}),
    ("map[string]date", {"signup": "2024-01-02"},
     {"signup": datetime(2024, 1, 2, tzinfo=UTC)}),
    ("string", None, None),
    ("string", "", None),
    ("[]string", [], None),
    ("map[string]int", {}, None),
])
def test_coerce_accepts_values_that_fit(field_type: str, value: Any, expected: Any) -> None:
    assert coerce(field_type, value) == expected


@pytest.mark.parametrize(("field_type", "value", "reason"), [
    ("string", ["a"], "not a list or map"),
    ("string", {"a": 1}, "not a list or map"),
    ("int", 4.5, "expected an integer"),
    ("int", "abc", "expected an integer"),
    ("int", True, "not true/false"),
    ("int", "1_000", "expected an integer"),
    ("number", "NaN", "expected a number"),
    ("number", float("inf"), "finite"),
    ("number", "1e400", "finite"),
    ("bool", "maybe", "expected true or false"),
    ("bool", 2, "expected true or false"),
    ("date", "next tuesday", "expected a date"),
    ("date", True, "expected a date"),
    ("[]string", [["nested"]], "nested list or map"),
    ("[]string", {"a": 1}, "expected a list of text, not a map"),
    ("map[string]int", ["a"], "expected a map"),
    ("map[string]int", {"a": "x"}, "key 'a': expected an integer"),
    ("map[string]date", {"a": "never"}, "key 'a': expected a date"),
    ("map[string]string", {"a": [1]}, "key 'a': expected a single value"),
    ("text", "x", "unknown field type"),
])
def test_coerce_refuses_values_that_do_not_fit(field_type: str, value: Any, reason: str
                                               ) -> None:
    with pytest.raises(FieldTypeError) as info:
        coerce(field_type, value)
    assert reason in str(info.value)
    if field_type in FIELD_TYPES:
        assert f"does not fit field type {field_type}" in str(info.value)


def test_every_field_type_has_an_operator_and_latest_fits_all() -> None:
    for field_type in FIELD_TYPES:
        assert operator_fits("latest", field_type)
        assert operator_fits("oldest", field_type)


def test_coerced_values_fold_into_their_operators() -> None:
    """The pipeline's path: coerce for the field's type, then add to the operator."""
    cases = [("[]string", "merge", ["a", "b"]), ("map[string]date", "mapmax", {"k": "2024-01-01"}),
             ("date", "min", "2024-01-01"), ("int", "sum", "3"), ("map[string]int", "mapsum",
                                                                  {"x": "2"})]
    for field_type, name, raw in cases:
        op = get_operator(name)
        state = op.add(None, coerce(field_type, raw), at(1))
        json.dumps(state)
        assert op.value(state, NOW) is not None
    assert reduce(lambda s, v: OPERATORS["sum"].add(s, coerce("int", v), at(1)),
                  ["1", 2, "3.0"], None) == {"days": {"2026-01-01": 6}, "rest": None,
                                             "rest_until": None}
