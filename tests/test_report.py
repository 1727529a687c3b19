"""``ntknas report``: HTML and Markdown from stored correlate and track runs; bad input."""

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fixtures_data import PNG_SIGNATURE, write_cifar10
from fixtures_data import TINY_NB201 as TINY

from ntknas.cli import main
from ntknas.errors import DataError
from ntknas.report.document import write_report
from ntknas.runs.correlate import CorrelateConfig, run_correlate
from ntknas.runs.track import TrackConfig, run_track

VOID = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "wbr", "source"}
HOSTILE = "ntknas correlate --out '<script>alert(1)</script> & \"x\"'"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("report")
    cifar = write_cifar10(root / "data", per_class=4).parent
    benchmark = str(shared_data / "nb201" / "nb201_accuracies.csv")
    correlate_dir = root / "correlate run"
    run_correlate(
        CorrelateConfig(dataset="cifar10", data_dir=str(cifar), benchmark=benchmark, archs="0:3", batch_size=6,
                        out=str(correlate_dir), network_options=TINY, metrics=("knas", "lga")),
        command_line=HOSTILE,
    )
    track_dir = root / "track"
    run_track(
        TrackConfig(dataset="cifar10", data_dir=str(cifar), benchmark=benchmark, archs="1,6111", epochs=1,
                    out=str(track_dir), network_options=TINY, train_batch_size=16),
        command_line="ntknas track --archs 1,6111 --epochs 1",
    )
    return correlate_dir, track_dir


class _StrictParser(HTMLParser):
    """Collects tables, images and text; fails on tags closed out of order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.headers: list[str] = []
        self.text: list[str] = []
        self._in_th = False
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in_script = True
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        if tag == "th":
            self._in_th = True
            self.headers.append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._in_th:
            self.headers[-1] += data


def _parse(text: str) -> _StrictParser:
    parser = _StrictParser()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    return parser


def test_report_of_correlate_and_track_runs(runs, tmp_path):
    correlate_dir, track_dir = runs
    out = tmp_path / "out"
    files = write_report([correlate_dir, track_dir], out)
    page = files.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    parsed = _parse(page)
    assert not parsed._in_script, "text from the store was rendered as markup"
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;" in page
    text = "".join(parsed.text)
    assert HOSTILE in text  # escaped, but shown exactly
    # correlate: summary table with signed correlations and directions, counts and wall time
    for header in ("metric", "BN", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "ranks by"):
        assert header in parsed.headers
    assert "architectures measured: 3" in text and "total wall time:" in text
    assert "signed" in text
    # track: one row per architecture with the final epoch's quantities
    for header in ("index", "arch", "accuracy", "rel_diff", "rel_diff_ref", "kernel_corr", "kernel_cos", "train_loss", "param_norm"):
        assert header in parsed.headers
    assert "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|" in text  # index 1's arch string
    assert "ntknas track --archs 1,6111 --epochs 1" in text
    assert "torch" in text and "model and training seed 42" in text
    # every image is an embedded PNG: 2 correlate scatters + 8 tracking curves
    assert len(parsed.images) == 10
    for src in parsed.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):], validate=True)[:8] == PNG_SIGNATURE
    # Markdown: same tables, relative links that resolve to the run folders' PNGs
    markdown = files.markdown.read_text(encoding="utf-8")
    assert "| metric | BN | epochs |" in markdown
    assert "\\|nor\\_conv\\_3x3\\~0\\|" in markdown  # pipes escaped inside table cells
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(links) == 10
    for link in links:
        target = (out / link.replace("%20", " ")).resolve()
        assert target.is_file() and target.read_bytes()[:8] == PNG_SIGNATURE, link
        assert not Path(link).is_absolute()


def test_report_defaults_to_the_first_run_folder_via_cli(runs, capsys):
    _, track_dir = runs
    assert main(["report", str(track_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    page = (track_dir / "report.html").read_text(encoding="utf-8")
    _parse(page)
    assert "Final epoch per architecture" in page
    assert "](track_rel_diff.png)" in (track_dir / "report.md").read_text(encoding="utf-8")


def test_report_bad_input_is_one_line(runs, tmp_path, capsys):
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "has no results.sqlite"),
        ([str(runs[0]), str(tmp_path / "missing")], "does not exist"),
    ]
    for arguments, message in cases:
        assert main(["report", *arguments]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "results.sqlite").exists()
    with pytest.raises(DataError, match="no run folder"):
        write_report([])


def test_the_summary_says_why_a_correlation_is_missing(tmp_path, capsys, nb201_csv):
    """Issue 22.10: --init zero leaves a constant knas and no LGA; summary.md says so and why."""
    from ntknas.cli import main

    benchmark = nb201_csv
    out = tmp_path / "zero"
    assert main(["correlate", "--dataset", "digits", "--benchmark", str(benchmark), "--archs", "0:4",
                 "--batch-size", "4", "--bn", "train", "--metrics", "knas,lga", "--init", "zero",
                 "--out", str(out), "--no-progress"]) == 0
    markdown = (out / "summary.md").read_text()
    assert "- knas, BN train, epoch 0: all 4 values equal 0: a constant ranks nothing" in markdown
    assert "- lga, BN train, epoch 0: 4 missing: LGA is undefined for a constant kernel (4)" in markdown
    records = json.loads((out / "summary.json").read_text())
    assert {r["metric"]: r["missing_reasons"] for r in records}["lga"] == {"LGA is undefined for a constant kernel": 4}


def test_the_claim_2_figure_of_too_few_trained_cells_says_so_without_a_warning(tmp_path):
    """Two trained cells (a scale file's trained_archs = 2) give no τ: the figure says why, and
    matplotlib is not asked for a legend of nothing (its warning reached the terminal)."""
    import warnings

    from ntknas.report.results.claim2 import plot_tau_vs_epochs

    records = [{"metric": "lga", "bn": bn, "train_epochs": stage, "kendall": None, "kendall_ci": [None, None]}
               for bn in ("train", "eval") for stage in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = plot_tau_vs_epochs(tmp_path / "claim2.png", records)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
