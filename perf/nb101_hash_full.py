"""Hash every cell of the shared NAS-Bench-101 table and count matches with its ``hash`` column.

Usage: python perf/nb101_hash_full.py [PATH_TO_NPZ]
(default: ../shared/data/nb101/nb101_108ep_test_seed0.npz relative to the repository root)

Prints the number of matching rows, the first few mismatches (if any) and the elapsed time.
Exits with status 1 if any row differs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

from ntknas.spaces.nb101 import spec_from_npz  # noqa: E402

DEFAULT_NPZ = REPO.parent / "shared" / "data" / "nb101" / "nb101_108ep_test_seed0.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("npz", nargs="?", type=Path, default=DEFAULT_NPZ)
    args = parser.parse_args(argv)

    with np.load(args.npz) as data:  # materialise once: NpzFile re-reads on every access
        expected, adjacency, ops = data["hash"], data["adjacency"], data["ops"]

    start = time.perf_counter()
    mismatches: list[int] = []
    for i in range(len(expected)):
        if spec_from_npz(adjacency[i], ops[i]).hash != expected[i].decode():
            mismatches.append(i)
    elapsed = time.perf_counter() - start

    total = len(expected)
    print(f"{total - len(mismatches)}/{total} hashes match")
    if mismatches:
        print(f"first mismatching rows: {mismatches[:10]}")
    print(f"elapsed {elapsed:.1f} s ({1e6 * elapsed / total:.0f} us per cell)")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
