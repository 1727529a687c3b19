"""``ntknas report``: one HTML page and one Markdown file describing finished run folders.

The report is built as a short list of blocks (headings, paragraphs, key/value lists, tables,
code, images) and rendered twice: ``report.html`` is self-contained (PNG plots embedded as
base64 data URIs, every text escaped) and ``report.md`` links the same plots by relative path.
Each run folder's kind (correlate, track or search) is read from its store.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntknas.errors import DataError
from ntknas.files import atomic_write_text, output_folder
from ntknas.store import STORE_FILE, ResultStore
from ntknas.store.faults import os_fault

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RUN_KINDS = ("correlate", "track", "search")


# ----------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Facts:
    """A bullet list of ``label: value``; ``code`` values are shown verbatim (commands)."""

    items: tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str | None = None


@dataclass(frozen=True)
class Image:
    path: Path
    caption: str


Block = Heading | Paragraph | Facts | Table | Image


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    runs: list[Path] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #bbb; padding-bottom: .15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
td.arch { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em; word-break: break-all; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; background: #f4f4f4; padding: 0 .2em;
       word-break: break-all; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .3em; }
""".strip()


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """A complete, self-contained HTML5 page."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>\n{_CSS}\n</style>",
        "</head>",
        "<body>",
        f"<h1>{_e(title)}</h1>",
    ]
    parts += [_block_html(block) for block in blocks]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _block_html(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{_e(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{_e(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_e(block.text)}</p>"
    if isinstance(block, Facts):
        items = []
        for label, value, code in block.items:
            shown = f"<code>{_e(value)}</code>" if code else _e(value)
            items.append(f"<li><strong>{_e(label)}:</strong> {shown}</li>")
        return "<ul>\n" + "\n".join(items) + "\n</ul>"
    if isinstance(block, Table):
        lines = ["<table>"]
        if block.caption:
            lines.append(f"<caption>{_e(block.caption)}</caption>")
        lines.append("<thead><tr>" + "".join(f'<th scope="col">{_e(h)}</th>' for h in block.headers) + "</tr></thead>")
        lines.append("<tbody>")
        for row in block.rows:
            cells = "".join(
                f'<td class="arch">{_e(c)}</td>' if h == "arch" else f"<td>{_e(c)}</td>"
                for h, c in zip(block.headers, row)
            )
            lines.append(f"<tr>{cells}</tr>")
        lines.append("</tbody>")
        lines.append("</table>")
        return "\n".join(lines)
    if isinstance(block, Image):
        data = block.path.read_bytes()
        encoded = base64.b64encode(data).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(block.caption)}">'
            f"<figcaption>{_e(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_markdown(title: str, blocks: Sequence[Block], base: Path) -> str:
    """The same content as Markdown; images are linked relative to ``base`` (the report's folder)."""
    parts = [f"# {_md_text(title)}", ""]
    for block in blocks:
        parts.append(_block_markdown(block, base))
        parts.append("")
    return "\n".join(parts)


def _md_text(text: str) -> str:
    # Escape what Markdown would read as markup in free text (arch strings hold | and ~).
    out = str(text).replace("\\", "\\\\")
    for char in "`*_[]<>|~#":
        out = out.replace(char, "\\" + char)
    return out


def _md_code(text: str) -> str:
    ticks = "`"
    while ticks in text:
        ticks += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_cell(text: str) -> str:
    return _md_text(text).replace("\n", " ")


def _block_markdown(block: Block, base: Path) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + _md_text(block.text)
    if isinstance(block, Paragraph):
        return _md_text(block.text)
    if isinstance(block, Facts):
        return "\n".join(
            f"- **{_md_text(label)}:** " + (_md_code(value) if code else _md_text(value))
            for label, value, code in block.items
        )
    if isinstance(block, Table):
        lines = [f"**{_md_text(block.caption)}**", ""] if block.caption else []
        lines.append("| " + " | ".join(_md_cell(h) for h in block.headers) + " |")
        lines.append("|" + "---|" * len(block.headers))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Image):
        link = Path(os.path.relpath(block.path.resolve(), base.resolve())).as_posix()
        return f"![{_md_text(block.caption)}]({link.replace(' ', '%20').replace(')', '%29')})"
    raise TypeError(f"unknown report block {type(block).__name__}")


