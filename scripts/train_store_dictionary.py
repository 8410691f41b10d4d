"""Train the store's zstd dictionary (``src/shcr_sim/store/fhir-resources.zdict``).

Generates a synthetic scenario, converts every message with each trust's mapping and
trains on the resources' stored JSON (sorted keys, no store meta). Synthetic data
only: the generator's, never a trust's. Retraining changes the dictionary's id;
databases written before keep reading, since each holds the dictionaries it used.

    .venv/bin/python scripts/train_store_dictionary.py [--messages 20000] [--size 65536]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import orjson
import zstandard

from shcr_sim.engine.convert import Converted, Converter
from shcr_sim.engine.inbound import discover, iter_raw
from shcr_sim.engine.trusts import resolve_trusts
from shcr_sim.feeds.generate import generate
from shcr_sim.feeds.scenario import load_scenario
from shcr_sim.store import strip_meta
from shcr_sim.store.compress import DICTIONARY_FILE

OUT = Path(__file__).resolve().parents[1] / "src" / "shcr_sim" / "store" / DICTIONARY_FILE


def bodies(messages: int, seed: int) -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(load_scenario(None), out, messages=messages, seed=seed)
        converter = Converter(resolve_trusts(None, [out]), "off")
        found: list[bytes] = []
        for sf in discover([out], []):
            for i, raw in enumerate(iter_raw(sf.path)):
                conv = converter.convert(raw, f"m{i}", "", "", None)
                if isinstance(conv, Converted):
                    found += [orjson.dumps(strip_meta(w.resource), option=orjson.OPT_SORT_KEYS)
                              for w in conv.writes]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=65536, help="dictionary bytes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    samples = bodies(args.messages, args.seed)
    random.Random(args.seed).shuffle(samples)
    test, train = samples[: len(samples) // 10], samples[len(samples) // 10:]
    trained = zstandard.train_dictionary(args.size, train, level=3)
    args.out.write_bytes(trained.as_bytes())
    cctx = zstandard.ZstdCompressor(level=3, dict_data=trained, write_checksum=False)
    ratio = sum(len(cctx.compress(b)) for b in test) / sum(map(len, test))
    print(f"{len(samples):,} resources → {args.out} ({len(trained.as_bytes()):,} bytes, "
          f"id {trained.dict_id()}); held-out tenth compressed to {ratio:.1%}")


if __name__ == "__main__":
    main()
