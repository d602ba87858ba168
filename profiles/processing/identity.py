"""Identity resolution: which profile each event belongs to (DESIGN.md, "Identity resolution,
precisely").

An event's identifiers are the values its mappings give identifier fields. They are taken
strongest first: by rank (1 first), then field name, then value, so ties always break the same
way. Then:

1. The anchor is the profile owning the first identifier; if no one owns it, a new profile
   holding it.
2. Each further identifier: owned by the anchor, nothing to do; owned by another profile q, q
   and the anchor merge unless the merged profile would hold two values of a field with
   capacity 1, or more than T identifiers (the account's ``max_identifiers_per_profile``) of
   the fields compaction never drops (every field but the weakest-ranked one): then it is a
   conflict, nothing merges, the identifier stays with q and both profiles count it. Owned by
   no one: it attaches to the anchor, unless the anchor already holds a value of that field
   and the field's capacity is 1 (a conflict counted on the anchor).
   After attaching or merging, a field holding more values than its capacity drops its
   oldest-seen values, and a profile holding more than T identifiers drops the oldest-seen
   values of the weakest-ranked field (compaction, recorded): a merge compacts as attaching
   does, so an anonymous visitor with a full set of cookies can still sign in. The
   weakest-ranked field is the identifier field of the highest rank number among those of
   capacity > 1 (several, when they share that rank). Only when that is not enough (a strong
   identifier attached to a profile whose strong identifiers fill T) do the attached field's
   own oldest values go, or those of the other fields of capacity > 1.
3. The event's data goes to the anchor, except the values of identifier fields the anchor does
   not own after step 2 (``EventIdentifiers.refused``: owned by another profile, or left
   unattached by a conflict): a shared device's cookie is not copied into every profile that
   used the device.
4. The older profile (created first: the lower id) survives a merge; the other keeps its row
   with ``merged_into`` pointing at the survivor. A profile created for an event's first
   identifier that merges into an older one within that same event never gets a row: it is
   simply that identifier attaching to the older profile.

Identifier values that are empty, ``null``, ``"undefined"``, ``"0"`` or longer than 256 bytes
are not identifiers (``identifier_problem``); the pipeline records them as warnings.

``IdentityGraph`` does the work in memory for a whole batch of events, after one query has
loaded every identifier the batch names and every identifier of the profiles owning them;
``write_identity`` then stores the outcome with a handful of bulk statements. The pipeline's
``identify`` step calls both with the account's events in the order they were received
(profiles.processing.steps).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from django.db import connection
from psycopg.types.datetime import TimestamptzLoader

from cdp_site.db import live_connection
from profiles.models import Identifier, IdentityLog, Profile

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from cdp_site.models import Account

__all__ = [
    "MAX_IDENTIFIER_BYTES",
    "EventIdentifiers",
    "IdentityGraph",
    "find_profile",
    "from_json_text",
    "identifier_problem",
    "identifiers_of",
    "load_graph",
    "probe_keys",
    "surviving_profile",
    "write_identity",
]

MAX_IDENTIFIER_BYTES = 256
INVALID_VALUES = frozenset({"null", "undefined", "0"})
# An identifier's last_seen moves only when an event is at least this much later: writes stay
# rare for a cookie seen on every page, and compaction ("oldest seen") is exact to this step.
LAST_SEEN_STEP = timedelta(hours=1)

Key = tuple[str, str]  # (field, value)


def identifier_problem(value: Any) -> str | None:
    """Why a value cannot be an identifier, or None when it can."""
    if value is None:
        return "is null"
    text = value if isinstance(value, str) else str(value)
    stripped = text.strip()
    if not stripped:
        return "is empty"
    if stripped.lower() in INVALID_VALUES:
        return f"is {stripped!r}, a placeholder"
    if len(text.encode("utf-8", "replace")) > MAX_IDENTIFIER_BYTES:
        return f"is longer than {MAX_IDENTIFIER_BYTES} bytes"
    return None


def identifier_text(value: Any) -> str:
    """An identifier value as stored: text, and whole numbers without a decimal point."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else str(value)


@dataclass
class EventIdentifiers:
    """One event as identity resolution sees it."""

    raw_event_id: int
    at: datetime
    identifiers: list[tuple[int, str, str]]  # (rank, field, value), valid values only
    # set by ``IdentityGraph.resolve``: the identifiers its profile does not own (rule 3)
    refused: set[Key] = field(default_factory=set)

    def ordered(self) -> list[Key]:
        """Strongest first: rank, then field name, then value; each key once."""
        seen: set[Key] = set()
        out: list[Key] = []
        for _rank, name, value in sorted(self.identifiers):
            if (name, value) not in seen:
                seen.add((name, value))
                out.append((name, value))
        return out


