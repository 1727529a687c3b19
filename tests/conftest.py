import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import NB101_TABLE, NB201_ACCURACIES, NB201_SUPPLEMENTARY, shared_file  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its share of the cores for torch's threads (and the
    processes its tests start inherit it): N workers with every core each would fight for them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 0 and "PYTEST_XDIST_WORKER" in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (skips, or fails under NTKNAS_REQUIRE_SHARED=1, when it is absent)."""
    return shared_file("")


@pytest.fixture(scope="session")
def nb201_csv() -> Path:
    """The real NAS-Bench-201 accuracy table."""
    return shared_file(NB201_ACCURACIES)


@pytest.fixture(scope="session")
def nb201_supplementary_csv() -> Path:
    """The real NAS-Bench-201 supplementary columns (published proxies, the tracking bands)."""
    return shared_file(NB201_SUPPLEMENTARY)


@pytest.fixture(scope="session")
def nb101_npz() -> Path:
    """The real NAS-Bench-101 table of all 423,624 cells."""
    return shared_file(NB101_TABLE)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks gain nothing from threads, and on a busy machine threads cost a lot.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
