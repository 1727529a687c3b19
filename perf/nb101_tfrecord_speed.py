"""Reading speed of the official NAS-Bench-101 results file format, on a synthetic file.

Writes a temporary file of ``--records`` records laid out like ``nasbench_only108.tfrecord``
(three runs per cell, 7-vertex cells, three evaluations per run, ~390 bytes a record as in the
real 500 MB / 1.27M-record file) and times, in one run on one core:

* the TFRecord framing alone (lengths and CRCs checked, nothing parsed),
* the whole reader (JSON, base64, protobuf, per-cell aggregation) with CRCs checked,
* the whole reader without CRC checks (what runs when google-crc32c is not installed).

Rates are per CPU second of this process (``time.process_time``), i.e. what one core does
whatever else the machine is running; wall-clock rates are printed beside them.
Goal: at least 20,000 records/s for the whole reader. The real file has 1,270,872 records
(423,624 cells × 3 runs): ``--records 1270872`` reproduces its size.

    python perf/nb101_tfrecord_speed.py [--records 300000] [--keep FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntknas.groundtruth.nb101_tfrecord import (  # noqa: E402
    EvaluationData,
    ModelMetrics,
    crc32c_python,
    encode_record,
    fast_crc32c,
    frame_record,
    iter_records,
    read_nb101_tfrecord,
)

GOAL_RECORDS_PER_SECOND = 20_000
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
ADJACENCY = [
    [0, 1, 0, 0, 1, 1, 0],
    [0, 0, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 1],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]


def write_synthetic(path: Path, records: int, seed: int = 0) -> None:
    """Three runs per cell; cells get distinct made-up hashes (the reader does not recompute them)."""
    crc = fast_crc32c() or crc32c_python
    rng = np.random.default_rng(seed)
    cells = (records + 2) // 3
    written = 0
    with path.open("wb", buffering=1 << 20) as handle:
        for cell in range(cells):
            module_hash = hashlib.md5(str(cell).encode()).hexdigest()
            ops = ["input", *(OPS[i] for i in rng.integers(0, 3, size=5)), "output"]
            for _ in range(3):
                if written == records:
                    return
                accuracies = rng.uniform(0.1, 0.95, size=9)
                evaluations = tuple(
                    EvaluationData(epoch, 30.0 * epoch, *accuracies[3 * k:3 * k + 3])
                    for k, epoch in enumerate((0.0, 54.0, 108.0))
                )
                metrics = ModelMetrics(evaluations, int(rng.integers(200_000, 40_000_000)), float(rng.uniform(1e3, 1e4)))
                handle.write(frame_record(encode_record(module_hash, 108, ADJACENCY, ops, metrics), crc))
                written += 1


def timed(label: str, records: int, run) -> float:  # type: ignore[no-untyped-def]
    """Print wall and CPU rates; returns records per CPU second (what one core does, whatever
    else the machine runs)."""
    begin, begin_cpu = time.perf_counter(), time.process_time()
    run()
    seconds, cpu = time.perf_counter() - begin, time.process_time() - begin_cpu
    rate = records / cpu
    print(
        f"{label:<40} wall {seconds:7.2f} s ({records / seconds:9,.0f}/s)  CPU {cpu:7.2f} s "
        f"({rate:9,.0f} records/s, {rate / GOAL_RECORDS_PER_SECOND:.2f}x the goal)"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--keep", help="write the synthetic file here and keep it")
    args = parser.parse_args()
    if fast_crc32c() is None:
        print("google-crc32c (C) is not installed: CRCs are checked by the pure-Python table (slow)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(args.keep) if args.keep else Path(folder) / "synthetic_only108.tfrecord"
        begin = time.perf_counter()
        write_synthetic(path, args.records)
        size = os.path.getsize(path)
        print(
            f"wrote {args.records:,} records ({size / 1e6:.1f} MB, {size / args.records:.0f} bytes/record) "
            f"in {time.perf_counter() - begin:.1f} s; reading on one core:"
        )
        crc = fast_crc32c() is not None
        timed("framing only (lengths" + (" + CRCs)" if crc else ")"), args.records,
              lambda: sum(1 for _ in iter_records(path, verify_crc=crc)))
        full = timed("whole reader, CRCs checked" if crc else "whole reader (no CRC package)", args.records,
                     lambda: read_nb101_tfrecord(path, verify_crc=crc))
        timed("whole reader, CRCs not checked", args.records, lambda: read_nb101_tfrecord(path, verify_crc=False))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory of this process: {peak:.0f} MB (file: {size / 1e6:.0f} MB)")
        print(f"goal {GOAL_RECORDS_PER_SECOND:,} records per CPU second: {'met' if full >= GOAL_RECORDS_PER_SECOND else 'NOT met'}")


if __name__ == "__main__":
    main()