@dataclass
class Ident:
    """An identifier row, loaded or new."""

    field: str
    value: str
    profile: int  # a profile id, or a negative key for a profile created in this batch
    first_seen: datetime
    last_seen: datetime
    id: int | None = None
    active: bool = True
    dirty: bool = False


@dataclass
class LogEntry:
    kind: str
    profile: int
    other: int | None
    raw_event_id: int | None
    field: str = ""
    value: str = ""
    reason: str = ""


@dataclass
class IdentityGraph:
    """The identifiers a batch touches and what resolution does to them, in memory.

    Profile keys: existing profiles by id (> 0); profiles created in this batch by -1, -2, …
    in creation order (``write_identity`` gives them ids in that order, so "older" keeps
    meaning "lower id")."""

    capacities: dict[str, int]  # identifier field -> capacity (absent: no limit)
    max_identifiers: int
    ranks: dict[str, int] = field(default_factory=dict)  # identifier field -> rank
    owner: dict[Key, Ident] = field(default_factory=dict)
    holdings: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    survivor: dict[int, int] = field(default_factory=dict)  # merged-away key -> survivor key
    new_profiles: list[int] = field(default_factory=list)
    dropped: set[int] = field(default_factory=set)  # created and merged within one event
    retired: list[Ident] = field(default_factory=list)  # compacted
    log: list[LogEntry] = field(default_factory=list)
    conflicts: Counter[int] = field(default_factory=Counter)
    compactions: Counter[int] = field(default_factory=Counter)
    born_at: dict[int, datetime] = field(default_factory=dict)  # new key -> its event's time
    _next_key: int = -1
    _seen_now: frozenset[Key] = frozenset()  # the identifiers of the event being resolved

    # -- state helpers -----------------------------------------------------------------------

    def add_loaded(self, ident: Ident) -> None:
        self.owner[(ident.field, ident.value)] = ident
        self.holdings.setdefault(ident.profile, {}).setdefault(ident.field, set()).add(
            ident.value)

    def forget(self, profile: int) -> list[Key]:
        """Drop a loaded profile's identifiers (to load them again); their keys."""
        keys = [(name, value) for name, values in self.holdings.pop(profile, {}).items()
                for value in values]
        for key in keys:
            del self.owner[key]
        return keys

    def final(self, key: int) -> int:
        """The profile a key ends up as, after every merge so far."""
        while key in self.survivor:
            key = self.survivor[key]
        return key

    def count(self, key: int) -> int:
        return sum(len(values) for values in self.holdings.get(key, {}).values())

    def _multi(self, name: str) -> bool:
        """Whether a field may hold several values (compaction only ever drops those)."""
        return self.capacities.get(name, 2) > 1

    @cached_property
    def weakest(self) -> frozenset[str]:
        """The weakest-ranked identifier fields: of those with capacity > 1, the ones with the
        highest rank number (the cookie). A profile past T drops their oldest values first,
        and a merge is refused only when the other fields alone pass T. Without ranks (a
        graph built without a schema), every field of capacity > 1."""
        multi = [n for n in self.ranks if self._multi(n)]
        if not multi:
            return frozenset(n for n in self.capacities if self._multi(n))
        worst = max(self.ranks[n] for n in multi)
        return frozenset(n for n in multi if self.ranks[n] == worst)

    def kept_count(self, key: int) -> int:
        """How many identifiers a profile holds of the fields compaction never drops."""
        weakest = self.weakest
        return sum(len(values) for name, values in self.holdings.get(key, {}).items()
                   if name not in weakest)

    @staticmethod
    def _age(key: int) -> tuple[int, int]:
        return (0, key) if key > 0 else (1, -key)

    def _new_profile(self, at: datetime) -> int:
        key = self._next_key
        self._next_key -= 1
        self.new_profiles.append(key)
        self.holdings[key] = {}
        self.born_at[key] = at
        return key

    def _touch(self, ident: Ident, at: datetime) -> None:
        if at >= ident.last_seen + LAST_SEEN_STEP:
            ident.last_seen = at
            ident.dirty = True
        if at < ident.first_seen:
            ident.first_seen = at
            ident.dirty = True

    def _attach(self, key: int, name: str, value: str, at: datetime) -> None:
        ident = Ident(name, value, key, at, at, dirty=True)
        self.owner[(name, value)] = ident
        self.holdings.setdefault(key, {}).setdefault(name, set()).add(value)

    # -- the rules ---------------------------------------------------------------------------

    def resolve(self, event: EventIdentifiers) -> int | None:
        """Apply one event's identifiers; the key of the profile its data goes to (None when
        it carries no identifier)."""
        keys = event.ordered()
        if not keys:
            return None
        at, raw_id = event.at, event.raw_event_id
        self._seen_now = frozenset(keys)
        first = self.owner.get(keys[0])
        born: int | None = None
        if first is None:
            anchor = born = self._new_profile(at)
            self._attach(anchor, *keys[0], at)
        else:
            anchor = first.profile
            self._touch(first, at)
        refused: list[Key] = []
        for name, value in keys[1:]:
            ident = self.owner.get((name, value))
            if ident is not None and ident.profile == anchor:
                self._touch(ident, at)
                continue
            if ident is not None:
                other = ident.profile
                reason = self._merge_refusal(anchor, other)
                if reason:
                    self._conflict(anchor, other, raw_id, name, value, reason)
                    refused.append((name, value))
                    continue
                silent = (anchor == born and not self.conflicts.get(born)
                          and not self.compactions.get(born))
                anchor = self._merge(anchor, other, raw_id, name, value, silent=silent)
                self._touch(ident, at)
                self._compact_fields(anchor, raw_id)
                continue
            cap = self.capacities.get(name)
            if cap == 1 and self.holdings.get(anchor, {}).get(name):
                self._conflict(anchor, None, raw_id, name, value,
                               f"the profile already holds another {name}")
                refused.append((name, value))
                continue
            self._attach(anchor, name, value, at)
            self._compact_fields(anchor, raw_id, name)
        if refused:  # a later merge of this event may have brought a refused one's owner in
            event.refused = {k for k in refused
                             if (owner := self.owner.get(k)) is None or owner.profile != anchor}
        return anchor

    def _merge_refusal(self, a: int, b: int) -> str:
        held_a, held_b = self.holdings.get(a, {}), self.holdings.get(b, {})
        for name in sorted(set(held_a) & set(held_b)):
            if self.capacities.get(name) == 1 and held_a[name] and held_b[name]:
                return f"both profiles hold a {name}"
        kept = self.kept_count(a) + self.kept_count(b)
        if kept > self.max_identifiers:
            weakest = ", ".join(sorted(self.weakest)) or "none"
            return (f"the merged profile would hold {kept} identifiers besides those "
                    f"compaction may drop ({weakest}); the limit is {self.max_identifiers}")
        return ""

    def _conflict(self, anchor: int, other: int | None, raw_id: int, name: str, value: str,
                  reason: str) -> None:
        self.conflicts[anchor] += 1
        if other is not None:
            self.conflicts[other] += 1
        self.log.append(LogEntry(IdentityLog.Kind.CONFLICT, anchor, other, raw_id, name, value,
                                 reason))

    def _merge(self, a: int, b: int, raw_id: int, name: str, value: str, *, silent: bool
               ) -> int:
        keep, gone = (a, b) if self._age(a) < self._age(b) else (b, a)
        for fname, values in self.holdings.pop(gone, {}).items():
            target = self.holdings.setdefault(keep, {}).setdefault(fname, set())
            for v in values:
                ident = self.owner[(fname, v)]
                ident.profile = keep
                ident.dirty = True
                target.add(v)
        self.survivor[gone] = keep
        if silent and gone < 0 and gone == self.new_profiles[-1]:
            # A profile made for this event's first identifier, merging at once into an older
            # one: it never existed; its identifier simply attaches.
            self.new_profiles.pop()
            self.dropped.add(gone)
            self.conflicts.pop(gone, None)
        else:
            self.log.append(LogEntry(IdentityLog.Kind.MERGE, keep, gone, raw_id, name, value,
                                     f"{name} links them"))
        return keep

    def _compact_fields(self, key: int, raw_id: int, attached: str | None = None) -> None:
        held = self.holdings.get(key, {})
        for name in sorted(held):
            cap = self.capacities.get(name)
            if cap is not None and cap > 1 and len(held[name]) > cap:
                self._drop_oldest(key, [name], len(held[name]) - cap, raw_id,
                                  f"more than {cap} values of {name}")
        reason = f"more than {self.max_identifiers} identifiers"
        weakest = self.weakest
        excess = self.count(key) - self.max_identifiers
        if excess > 0:
            self._drop_oldest(key, sorted(weakest & set(held)), excess, raw_id, reason)
            excess = self.count(key) - self.max_identifiers
        if excess > 0:  # the strong identifiers alone fill T: a strong one was attached
            if attached is not None and self._multi(attached):
                fields = [attached]
            else:
                fields = sorted(n for n in held if self._multi(n))
            self._drop_oldest(key, fields, excess, raw_id, reason)

    def _drop_oldest(self, key: int, fields: list[str], n: int, raw_id: int, reason: str
                     ) -> None:
        held = self.holdings[key]
        # the event's own identifiers are seen now, whatever LAST_SEEN_STEP left in last_seen
        now = self._seen_now
        candidates = sorted(
            (self.owner[(name, v)] for name in fields for v in held.get(name, ())),
            key=lambda i: ((i.field, i.value) in now, i.last_seen, i.field, i.value),
        )
        for ident in candidates[:n]:
            held[ident.field].discard(ident.value)
            if not held[ident.field]:
                del held[ident.field]
            del self.owner[(ident.field, ident.value)]
            ident.active = False
            ident.dirty = True
            self.retired.append(ident)
            self.compactions[key] += 1
            self.log.append(LogEntry(IdentityLog.Kind.COMPACTION, key, None, raw_id,
                                     ident.field, ident.value, reason))


