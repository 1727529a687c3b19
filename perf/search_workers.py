"""How many worker processes does one ``ntknas search`` start, and how long does it take?

Runs the same search command with a reference version of ntknas (a git revision of this
repository) and with the working tree, side by side, and prints worker processes and wall time.
Every Python process a command starts is counted by a ``sitecustomize`` hook that appends a line
to a file as the interpreter starts (spawned pool workers are fresh interpreters, and so is
multiprocessing's resource tracker, one per driver); the driver itself is not counted.

    python perf/search_workers.py --benchmark ../shared/data/nb201/nb201_accuracies.csv --reference 9cac626
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK = """import os
_log = os.environ.get("NTKNAS_PROCESS_LOG")
if _log:
    with open(_log, "a") as _handle:
        _handle.write(f"{os.getpid()}\\n")
"""


def search_command(benchmark: str, out: Path) -> list[str]:
    return ["search", "--dataset", "digits", "--benchmark", benchmark, "--protocol", "zc", "--batch-size", "8",
            "--proxy", "synflow", "--strategy", "rea", "--population", "4", "--candidates", "14", "--runs", "2",
            "--workers", "2", "--no-progress", "--out", str(out)]


def measure(source: Path, hook: Path, work: Path, name: str, benchmark: str) -> tuple[int, float]:
    log = work / f"{name}.processes"
    log.unlink(missing_ok=True)
    env = os.environ | {"PYTHONPATH": f"{hook}{os.pathsep}{source}", "NTKNAS_PROCESS_LOG": str(log)}
    code = "import sys; from ntknas.cli import main; sys.exit(main(sys.argv[1:]))"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, *search_command(benchmark, work / name)], env=env,
                            cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{name} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    processes = len(log.read_text().split()) - 1  # less the driver
    return processes, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmark", required=True)
    parser.add_argument("--reference", default="9cac626", help="git revision of the reference version")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ntknas-workers-"))
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    source = work / "reference-src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.reference, "ntknas"], capture_output=True, check=True)
    (work / "reference.tar").write_bytes(archive.stdout)
    with tarfile.open(work / "reference.tar") as tar:
        tar.extractall(source, filter="data")
    benchmark = str(Path(args.benchmark).resolve())
    print("ntknas " + " ".join(search_command("nb201.csv", Path("OUT"))))
    print(f"{'version':<24} {'processes started':>17} {'wall s':>8}   (pool workers + 1 resource tracker)")
    for name, code in ((f"reference {args.reference}", source), ("working tree", REPO)):
        processes, seconds = measure(code, hook, work, name.split()[0], benchmark)
        print(f"{name:<24} {processes:>17} {seconds:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