# ----------------------------------------------------------------------------------------------
# Run folders
# ----------------------------------------------------------------------------------------------


def open_run(run_dir: str | Path) -> ResultStore:
    """The store of an existing run folder; refuses folders that hold no run (creates nothing)."""
    path = Path(run_dir)
    if not path.exists():
        raise DataError(f"run folder {path} does not exist: pass a folder written by ntknas correlate, track or search")
    if not path.is_dir():
        raise DataError(f"{path} is not a folder: pass a run folder written by ntknas correlate, track or search")
    if not (path / STORE_FILE).is_file():
        raise DataError(
            f"{path} has no {STORE_FILE}: it is not a run folder; pass the --out folder of ntknas correlate, track or search"
        )
    store = ResultStore(path, readonly=True)  # reads only: no lock, works on a read-only folder
    if store.get_meta("kind") not in RUN_KINDS:
        kind = store.get_meta("kind")
        store.close()
        raise DataError(
            f"{path / STORE_FILE} holds no correlate, track or search run (kind {kind!r}): "
            "rerun the command that writes this folder"
        )
    return store


def _png(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:
        return False


def _images(paths: Sequence[Path], caption: Any) -> list[Block]:
    return [Image(p, caption(p)) for p in paths if p.is_file() and _png(p)]


def _run_header(store: ResultStore, number: int, kind: str) -> list[Block]:
    run_dir = store.run_dir
    environment = store.get_meta("environment") or {}
    facts = [
        ("folder", str(run_dir.resolve()), True),
        ("command", str(store.get_meta("last_command") or "not recorded"), True),
        ("environment", ", ".join(f"{k} {v}" for k, v in sorted(environment.items())) or "not recorded", False),
    ]
    return [Heading(f"Run {number}: {run_dir.name} ({kind})", 2, anchor=f"run{number}"), Facts(tuple(facts))]


def _settings_table(settings: dict[str, Any]) -> Table:
    rows = tuple(
        (key, value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        for key, value in sorted(settings.items())
    )
    return Table(("setting", "value"), rows, caption="Settings (seeds included)")


def _correlate_blocks(store: ResultStore) -> list[Block]:
    from ntknas.report.correlation import SUMMARY_HEADERS, SUMMARY_JSON, summary_rows

    run_dir = store.run_dir
    settings = store.get_meta("settings") or {}
    items = store.items()
    archs = {item.arch for item in items}
    total = sum(item.seconds for item in items)
    blocks: list[Block] = [
        Facts((
            ("architectures measured", str(len(archs)), False),
            ("work items", str(len(items)), False),
            ("total wall time", f"{total:.1f} s (sum of the stored item times)", False),
            ("model and data seed", str(settings.get("seed", "?")), False),
        )),
        _settings_table(settings),
    ]
    summary_path = run_dir / SUMMARY_JSON
    if summary_path.is_file():
        records = json.loads(summary_path.read_text())
        targets = sorted({str(r["target"]) for r in records if r.get("target")})
        blocks.insert(1, Facts((("accuracy (target column)", ", ".join(targets) or "not recorded", True),)))
        lower = sorted({r["metric"] for r in records if r.get("higher_is_better") is False})
        note = (
            "Correlations are signed (never absolute values): a metric that ranks by 'higher' is good "
            "when its correlation with accuracy is positive; one that ranks by 'lower'"
            + (f" ({', '.join(lower)})" if lower else "")
            + " is good when it is negative. Brackets are bootstrap 95% confidence intervals."
        )
        heading = f"Rank correlation with {targets[0]}" if len(targets) == 1 else "Rank correlation with accuracy"
        blocks += [Heading(heading, 3), Paragraph(note)]
        blocks.append(Table(SUMMARY_HEADERS, tuple(summary_rows(records)), caption="Kendall τ and Spearman ρ per metric"))
    else:
        blocks.append(Paragraph(f"No {SUMMARY_JSON} in this folder: rerun the correlate command to write it."))
    plots = _images(sorted(run_dir.glob("scatter_*.png")), lambda p: f"accuracy vs {p.stem[len('scatter_'):]}")
    plots += _images([run_dir / "kendall_vs_epochs.png"], lambda p: "Kendall τ against training epochs")
    if plots:
        blocks += [Heading("Plots", 3), *plots]
    return blocks


def _track_blocks(store: ResultStore) -> list[Block]:
    from ntknas.report.tracking import QUANTITIES, TITLES, final_table, load_tracking, plot_file

    run_dir = store.run_dir
    settings = store.get_meta("settings") or {}
    selection = store.get_meta("track_selection") or {}
    series = load_tracking(store)
    total = sum(s.seconds for s in series)
    seeds = (
        f"model and training seed {settings.get('model_seed', '?')}, data seed {settings.get('data_seed', '?')}"
        + (f", sample seed {selection['sample_seed']}" if selection.get("sample") else "")
    )
    blocks: list[Block] = [
        Facts((
            ("architectures", str(len(series)), False),
            ("total wall time", f"{total:.1f} s (training plus kernels, summed over architectures)", False),
            ("seeds", seeds, False),
            ("selection (last command)", json.dumps(selection, sort_keys=True), True),
        )),
        _settings_table(settings),
        Heading("Final epoch per architecture", 3),
        Paragraph(
            "rel_diff = ‖Θₜ − Θ₀‖_F / ‖Θ₀‖_F; rel_diff_ref = ‖ |Θ₀ − Θₜ| ⊘ (|Θ₀| + 1e-4) ‖_F (the reference "
            "implementation's element-wise form, dominated by near-zero entries); norm_ratio = ‖Θₜ‖_F / ‖Θ₀‖_F "
            "(below 1: the kernel shrank, which pins rel_diff near 1); kernel_corr and kernel_cos "
            "compare Θₜ with Θ₀ (1 = unchanged). Θ is the full per-logit NTK in eval mode over all parameters."
        ),
    ]
    headers, rows = final_table(series)
    blocks.append(Table(tuple(headers), tuple(tuple(r) for r in rows)))
    plots = _images([run_dir / plot_file(q) for q in QUANTITIES], lambda p: TITLES[p.stem[len("track_"):]])
    if plots:
        blocks += [Heading("Curves", 3), *plots]
    return blocks


def _search_blocks(store: ResultStore) -> list[Block]:
    from ntknas.report.search import (
        SEARCH_HEADERS,
        SEARCH_PLOT,
        SUMMARY_JSON,
        search_facts,
        search_table_rows,
    )

    run_dir = store.run_dir
    summary_path = run_dir / SUMMARY_JSON
    blocks: list[Block] = [_settings_table(store.get_meta("settings") or {})]
    if not summary_path.is_file():
        return blocks + [Paragraph(f"No {SUMMARY_JSON} in this folder: rerun the search command to write it.")]
    summary = json.loads(summary_path.read_text())
    blocks = [Facts(tuple((label, value, False) for label, value in search_facts(summary))), *blocks]
    blocks += [
        Heading("Search results", 3),
        Paragraph(
            "Accuracy is the reported target of each run's final choice, which the proxy alone made; ± is "
            "the sample standard deviation over runs; regret is the best in the space minus it; cost is "
            "the device seconds of proxy evaluation and training a run spent (mean per run)."
        ),
        Table(SEARCH_HEADERS, tuple(search_table_rows(summary["searches"])), caption="Per strategy and proxy"),
    ]
    plots = _images([run_dir / SEARCH_PLOT], lambda p: "best-so-far reported accuracy against steps and cost")
    if plots:
        blocks += [Heading("Plots", 3), *plots]
    return blocks


def _search_comparison(run_dirs: Sequence[Path]) -> list[Block]:
    """Every search of several search folders in one table (e.g. proxy-guided beside oracle)."""
    from ntknas.report.search import SEARCH_HEADERS, SUMMARY_JSON, search_table_rows

    rows: list[tuple[str, ...]] = []
    targets = set()
    for run_dir in run_dirs:
        path = run_dir / SUMMARY_JSON
        if not path.is_file():
            continue
        summary = json.loads(path.read_text())
        targets.add(f"{summary['spec']['target']} ({summary['spec']['dataset']})")
        rows += [(run_dir.name, *row) for row in search_table_rows(summary["searches"])]
    if not rows:
        return []
    note = "Reported accuracy: " + ", ".join(sorted(targets)) + (
        " — the folders report DIFFERENT targets, so their rows do not compare." if len(targets) > 1 else "."
    )
    return [
        Heading("Search comparison", 2, anchor="search-comparison"),
        Paragraph(note),
        Table(("folder", *SEARCH_HEADERS), tuple(rows), caption="Every search of the search folders"),
    ]


def report_folder(path: Path) -> Path:
    """Create a report's output folder; a failure is a machine fault like any other command's
    (exit 4), not the input's."""
    try:
        return output_folder(path)
    except OSError as error:
        raise os_fault(error, path, kept=False) from None


def write_report(run_dirs: Sequence[str | Path], out: str | Path | None = None) -> ReportFiles:
    """Write ``report.html`` and ``report.md`` for any mix of correlate, track and search run folders.

    ``out`` defaults to the first run folder.
    """
    if not run_dirs:
        raise DataError("no run folder given: pass one or more folders written by ntknas correlate, track or search")
    from ntknas.report.results import is_study_folder, write_results_page

    studies = [d for d in run_dirs if is_study_folder(d)]
    if studies:  # a study folder's report is its results page, in the folder or in --out
        if len(run_dirs) > 1:
            raise DataError(f"{studies[0]} is a study folder: report it alone (ntknas report {studies[0]} [--out DIR]); "
                            "its part folders can be reported together with other run folders")
        markdown, page = write_results_page(run_dirs[0], out)[:2]
        return ReportFiles(page, markdown, [Path(run_dirs[0])])
    stores = []
    try:
        for run_dir in run_dirs:
            stores.append(open_run(run_dir))
        out_dir = report_folder(Path(out) if out is not None else Path(run_dirs[0]))
        title = "ntknas report"
        blocks: list[Block] = [
            Paragraph(
                f"Generated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} from {len(stores)} run folder(s): "
                + ", ".join(str(s.run_dir) for s in stores) + "."
            )
        ]
        for number, store in enumerate(stores, start=1):
            kind = store.get_meta("kind")
            blocks += _run_header(store, number, kind)
            render = {"correlate": _correlate_blocks, "track": _track_blocks, "search": _search_blocks}[kind]
            blocks += render(store)
        searches = [s.run_dir for s in stores if s.get_meta("kind") == "search"]
        if len(searches) > 1:
            blocks += _search_comparison(searches)
    finally:
        for store in stores:
            store.close()
    html_path = out_dir / REPORT_HTML
    md_path = out_dir / REPORT_MD
    for path, text in ((html_path, render_html(title, blocks)), (md_path, render_markdown(title, blocks, out_dir.resolve()))):
        try:
            atomic_write_text(path, text)
        except OSError as error:
            raise os_fault(error, path, kept=False) from None
    return ReportFiles(html_path, md_path, [Path(d) for d in run_dirs])