# --------------------------------------------------------------------------- SQL helpers


@contextmanager
def db_cursor() -> Iterator[psycopg.Cursor[Any]]:
    """A plain psycopg cursor on Django's connection (inside its transaction): parameters bound
    server-side, and timestamps loaded by psycopg's C loader (Django's own loader, which
    re-applies the time zone in Python, costs several microseconds a value). jsonb comes back
    as text, as Django configures it."""
    raw = live_connection()  # outside a transaction, a connection the server ended is replaced
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        yield cursor


def to_json_text(rows: Any) -> str:
    """Rows for ``json_to_recordset``: one encoding of the whole batch. orjson writes
    datetimes itself (as ``isoformat`` does) where the json module calls back into Python for
    each one: a batch's profile, identifier and event rows encode in a fifth of the time. What
    orjson refuses (an integer beyond 64 bits) falls back to the json module."""
    try:
        return orjson.dumps(rows, default=_iso, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=False, default=_iso)


# orjson reads integers past 64 bits (and negative ones past 63) as floats, where the json
# module keeps them exact: text with a run of 19 digits or more goes to the json module, as
# does anything orjson refuses (NaN, lone surrogates).
_LONG_NUMBER = re.compile(r"\d{19}")


def from_json_text(text: str) -> Any:
    """JSON text decoded as the json module would, mostly by orjson (several times faster)."""
    if _LONG_NUMBER.search(text) is None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


