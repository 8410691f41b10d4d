"""``shcr-sim demo``: the whole job at a small size, in one command."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live

NHS_PREFIX = "https://fhir.nhs.uk/Id/nhs-number|"


async def pick_multi_trust_patient(db: Path) -> str | None:
    """An NHS number with Patient records at the most trusts (then most resources)."""
    import aiosqlite

    async with aiosqlite.connect(str(db)) as conn, conn.execute(
        "SELECT substr(i.ident, ?), COUNT(DISTINCT i.rkey) AS trusts, "
        "(SELECT COUNT(*) FROM patient_index p WHERE p.patient_key IN "
        "  (SELECT 'Patient/' || substr(j.rkey, 9) FROM identifier_index j "
        "   WHERE j.ident = i.ident)) AS n "
        "FROM identifier_index i WHERE i.ident LIKE ? AND i.rkey LIKE 'Patient/%' "
        "GROUP BY i.ident ORDER BY trusts DESC, n DESC, i.ident LIMIT 1",
        (len(NHS_PREFIX) + 1, NHS_PREFIX + "%"),
    ) as cur:
        row = await cur.fetchone()
    return row[0] if row else None


def run_demo(out: Path, messages: int, seed: int, console: Console) -> int:
    """Returns the exit code: 0 when reconciliation and verify are both clean."""
    from shcr_sim.cli import app
    from shcr_sim.store import SqliteStore
    from shcr_sim.store.record import load_record

    from .replay import Progress, replay
    from .trusts import resolve_trusts
    from .verify import verify
    from .views import progress_table, reconciliation_table, record_view, verify_report

    t0 = time.monotonic()
    data, db = out / "extract", out / "shcr.db"
    if data.exists():
        shutil.rmtree(data)
    for p in out.glob("shcr.db*"):
        p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    console.rule(f"1. generate the default scenario (~{messages:,} messages)")
    app(["generate", "--out", str(data), "--messages", str(messages), "--seed", str(seed)],
        standalone_mode=False)
    live_files = sorted((data / "live").glob("*")) if (data / "live").is_dir() else []
    trusts = resolve_trusts(None, [data])

    console.rule("2. replay the backload with live traffic interleaved")
    view = Live(console=console, refresh_per_second=4, transient=False)

    def on_progress(p: Progress) -> None:
        view.update(progress_table(p))

    with view:
        result = asyncio.run(replay(db, [data], live_files, trusts=trusts,
                                    on_progress=on_progress))
    console.print()
    console.print(reconciliation_table(result.reconciliation))

    console.rule("3. verify every patient's journey independently")
    v = asyncio.run(verify(db, [data], live_files, trusts))
    console.print(verify_report(v))

    console.rule("4. one multi-trust patient's shared record")
    nhs = asyncio.run(pick_multi_trust_patient(db))
    if nhs:
        async def load():  # noqa: ANN202
            store = await SqliteStore.open(db)
            try:
                return await load_record(store, nhs)
            finally:
                await store.close()

        console.print(record_view(asyncio.run(load())))
        console.print(f"see it again: shcr-sim record --db {db} {nhs}")
    ok = result.reconciliation.ok and v.ok
    console.rule(f"demo {'OK' if ok else 'FAILED'} in {time.monotonic() - t0:,.1f}s")
    return 0 if ok else 1
