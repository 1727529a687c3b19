"""The results page committed under docs/results/: a finished study, every figure it links present,
a few MB at most, every number of its verdicts the value cited in its verdicts.json, a label per
claim, and nothing of the machine that ran it (the page's summary.json and comparisons.json files
stay with the run; tests/test_study.py checks those citations on a study run in the suite).

A page written before verdicts carried labels is skipped, with the reason: it is republished by
the next run of its scale."""

import json
import re
from pathlib import Path

import pytest
from verdict_checks import check_verdicts_as_cited

REPO = Path(__file__).resolve().parents[1]
PUBLISHED = sorted((REPO / "docs" / "results").glob("*/results.md"))


def _labelled(page: Path) -> None:
    verdicts = json.loads((page.parent / "verdicts.json").read_text())
    if not all("label" in v for v in verdicts):
        pytest.skip(f"{page.relative_to(REPO)} predates verdict labels and paired statistics: it is republished "
                    "by the next run of its scale")


def test_a_results_page_is_published_and_the_readme_links_it():
    assert PUBLISHED, "no results page under docs/results/"
    readme_top = "\n".join((REPO / "README.md").read_text().splitlines()[:25])
    assert any(str(page.relative_to(REPO)) in readme_top for page in PUBLISHED)


@pytest.mark.parametrize("page", PUBLISHED, ids=lambda p: p.parent.name)
def test_the_published_page_is_a_finished_study_with_its_figures(page):
    text = page.read_text()
    assert "**status:** finished" in text
    assert "JPEG round trip" in text
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", text)
    assert len(figures) >= 4 and all((page.parent / f).is_file() for f in figures)
    size = sum(f.stat().st_size for f in page.parent.rglob("*") if f.is_file())
    assert size < 5 * 2**20


@pytest.mark.parametrize("page", PUBLISHED, ids=lambda p: p.parent.name)
def test_every_number_of_a_published_verdict_is_its_cited_value(page):
    _labelled(page)
    check_verdicts_as_cited(json.loads((page.parent / "verdicts.json").read_text()), page.read_text())


@pytest.mark.parametrize("page", PUBLISHED, ids=lambda p: p.parent.name)
def test_the_published_page_is_reproducible_from_the_repository(page):
    _labelled(page)
    for name in ("results.md", "verdicts.json"):
        text = (page.parent / name).read_text()
        assert not re.search(r"(^|[\s(`'\"=])/(work|home|tmp|Users|root|mnt|data)/", text), name
        assert "platform Linux-" not in text, name
    text = page.read_text()
    assert "--data-dir DATA" in text and "--benchmark BENCHMARK" in text and "docs/data.md" in text
    assert "## Summary" in text and text.count("- **label:** ") == 4