# --------------------------------------------------------------------------- loading


# One index probe per key, whatever the statistics say: as a plain join, statistics lagging
# behind a growing account made the planner hash the whole identifier table (spilling to disk)
# for every batch. LIMIT 1 keeps the lateral subquery from being flattened into such a join;
# it changes nothing, as (account, field, value) is unique among active identifiers.
_LOAD_KEYS = """
SELECT i.id, i.field, i.value, i.profile_id, i.first_seen, i.last_seen
FROM unnest(%(fields)s::text[], %(values)s::text[]) AS k(f, v)
CROSS JOIN LATERAL (
    SELECT id, field, value, profile_id, first_seen, last_seen FROM profiles_identifier
    WHERE account_id = %(account)s AND active AND field = k.f AND value = k.v LIMIT 1) i
"""
# One index probe per profile (``OFFSET 0`` keeps the lateral subquery from being flattened:
# on a table never analysed the planner scanned it whole, or ANDed two bitmap indexes, about
# 1 s a batch), the account as a filter only (``+ 0``), so that stale statistics cannot make
# the planner AND the account_id index into the lookup (every row of the account read).
_LOAD_PROFILES = """
SELECT i.id, i.field, i.value, i.profile_id, i.first_seen, i.last_seen
FROM unnest(%(profiles)s::bigint[]) AS p(id)
CROSS JOIN LATERAL (
    SELECT id, field, value, profile_id, first_seen, last_seen FROM profiles_identifier
    WHERE profile_id = p.id AND active AND account_id + 0 = %(account)s OFFSET 0) i
"""


def probe_keys(account_id: int, keys: Iterable[Key]) -> dict[Key, int]:
    """The profile owning each of ``keys`` that an active identifier has (one index probe per
    key)."""
    keys = list(keys)
    if not keys:
        return {}
    with db_cursor() as cursor:
        cursor.execute(_LOAD_KEYS, {"account": account_id, "fields": [k[0] for k in keys],
                                    "values": [k[1] for k in keys]})
        return {(name, value): profile for _id, name, value, profile, _f, _l
                in cursor.fetchall()}


