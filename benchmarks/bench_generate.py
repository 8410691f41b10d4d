"""Generator throughput: messages per second on a small run of the default scenario.

    .venv/bin/python benchmarks/bench_generate.py [--messages N]

Reports wall-clock and CPU-time rates (the latter is steadier on a shared machine);
``--profile`` lists the hottest functions. Keep N small on shared machines.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import load_scenario


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--profile", action="store_true", help="print the top functions")
    args = ap.parse_args()
    sc = load_scenario(None)
    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        cpu_started = time.process_time()
        if prof:
            prof.enable()
        manifest = generate(sc, Path(tmp) / "out", messages=args.messages)
        if prof:
            prof.disable()
        took = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        size = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*.hl7"))
    n = manifest["total"]
    print(f"generated {n:,} messages ({size / 1e6:.1f} MB) for {manifest['population']:,} "
          f"patients in {took:.2f}s: {n / took:,.0f} messages/s, {size / 1e6 / took:.1f} MB/s")
    # on a shared machine wall time drifts with the neighbours; CPU time much less so
    print(f"CPU {cpu:.2f}s: {n / cpu:,.0f} messages per CPU-second (single process)")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
