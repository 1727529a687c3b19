"""Time the NTK engine against the slow reference loop, side by side in one process.

Cases: the largest NB201 cell (all 3×3 convs) and a small one, batch sizes 64/128/256, BatchNorm
in train and eval mode, the study variant (cell BatchNorm without running statistics: samples
coupled in both modes) and the benchmark variant (eval mode: samples independent). One line per
case: reference time, engine time, speed-up, the engine's strategy, peak memory of each, and the
kernels' relative difference. On a CPU, larger batches of a case are skipped once the reference
loop passes --max-reference-seconds.

    python perf/ntk_speed.py --device cpu
    python perf/ntk_speed.py --device cuda --batch-sizes 64,128,256

``--matrix-free`` prints instead, per case, the time per architecture of the exact kernel (the
engine) against ``--kernel matrix-free`` on the same network and batch: knas alone (one backward
pass) and the set knas,lga,fnorm,trace at ``--probes`` (default: the product's default).

    python perf/ntk_speed.py --matrix-free --cases study:train --batch-sizes 64,128,256
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reference_ntk import reference_ntk, relative_error  # noqa: E402

from ntknas.execution.runtime import device_name  # noqa: E402
from ntknas.kernel import compute_ntk  # noqa: E402
from ntknas.kernel.matrix_free import DEFAULT_ESTIMATOR, DEFAULT_PROBES, EstimatorSettings  # noqa: E402
from ntknas.kernel.precision import ieee_float32  # noqa: E402
from ntknas.scoring import run_metrics  # noqa: E402
from ntknas.spaces.nb201 import build_nb201  # noqa: E402

LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SMALL = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


class PeakMemory:
    """Peak memory of a block above its start: CUDA allocator peak, or sampled process RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * 4096

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss() - self._base)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()


def timed(device: torch.device, run: Callable[[], torch.Tensor]) -> tuple[float, float, torch.Tensor]:
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        result = run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    return seconds, memory.peak_bytes / 2**20, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="64,128,256")
    parser.add_argument("--cells", default="largest,small")
    parser.add_argument("--cases", default="study:train,study:eval,benchmark:eval", help="variant:bn_mode list")
    parser.add_argument("--chunk-size", type=int, default=None, help="engine rows at once (memory bound)")
    parser.add_argument("--max-reference-seconds", type=float, default=60.0)
    parser.add_argument("--matrix-free", action="store_true", help="exact kernel vs --kernel matrix-free rows")
    parser.add_argument("--probes", type=int, default=DEFAULT_PROBES, help="matrix-free estimator size")
    parser.add_argument("--estimator", default=DEFAULT_ESTIMATOR, help="matrix-free estimator (xnys or hutch++)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.matrix_free:
        matrix_free_rows(args, device)
        return
    print(f"# ntk_speed on {device_name(device)}, torch {torch.__version__}, chunk_size={args.chunk_size}")
    print(f"{'cell':<8}{'variant':<10}{'bn':<6}{'B':>5}{'reference s':>13}{'engine s':>10}{'speed-up':>10}"
          f"  {'strategy':<11}{'ref MiB':>9}{'eng MiB':>9}{'rel.diff':>10}")
    cells = {"largest": LARGEST, "small": SMALL}
    for cell in args.cells.split(","):
        for case in args.cases.split(","):
            variant, bn_mode = case.split(":")
            skip = False
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                if skip:
                    print(f"{cell:<8}{variant:<10}{bn_mode:<6}{batch:>5}  skipped: the reference loop took over "
                          f"{args.max_reference_seconds:.0f} s at a smaller batch")
                    continue
                torch.manual_seed(42)
                net = build_nb201(cells[cell], 10, variant=variant).to(device)
                inputs = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
                with ieee_float32():  # the arithmetic the engine uses, so time and error compare like with like
                    ref_s, ref_mb, ref_k = timed(device, lambda: reference_ntk(net, inputs, bn_mode))
                result_box: dict[str, object] = {}

                def engine() -> torch.Tensor:
                    result = compute_ntk(net, inputs, bn_mode=bn_mode, chunk_size=args.chunk_size)
                    result_box["strategy"] = result.strategy
                    return result.kernel

                eng_s, eng_mb, eng_k = timed(device, engine)
                print(f"{cell:<8}{variant:<10}{bn_mode:<6}{batch:>5}{ref_s:>13.2f}{eng_s:>10.2f}{ref_s / eng_s:>9.1f}x"
                      f"  {result_box['strategy']!s:<11}{ref_mb:>9.0f}{eng_mb:>9.0f}{relative_error(eng_k, ref_k):>10.1e}",
                      flush=True)
                del net, inputs, ref_k, eng_k
                if device.type != "cuda" and ref_s > args.max_reference_seconds:
                    skip = True


def matrix_free_rows(args: argparse.Namespace, device: torch.device) -> None:
    print(f"# exact vs matrix-free on {device_name(device)}, torch {torch.__version__}, {args.estimator} estimator, probes={args.probes}, "
          f"{torch.get_num_threads()} threads; seconds per architecture")
    print(f"{'cell':<8}{'variant':<10}{'bn':<6}{'B':>5}{'exact s':>10}{'knas mf s':>11}{'knas x':>8}"
          f"{'4 metrics mf s':>16}{'4 metrics x':>13}{'knas rel.diff':>15}")
    cells = {"largest": LARGEST, "small": SMALL}
    metrics = ("knas", "lga", "fnorm", "trace")
    settings = EstimatorSettings(probes=args.probes, estimator=args.estimator)
    for cell in args.cells.split(","):
        for case in args.cases.split(","):
            variant, bn_mode = case.split(":")
            skip = False
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                torch.manual_seed(42)
                net = build_nb201(cells[cell], 10, variant=variant).to(device)
                inputs = torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
                labels = (torch.arange(batch) % 10).to(device)

                def timed_run(names: tuple[str, ...], kernel: str) -> tuple[float, dict]:
                    start = time.perf_counter()
                    run = run_metrics(net, inputs, labels, names, bn_mode, kernel=kernel, estimator=settings)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    return time.perf_counter() - start, run.values

                knas_s, knas_values = timed_run(("knas",), "matrix-free")
                set_s, _ = timed_run(metrics, "matrix-free")
                if skip:
                    print(f"{cell:<8}{variant:<10}{bn_mode:<6}{batch:>5}{'skipped':>10}{knas_s:>11.2f}{'':>8}"
                          f"{set_s:>16.2f}{'':>13}  exact skipped: over {args.max_reference_seconds:.0f} s "
                          "at a smaller batch", flush=True)
                    continue
                exact_s, exact_values = timed_run(metrics, "exact")
                exact_knas = exact_values["knas"].value
                diff = abs(knas_values["knas"].value - exact_knas) / abs(exact_knas)
                print(f"{cell:<8}{variant:<10}{bn_mode:<6}{batch:>5}{exact_s:>10.2f}{knas_s:>11.2f}"
                      f"{exact_s / knas_s:>7.1f}x{set_s:>16.2f}{exact_s / set_s:>12.1f}x{diff:>15.1e}", flush=True)
                if device.type != "cuda" and exact_s > args.max_reference_seconds:
                    skip = True


if __name__ == "__main__":
    main()