def identifiers_of(account_id: int, profiles: Iterable[int]) -> list[Ident]:
    """Every active identifier of these profiles."""
    profiles = sorted(set(profiles))
    if not profiles:
        return []
    with db_cursor() as cursor:
        cursor.execute(_LOAD_PROFILES, {"account": account_id, "profiles": profiles})
        return [Ident(name, value, profile_id, first_seen, last_seen, id=ident_id)
                for ident_id, name, value, profile_id, first_seen, last_seen
                in cursor.fetchall()]


def load_graph(account_id: int, keys: Iterable[Key], capacities: dict[str, int],
               max_identifiers: int, ranks: dict[str, int] | None = None) -> IdentityGraph:
    """A graph holding every active identifier among ``keys`` and every active identifier of
    the profiles owning them (two queries)."""
    graph = IdentityGraph(capacities=capacities, max_identifiers=max_identifiers,
                          ranks=dict(ranks or {}))
    owners = probe_keys(account_id, set(keys))
    for ident in identifiers_of(account_id, owners.values()):
        graph.add_loaded(ident)
    return graph


# --------------------------------------------------------------------------- writing


def allocate_profile_ids(n: int) -> list[int]:
    """``n`` new profile ids, ascending."""
    if n <= 0:
        return []
    with db_cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('profiles_profile', 'id')) "
                       "FROM generate_series(1, %s) ORDER BY 1", [n])
        return [row[0] for row in cursor.fetchall()]


_UPDATE_IDENTS = """
UPDATE profiles_identifier i SET profile_id = u.p, first_seen = u.fs, last_seen = u.ls,
    active = u.a
FROM json_to_recordset(%s::json) AS u(id bigint, p bigint, fs timestamptz, ls timestamptz,
                                     a boolean)
WHERE i.id = u.id
"""
_INSERT_IDENTS = """
INSERT INTO profiles_identifier (account_id, field, value, profile_id, first_seen, last_seen,
    active)
SELECT %s, u.f, u.v, u.p, u.fs, u.ls, u.a
FROM json_to_recordset(%s::json) AS u(f text, v text, p bigint, fs timestamptz,
                                     ls timestamptz, a boolean)
"""


def write_identity(account_id: int, graph: IdentityGraph, ids: dict[int, int], now: datetime
                   ) -> None:
    """Store the identifiers and the identity log of a resolved graph. ``ids`` maps every key
    (existing ids to themselves, new keys to their allocated ids). Profile rows themselves
    (new ones, merged-away ones, counters) are written by the pipeline's merge step."""
    idents = {id(i): i for i in [*graph.owner.values(), *graph.retired] if i.dirty}
    # rows being retired first, so that the partial unique index never sees two active rows
    updates = sorted((i for i in idents.values() if i.id is not None), key=lambda i: i.active)
    inserts = [i for i in idents.values() if i.id is None]
    with db_cursor() as cursor:
        if updates:
            cursor.execute(_UPDATE_IDENTS, [to_json_text([
                {"id": i.id, "p": ids[i.profile], "fs": i.first_seen, "ls": i.last_seen,
                 "a": i.active} for i in updates])])
        if inserts:
            cursor.execute(_INSERT_IDENTS, [account_id, to_json_text([
                {"f": i.field, "v": i.value, "p": ids[i.profile], "fs": i.first_seen,
                 "ls": i.last_seen, "a": i.active} for i in inserts])])
    if graph.log:
        IdentityLog.objects.bulk_create([
            IdentityLog(account_id=account_id, kind=e.kind, profile_id=ids[e.profile],
                        other_id=None if e.other is None else ids[e.other],
                        raw_event_id=e.raw_event_id, field=e.field[:100], value=e.value[:256],
                        reason=e.reason[:300], created_at=now)
            for e in graph.log
        ])


# --------------------------------------------------------------------------- reading


def surviving_profile(account: Account, profile_id: int) -> Profile | None:
    """The profile an id names, following merges to the survivor (None when unknown)."""
    seen: set[int] = set()
    current: int | None = profile_id
    while current is not None and current not in seen:
        seen.add(current)
        profile = Profile.objects.for_account(account).filter(pk=current).first()
        if profile is None:
            return None
        if profile.merged_into_id is None:
            return profile
        current = profile.merged_into_id
    return None


def find_profile(account: Account, field_name: str, value: Any) -> Profile | None:
    """The profile an identifier value points at (None when no active identifier has it)."""
    if identifier_problem(value):
        return None
    ident = (Identifier.objects.for_account(account)
             .filter(field=field_name, value=identifier_text(value), active=True)
             .only("profile_id").first())
    if ident is None:
        return None
    return surviving_profile(account, ident.profile_id)
