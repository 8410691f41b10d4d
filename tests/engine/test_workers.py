"""The conversion worker pool and the lazy merge view: same answers as the plain way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_helpers import snapshot
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.engine.convert import MergeMap
from shcr_sim.engine.replay import ReplayOptions, replay
from shcr_sim.engine.trusts import resolve_trusts
from shcr_sim.engine.workers import shards


def merged_at(entries: list[tuple[str, str, str]], order_key: str) -> dict[str, str] | None:
    view = MergeMap(entries).at(order_key)
    return None if view is None else {old: view[old] for old in view}


def test_merge_chains_resolve_to_the_final_survivor() -> None:
    chain = [("1", "p1", "p2"), ("2", "p2", "p3"), ("3", "p3", "p4")]
    assert merged_at(chain, "9") == {"p1": "p4", "p2": "p4", "p3": "p4"}
    # entries arrive in any order: the ordering key decides, not the list order
    assert merged_at(list(reversed(chain)), "9") == {"p1": "p4", "p2": "p4", "p3": "p4"}


def test_merges_take_effect_from_their_ordering_key_on() -> None:
    merges = [("3", "p1", "p2"), ("6", "p2", "p3")]
    assert merged_at(merges, "2") is None  # before any merge: no view at all
    assert merged_at(merges, "3") == {"p1": "p2"}  # at its key: in force
    assert merged_at(merges, "5") == {"p1": "p2"}
    assert merged_at(merges, "6") == {"p1": "p3", "p2": "p3"}
    # the same record merged again later: the later survivor wins from then on
    again = [("1", "p1", "p2"), ("4", "p1", "p3")]
    assert merged_at(again, "3") == {"p1": "p2"}
    assert merged_at(again, "4") == {"p1": "p3"}


def test_self_merges_are_ignored_and_cycles_end() -> None:
    assert merged_at([("1", "p1", "p1")], "5") == {}
    # a merge undone (p1 into p2, then p2 into p1): following stops after a bounded
    # number of hops, and each id ends at the other (the engine and verify agree)
    assert merged_at([("1", "p1", "p2"), ("2", "p2", "p1")], "5") == {"p1": "p2", "p2": "p1"}
    assert merged_at([("1", "p1", "p2"), ("2", "p2", "p1")], "1") == {"p1": "p2"}


ids = st.sampled_from(["p1", "p2", "p3", "p4"])
keys = st.integers(0, 9).map(str)


@given(st.lists(st.tuples(keys, ids, ids), max_size=8), keys)
def test_lazy_merge_view_lookups_agree_with_its_listing(entries, order_key) -> None:
    view = MergeMap(entries).at(order_key)
    if view is None:
        assert all(ok > order_key for ok, _, _ in entries)
        return
    listed = {old: view[old] for old in view}
    assert len(view) == len(listed)
    for pid in ("p1", "p2", "p3", "p4"):
        assert view.get(pid) == listed.get(pid) and (pid in view) == (pid in listed)
        assert listed.get(pid) != pid  # never merged into itself


@given(st.lists(st.sampled_from("abcde"), max_size=60).map(sorted), st.integers(1, 6))
def test_shards_keep_order_and_never_split_a_patient(patients: list[str], n: int) -> None:
    jobs = [(i, "", "", "", "", p) for i, p in enumerate(patients)]
    parts = shards(jobs, n)
    assert [j for part in parts for j in part] == jobs  # all of them, in claim order
    owner: dict[str, int] = {}
    for i, part in enumerate(parts):
        for job in part:
            assert owner.setdefault(job[5], i) == i  # each patient in exactly one shard


def test_worker_pool_gives_the_same_record_as_one_process(generated: Path,
                                                          tmp_path: Path) -> None:
    trusts = resolve_trusts(None, [generated])
    live = [generated / "live"]

    async def run(db: Path, workers: int) -> bool:
        result = await replay(db, [generated], live, trusts=trusts, validate="sampled",
                              options=ReplayOptions(batch=300, accept_batch=300,
                                                    workers=workers))
        return result.reconciliation.ok

    assert asyncio.run(run(tmp_path / "one.db", 0))
    assert asyncio.run(run(tmp_path / "pool.db", 2))
    one, pool = snapshot(tmp_path / "one.db"), snapshot(tmp_path / "pool.db")
    assert one and pool == one


def test_the_pool_keys_messages_as_the_engine_would() -> None:
    """Keys made in the workers (sent back as plain tuples) are the queue's own
    ``MessageKeys``, field for field, and a message that cannot be keyed keeps its reason."""
    from shcr_sim.engine.keys import MessageKeys
    from shcr_sim.engine.queue import key_message
    from shcr_sim.engine.workers import ConvertPool

    good = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240101120500+0000||ADT^A01|C{n}|P|2.4",
        "EVN|A01|2024010112{n:02d}00+0000",
        "PID|1||M{n}^^^RXX01^PI||Smith^Ann||19700101|F", "PV1|1|I"])
    raws = [good.format(n=n) for n in range(7)] + ["garbage", good.format(n=8)[:60]]
    senders = {("PAS", "RXX01"): "Europe/London"}
    pool = ConvertPool(None, "off", 2)
    try:
        got = asyncio.run(pool.keys(raws, senders))
    finally:
        pool.close()
    expected = [key_message(r, senders) for r in raws]
    assert got == expected and isinstance(expected[-1], str) and isinstance(got[-2], str)
    assert all(type(k) is MessageKeys for k in got[:7])
    assert got[3].dedup_key == "PAS|RXX01|C3" and got[3].patient_key == "mrn:RXX01|M3"


def test_merges_are_packed_once_per_change_and_built_once_per_packing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The merges travel with every shard as one pickled blob made once per change (a
    10 M backload's ~10,000 of them cost ~16 ms a shard to pickle, unpickle and index),
    and a worker rebuilds its map only for a packing it has not seen."""
    from shcr_sim.engine import workers

    monkeypatch.setattr(workers, "_merges", None)  # this process's, as a worker's
    merges = MergeMap([("3", "p1", "p2")])
    first = merges.packed()
    assert merges.packed() is first  # unchanged: the same blob, not pickled again
    built = workers._merge_map(first)
    assert workers._merge_map(first) is built  # the same token: the same map
    assert built.at("5") is not None and built.at("5").get("p1") == "p2"
    merges.add("4", "p2", "p3")
    second = merges.packed()
    assert second[0] != first[0]
    rebuilt = workers._merge_map(second)
    assert rebuilt is not built and rebuilt.entries == merges.entries
    assert rebuilt.at("5").get("p1") == "p3"
    # another map's first packing never reuses this one's token
    assert MergeMap([("3", "p1", "p2")]).packed()[0] not in (first[0], second[0])


