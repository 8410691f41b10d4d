"""Codec throughput: our lazy tokenizer vs python-hl7 vs hl7apy on the same messages.

Prints messages per second for each and the ratios measured in this one run (absolute
numbers drift on a shared machine; ratios do not). Runs in well under 30 s:

    .venv/bin/python benchmarks/bench_codec.py [--messages 3000] [--hl7apy 60]

Each parser does the work a mapping does for a message: parse, then read the header,
the patient identifiers/name/birth date, the visit and every OBX code/value.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from shcr_sim.hl7 import MLLPDecoder, frame, iter_messages, parse, write_messages

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7"


def sample_messages(n: int, seed: int = 5) -> list[str]:
    """Messages from the simulated trusts (all flavours and types), else the fixtures."""
    texts: list[str] = []
    try:
        from shcr_sim.feeds.generate import generate
        from shcr_sim.feeds.scenario import load_scenario

        with tempfile.TemporaryDirectory() as tmp:
            generate(load_scenario(None), Path(tmp), messages=n, seed=seed)
            for path in sorted(Path(tmp).rglob("*.hl7")):
                texts += [m.text for m in iter_messages(path)]
    except ImportError:
        pass
    if not texts:
        texts = [m.text for p in sorted(FIXTURES.glob("*.hl7")) for m in iter_messages(p)]
    texts = [t.replace("\r\n", "\r").replace("\n", "\r") for t in texts]  # python-hl7 wants CR
    return list(itertools.islice(itertools.cycle(texts), n))


def ours(text: str) -> int:
    msg = parse(text)
    touched = len(msg.message_type) + len(msg.control_id) + len(msg.version)
    if "PID" in msg:
        pid = msg["PID"]
        touched += sum(len(r) for r in pid.repetitions(3))
        touched += len(pid.get(3, 1, 1)) + len(pid.get(3, 1, 4)) + len(pid.get(2, 1, 1))
        touched += len(pid.get_text(5, 1, 1)) + len(pid.get_text(5, 1, 2)) + len(pid.get(7))
        touched += len(pid.get(8))
    touched += len(msg.get("EVN-2")) + len(msg.get("PV1-2")) + len(msg.get("PV1-19.1"))
    for obx in msg.all("OBX"):
        touched += len(obx.get(3, 1, 1)) + len(obx.get_text(5)) + len(obx.get(11))
    return touched


def python_hl7(text: str) -> int:
    import hl7

    msg = hl7.parse(text)
    msh = msg.segment("MSH")
    touched = len(str(msh(9))) + len(str(msh(10))) + len(str(msh(12)))
    try:
        pid = msg.segment("PID")
    except KeyError:
        pid = None
    if pid is not None:
        touched += len(str(pid(3))) + len(msg.extract_field("PID", 1, 3, 1, 1))
        touched += len(msg.extract_field("PID", 1, 3, 1, 4))
        touched += len(msg.extract_field("PID", 1, 5, 1, 1))
        touched += len(msg.extract_field("PID", 1, 5, 1, 2)) + len(str(pid(7)))
    for obx in msg.segments("OBX") if "OBX" in text else []:
        touched += len(str(obx(3))) + len(str(obx(5))) + len(str(obx(11)))
    return touched


def hl7apy(text: str) -> int:
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.parser import parse_message

    msg = parse_message(text, find_groups=False, validation_level=VALIDATION_LEVEL.TOLERANT)
    touched = len(msg.msh.msh_9.to_er7()) + len(msg.msh.msh_10.to_er7())
    for seg in msg.children:
        if seg.name == "PID":
            touched += len(seg.pid_3.to_er7()) + len(seg.pid_5.to_er7()) + len(seg.pid_7.to_er7())
        elif seg.name == "OBX":
            touched += len(seg.obx_3.to_er7()) + len(seg.obx_5.to_er7())
    return touched


def rate(fn: Callable[[str], int], texts: list[str], min_seconds: float = 0.5) -> float:
    """Messages per second, repeating the sample until at least min_seconds have passed."""
    done, start = 0, time.perf_counter()
    while True:
        for text in texts:
            fn(text)
        done += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def file_and_mllp_rates(texts: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plain.hl7"
        write_messages(path, texts)
        start = time.perf_counter()
        count = sum(1 for _ in iter_messages(path))
        file_rate = count / (time.perf_counter() - start)
    stream = b"".join(frame(t.encode()) for t in texts)
    start = time.perf_counter()
    decoder = MLLPDecoder()
    got = 0
    for i in range(0, len(stream), 4096):  # socket-sized reads
        got += len(decoder.feed(stream[i : i + 4096]))
    mllp_rate = got / (time.perf_counter() - start)
    return file_rate, mllp_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--hl7apy", type=int, default=60, help="sample size for hl7apy (slow)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    texts = sample_messages(args.messages)
    kinds = sorted({parse(t).message_type for t in texts})
    print(f"{len(texts)} messages ({', '.join(kinds)}), "
          f"mean {sum(map(len, texts)) // len(texts)} bytes")

    r_ours = rate(ours, texts)
    r_phl7 = rate(python_hl7, texts[: max(200, args.messages // 5)])
    small = texts[: args.hl7apy]
    r_apy = rate(hl7apy, small, min_seconds=0.0)
    file_rate, mllp_rate = file_and_mllp_rates(texts)

    print(f"{'parser':<34}{'msg/s':>12}{'ours is ×':>12}")
    print(f"{'shcr_sim.hl7 parse + mapping reads':<34}{r_ours:>12,.0f}{1:>12.1f}")
    print(f"{'python-hl7 hl7.parse + same reads':<34}{r_phl7:>12,.0f}{r_ours / r_phl7:>12.1f}")
    print(f"{'hl7apy parse_message + same reads':<34}{r_apy:>12,.0f}{r_ours / r_apy:>12.1f}"
          f"   (sample of {len(small)})")
    print(f"{'iter_messages (plain file)':<34}{file_rate:>12,.0f}")
    print(f"{'MLLPDecoder.feed (4 KiB reads)':<34}{mllp_rate:>12,.0f}")


if __name__ == "__main__":
    main()
