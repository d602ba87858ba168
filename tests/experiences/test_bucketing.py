"""Assignment follows GrowthBook's SDK spec: its published test vectors pass, case by case."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from experiences.bucketing import (
    assign,
    bucket_ranges,
    choose_variation,
    equal_weights,
    fnv1a32,
    gb_hash,
    in_namespace,
    in_range,
)

CASES = json.loads((Path(__file__).parent / "data" / "growthbook_cases.json").read_text())


def ids(cases: list[list[Any]]) -> list[str]:
    return [str(case[0]) for case in cases]


@pytest.mark.parametrize("seed,value,version,expected", CASES["hash"],
                         ids=[f"{c[0]!r}-{c[1]!r}-v{c[2]}" for c in CASES["hash"]])
def test_hash_matches_growthbook_vectors(seed: str, value: str, version: int,
                                         expected: float | None) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize("name,args,expected", CASES["getBucketRange"],
                         ids=ids(CASES["getBucketRange"]))
def test_bucket_ranges_match_growthbook_vectors(name: str, args: list[Any],
                                                expected: list[list[float]]) -> None:
    num_variations, coverage, weights = args
    ranges = bucket_ranges(num_variations, coverage, weights)
    assert len(ranges) == len(expected)
    for got, want in zip(ranges, expected, strict=True):
        assert got == pytest.approx(tuple(want), abs=1e-9)


@pytest.mark.parametrize("name,n,ranges,expected", CASES["chooseVariation"],
                         ids=ids(CASES["chooseVariation"]))
def test_choose_variation_matches_growthbook_vectors(name: str, n: float,
                                                     ranges: list[list[float]],
                                                     expected: int) -> None:
    assert choose_variation(n, ranges) == expected


@pytest.mark.parametrize("name,visitor,namespace,expected", CASES["inNamespace"],
                         ids=ids(CASES["inNamespace"]))
def test_in_namespace_matches_growthbook_vectors(name: str, visitor: str, namespace: list[Any],
                                                 expected: bool) -> None:
    assert in_namespace(visitor, tuple(namespace)) is expected


@pytest.mark.parametrize("n,expected", CASES["getEqualWeights"],
                         ids=[str(c[0]) for c in CASES["getEqualWeights"]])
def test_equal_weights_match_growthbook_vectors(n: int, expected: list[float]) -> None:
    assert [round(w, 8) for w in equal_weights(n)] == expected


EXPERIMENT_BUCKETS = CASES["experimentBuckets"]["cases"]


@pytest.mark.parametrize("name,seed,visitor,version,bucket,weights,variant", EXPERIMENT_BUCKETS,
                         ids=ids(EXPERIMENT_BUCKETS))
def test_assign_reproduces_growthbook_experiment_results(
        name: str, seed: str, visitor: str, version: int, bucket: float, weights: list[float],
        variant: int) -> None:
    assert gb_hash(seed, visitor, version) == bucket
    assert assign(seed, visitor, weights, hash_version=version) == variant


def test_fnv1a32_known_values() -> None:
    # The FNV reference values: the offset basis for "", and the published "a" / "foobar" hashes.
    assert fnv1a32("") == 0x811C9DC5
    assert fnv1a32("a") == 0xE40C292C
    assert fnv1a32("foobar") == 0xBF9CF968


def test_fnv1a32_hashes_utf16_code_units_like_javascript() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in JS; é is one code unit 0xE9.
    expected = 0x811C9DC5
    for unit in (0xD83D, 0xDE00, 0xE9):
        expected = ((expected ^ unit) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a32("\U0001F600é") == expected


def test_in_range_is_start_inclusive_end_exclusive() -> None:
    assert in_range(0.25, (0.25, 0.5))
    assert not in_range(0.5, (0.25, 0.5))


def test_assign_leaves_visitors_out_by_coverage_without_moving_the_others() -> None:
    weights = [0.5, 0.5]
    full = {f"v-{i}": assign("exp-seed", f"v-{i}", weights) for i in range(2000)}
    partial = {f"v-{i}": assign("exp-seed", f"v-{i}", weights, coverage=0.3) for i in range(2000)}
    assert all(v is not None for v in full.values())
    left_out = [key for key, v in partial.items() if v is None]
    assert 0.6 < len(left_out) / 2000 < 0.8
    assert all(partial[key] == full[key] for key in partial if partial[key] is not None)


def test_assign_follows_weights_and_seed() -> None:
    counts = Counter(assign("seed-a", f"visitor-{i}", [0.2, 0.3, 0.5]) for i in range(20000))
    assert counts[None] == 0
    assert [round(counts[i] / 20000, 2) for i in range(3)] == pytest.approx([0.2, 0.3, 0.5],
                                                                          abs=0.02)
    other_seed = [assign("seed-b", f"visitor-{i}", [0.5, 0.5]) for i in range(200)]
    same_seed = [assign("seed-a", f"visitor-{i}", [0.5, 0.5]) for i in range(200)]
    assert other_seed != same_seed
    assert same_seed == [assign("seed-a", f"visitor-{i}", [0.5, 0.5]) for i in range(200)]


def test_assign_refuses_an_unknown_hash_version() -> None:
    with pytest.raises(ValueError, match="hash version"):
        assign("seed", "visitor", [0.5, 0.5], hash_version=99)