def test_a_pool_converts_with_the_merges_in_force_at_each_call() -> None:
    """A merge learned between two batches reaches the workers that built the earlier
    packing: the same message converted again follows the new survivor."""
    from shcr_sim.engine.workers import ConvertPool

    raw = "\r".join([
        "MSH|^~\\&|PAS|RXX01|SHCR|SHCR|20240101120500+0000||ADT^A08|C1|P|2.4",
        "EVN|A08|20240101120000+0000", "PID|1||M1^^^RXX01^PI||Smith^Ann||19700101|F"])
    job = (1, raw, "PAS|RXX01|C1", "0000000000000002", "20240101120000+0000", "mrn:RXX01|M1")
    merges = MergeMap([("0000000000000001", "someone-else", "survivor-0")])
    pool = ConvertPool(None, "off", 1)
    try:
        def patient_of() -> str:
            out, *_ = asyncio.run(pool.convert([job], merges))
            assert not isinstance(out[0], str), out[0]
            return out[0][0]

        before = [patient_of() for _ in range(3)]  # the worker keeps its built map
        merges.add("0000000000000001", before[0], "survivor-1")
        after = patient_of()
    finally:
        pool.close()
    assert before == [before[0]] * 3 and before[0] not in ("survivor-0", "survivor-1")
    assert after == "survivor-1"
