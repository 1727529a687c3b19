"""Do two versions of ntknas store the same values? Run the same commands with each, compare the stores.

Usage (from the repository root; the reference version is a git revision of this repository):

    python perf/equivalence.py --data-dir C10 --benchmark ../shared/data/nb201/nb201_accuracies.csv \\
        --reference 9cac626 --work /tmp/equivalence

Runs, once with the reference version's code (``git archive`` into WORK/reference-src) and once
with the working tree's, in separate processes:

* correlate: 12 NB201 cells, both BN modes, ``--train-epochs 0,1``;
* search: the oracle (``bench:`` the 12-epoch column) and synflow, random and REA, 3 runs;
* track: 1 architecture, 1 epoch;

then compares every row of every table of each pair of stores, leaving out what is allowed to
differ (wall times, creation times, device names). It prints one line per table and exits 1 if
any stored value differs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Columns that record when or how long, not what: they may differ between any two runs; likewise
# the tracking table's wall-time quantities.
VOLATILE = {"seconds", "created", "device"}
VOLATILE_QUANTITIES = ("kernel_seconds", "train_seconds")


def commands(data_dir: str, benchmark: str, out: Path) -> dict[str, list[str]]:
    supplementary = str(Path(benchmark).with_name("nb201_supplementary.csv"))
    common = ["--dataset", "cifar10", "--data-dir", data_dir, "--benchmark", benchmark, "--no-progress"]
    return {
        "correlate": ["correlate", *common, "--archs", "0:12", "--batch-size", "16", "--bn", "train,eval",
                      "--train-epochs", "0,1", "--train-batch-size", "128", "--metrics", "knas,fnorm,trace,lga",
                      "--out", str(out / "correlate")],
        "search": ["search", *common, "--proxy", "bench:cifar10_valid_valid_hp12,synflow",
                   "--proxy-table", supplementary, "--strategy", "random,rea",
                   "--runs", "3", "--candidates", "12", "--population", "4", "--batch-size", "16",
                   "--protocol", "zc", "--out", str(out / "search")],
        "track": ["track", "--dataset", "cifar10", "--data-dir", data_dir, "--archs", "6111", "--epochs", "1",
                  "--train-batch-size", "128", "--no-progress", "--out", str(out / "track")],
    }


def run_version(source: Path, out: Path, data_dir: str, benchmark: str) -> None:
    env = os.environ | {"PYTHONPATH": str(source), "OMP_NUM_THREADS": "1"}
    for name, argv in commands(data_dir, benchmark, out).items():
        code = "import sys; from ntknas.cli import main; sys.exit(main(sys.argv[1:]))"
        result = subprocess.run([sys.executable, "-c", code, *argv], env=env, cwd=out, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{source.name}: {name} failed ({result.returncode}):\n{result.stderr[-2000:]}")


def table_rows(path: Path) -> dict[str, set[tuple]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name != 'meta'")]
        rows = {}
        for table in tables:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[1] not in VOLATILE]
            rows[table] = {
                row for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}")
                if not (table == "tracking" and row[columns.index("quantity")] in VOLATILE_QUANTITIES)
            }
    return rows


def compare(reference: Path, current: Path) -> bool:
    same = True
    for command in ("correlate", "search", "track"):
        old = table_rows(reference / command / "results.sqlite")
        new = table_rows(current / command / "results.sqlite")
        for table in sorted(set(old) | set(new)):
            a, b = old.get(table, set()), new.get(table, set())
            verdict = "identical" if a == b else f"DIFFER: {len(a - b)} only in reference, {len(b - a)} only in current"
            same &= a == b
            print(f"{command:<10} {table:<13} {len(a):>5} rows reference  {len(b):>5} rows current  {verdict}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--reference", default="9cac626", help="git revision of the reference version")
    parser.add_argument("--work", default=None, help="folder for both versions' run folders (default: a temporary one)")
    parser.add_argument("--compare-only", action="store_true", help="compare the stores already in --work")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ntknas-equivalence-"))
    if args.compare_only:
        return 0 if compare(work / "reference", work / "current") else 1
    source = work / "reference-src"
    source.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.reference, "ntknas"], capture_output=True, check=True)
    archive_path = work / "reference.tar"
    archive_path.write_bytes(archive.stdout)
    with tarfile.open(archive_path) as tar:
        tar.extractall(source, filter="data")
    data_dir, benchmark = str(Path(args.data_dir).resolve()), str(Path(args.benchmark).resolve())
    for name, code in (("reference", source), ("current", REPO)):
        (work / name).mkdir(exist_ok=True)
        run_version(code, work / name, data_dir, benchmark)
    print(f"reference {args.reference} vs the working tree, stores in {work}")
    return 0 if compare(work / "reference", work / "current") else 1


if __name__ == "__main__":
    sys.exit(main())
