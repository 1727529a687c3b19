"""Build the benchmark-variant NAS-Bench-201 network for every architecture and compare its
parameter count with the published ``params_mb`` column (and with the closed-form count).

    python perf/nb201_params_full.py [path/to/nb201_accuracies.csv]

params_mb is the count in millions printed with 6 decimals, so a match means
|count - params_mb * 1e6| <= 0.5. Rows that do not match are listed by index (the first few
in full); see tests/test_nb201.py for why a small set of published values is not a valid
count at all (NATS-Bench issue #36).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing the package

from ntknas.spaces.nb201 import benchmark_param_count, build_nb201  # noqa: E402

DEFAULT_CSV = REPO.parent / "shared" / "data" / "nb201" / "nb201_accuracies.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_path", nargs="?", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--limit", type=int, default=None, help="only the first N rows (for a quick run)")
    args = parser.parse_args(argv)
    if not args.csv_path.is_file():
        print(f"error: {args.csv_path} not found; pass the path to nb201_accuracies.csv", file=sys.stderr)
        return 2

    with open(args.csv_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if args.limit is not None:
        rows = rows[: args.limit]

    torch.set_num_threads(1)  # building is Python-bound; extra threads only add overhead
    start = time.perf_counter()
    matched = 0
    formula_agrees = 0
    mismatches: list[tuple[int, int, float]] = []
    for row in rows:
        index = int(row["index"])
        count = sum(p.numel() for p in build_nb201(index, variant="benchmark").parameters())
        formula_agrees += count == benchmark_param_count(index)
        published = float(row["params_mb"]) * 1e6
        if abs(published - count) <= 0.5:
            matched += 1
        else:
            mismatches.append((index, count, published))
    elapsed = time.perf_counter() - start

    total = len(rows)
    print(f"built {total} benchmark-variant networks in {elapsed:.1f} s ({1e3 * elapsed / max(total, 1):.1f} ms each)")
    print(f"module count == params_mb (to 6-decimal rounding): {matched}/{total}")
    print(f"module count == benchmark_param_count:             {formula_agrees}/{total}")
    if mismatches:
        print(f"{len(mismatches)} rows differ; first 10 (index, module count, params_mb*1e6):")
        for index, count, published in mismatches[:10]:
            print(f"  {index:5d}  {count:8d}  {published:12.1f}  (diff {count - published:+.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
