import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_data import NB101_TABLE, NB201_ACCURACIES, NB201_SUPPLEMENTARY, shared_file  # noqa: E402


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker more than there are cores. Many tests wait (on the processes they
    start, on Ray, on a signal's effect) with a core idle; a third worker on 2 cores fills it
    (the suite took 253–271 s with 3 workers, 284–285 s with 2, 283 s with 4)."""
    return (os.cpu_count() or 1) + 1


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, each worker gets its share of the cores for torch's threads (and the
    processes its tests start inherit it): N workers with every core each would fight for them.

    Ray starts its worker processes at niceness 15, below everything else on the machine; beside
    the other test workers they then crawl (a task importing torch took 47 s beside two busy
    processes, 2.4 s at niceness 0), so the Ray instances the tests start run them at 0."""
    os.environ.setdefault("RAY_worker_niceness", "0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 0 and "PYTEST_XDIST_WORKER" in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


# The modules that take longest (``pytest --durations=0`` on 2 cores), longest first. `make test`
# runs a module per pytest-xdist worker in collection order (``--no-loadscope-reorder``), so these
# start first and the run ends on short modules instead of one core waiting on a long one. Only
# the order changes; a module missing here runs after them, in its usual place.
LONGEST_MODULES = (
    "test_ray.py",
    "test_faults.py",
    "test_study_resume.py",
    "test_study.py",
    "test_correlate.py",
    "test_store_compat.py",
    "test_study_cifar.py",
    "test_search.py",
    "test_matrix_free.py",
    "test_release.py",
    "test_newcomer_paths.py",
    "test_plugins.py",
    "test_track.py",
    "test_cli.py",
    "test_ray_reaper.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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
