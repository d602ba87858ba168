"""Deterministic variant assignment, following GrowthBook's SDK specification.

The same visitor always lands in the same variant of the same experience: the visitor key is
hashed with the experience's seed into a number in [0, 1), and that number falls into one of the
cumulative weight ranges. Following the spec exactly means GrowthBook's published test vectors
(`packages/sdk-js/test/cases.json`, vendored in tests/experiences/data/) pass, and an experience
moved between GrowthBook and Strata keeps every visitor in their variant.

Strings are hashed as JavaScript sees them (UTF-16 code units, `charCodeAt`), so visitor keys
outside the Basic Multilingual Plane bucket exactly as in the JS SDK.
"""

from __future__ import annotations

from collections.abc import Sequence

FNV_OFFSET_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
UINT32 = 0xFFFFFFFF
WEIGHT_SUM_TOLERANCE = 0.01  # weights summing outside 1 ± this fall back to an equal split

BucketRange = tuple[float, float]


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of `text` (what JS `charCodeAt` yields)."""
    value = FNV_OFFSET_BASIS
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        value ^= data[i] | (data[i + 1] << 8)
        value = (value * FNV_PRIME) & UINT32
    return value


def _hash_v1(seed: str, value: str) -> float:
    return (fnv1a32(value + seed) % 1000) / 1000


def _hash_v2(seed: str, value: str) -> float:
    return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000


HASH_VERSIONS = {1: _hash_v1, 2: _hash_v2}


def gb_hash(seed: str, value: str, version: int) -> float | None:
    """The spec's `hash(seed, value, version)`: in [0, 1), or None for an unknown version."""
    hasher = HASH_VERSIONS.get(version)
    return hasher(seed, value) if hasher else None


def equal_weights(num_variations: int) -> list[float]:
    """The spec's `getEqualWeights`: an equal split (empty for zero or fewer variations)."""
    if num_variations <= 0:
        return []
    return [1 / num_variations] * num_variations


def bucket_ranges(
    num_variations: int, coverage: float = 1, weights: Sequence[float] | None = None
) -> list[BucketRange]:
    """The spec's `getBucketRanges`: one [start, end) range per variation.

    Coverage is clamped to [0, 1]; weights that are missing, of the wrong length or whose sum is
    not within 1 ± 0.01 are replaced by an equal split (the spec's fallback, so a malformed
    configuration never sends everyone to one variant). Each variation keeps the start of its full
    weight, so lowering coverage never moves a visitor from one variant to another.
    """
    coverage = min(max(coverage, 0), 1)
    equal = equal_weights(num_variations)
    chosen = list(weights) if weights is not None else equal
    if len(chosen) != num_variations:
        chosen = equal
    total = sum(chosen)
    if total < 1 - WEIGHT_SUM_TOLERANCE or total > 1 + WEIGHT_SUM_TOLERANCE:
        chosen = equal
    ranges: list[BucketRange] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bucket_range: Sequence[float]) -> bool:
    """The spec's `inRange`: start inclusive, end exclusive."""
    return bucket_range[0] <= n < bucket_range[1]


def choose_variation(n: float, ranges: Sequence[Sequence[float]]) -> int:
    """The spec's `chooseVariation`: the index of the range holding `n`, or -1 for none."""
    for index, bucket_range in enumerate(ranges):
        if in_range(n, bucket_range):
            return index
    return -1


def in_namespace(visitor_key: str, namespace: tuple[str, float, float]) -> bool:
    """The spec's `inNamespace`: a v1 hash salted with `__<namespace id>` falls in [start, end)."""
    name, start, end = namespace
    n = gb_hash("__" + name, visitor_key, 1)
    return n is not None and start <= n < end


def assign(
    experience_seed: str,
    visitor_key: str,
    weights: Sequence[float],
    coverage: float = 1,
    hash_version: int = 2,
) -> int | None:
    """The variant index for this visitor, or None when traffic allocation leaves them out.

    `weights` are the variant shares (summing to 1), `coverage` the share of eligible visitors
    who enter the experience.
    """
    n = gb_hash(experience_seed, visitor_key, hash_version)
    if n is None:
        raise ValueError(f"unknown hash version {hash_version!r}")
    index = choose_variation(n, bucket_ranges(len(weights), coverage, weights))
    return None if index < 0 else index
