import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="module")
def nb201_csv(shared_data) -> Path:
    """The real NAS-Bench-201 accuracy table."""
    return shared_data / "nb201" / "nb201_accuracies.csv"


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks gain nothing from threads, and on a busy machine threads cost a lot.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
