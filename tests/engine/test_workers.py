"""The conversion worker pool and the lazy merge view: same answers as the plain way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine_helpers import snapshot
from hypothesis import given
from hypothesis import strategies as st

from shcr_sim.engine.convert import MergeMap
from shcr_sim.engine.replay import ReplayOptions, replay
from shcr_sim.engine.trusts import resolve_trusts
from shcr_sim.engine.workers import shards


def eager_at(entries: list[tuple[str, str, str]], order_key: str) -> dict[str, str]:
    """The merges in force, written out the obvious way (chains resolved)."""
    direct = {old: surv for ok, old, surv in sorted(entries) if ok <= order_key and old != surv}
    out = {}
    for old, target in direct.items():
        hops = 0
        while target in direct and hops < 50:
            target, hops = direct[target], hops + 1
        if target != old:
            out[old] = target
    return out


ids = st.sampled_from(["p1", "p2", "p3", "p4"])
keys = st.integers(0, 9).map(str)


@given(st.lists(st.tuples(keys, ids, ids), max_size=8), keys)
def test_lazy_merge_view_matches_the_eager_rule(entries, order_key) -> None:
    view = MergeMap(entries).at(order_key)
    got = {} if view is None else {old: view[old] for old in view}
    want = eager_at(entries, order_key)
    assert got == want
    for pid in ("p1", "p2", "p3", "p4"):
        assert (view.get(pid) if view is not None else None) == want.get(pid)


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
