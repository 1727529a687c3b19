"""The page itself: header (a command anyone can rerun from the repository, the machine without
its host details), a summary of every verdict, one section per claim, the scale and its
deviations; rendered as results.md, results.html and verdicts.json."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from ntknas.files import atomic_write_text
from ntknas.report.document import (
    Block,
    Facts,
    Heading,
    Paragraph,
    Table,
    render_html,
    render_markdown,
    report_folder,
)
from ntknas.report.results.citing import Verdict
from ntknas.report.results.claim1 import claim1
from ntknas.report.results.claim2 import claim2
from ntknas.report.results.claim3 import TRACK_SUMMARY, claim3
from ntknas.report.results.claim4 import claim4
from ntknas.report.results.common import fmt
from ntknas.report.results.comparisons import Comparisons
from ntknas.report.results.files import STUDY_FILE, StudyFiles, read_json

RESULTS_MD = "results.md"
RESULTS_HTML = "results.html"
VERDICTS_JSON = "verdicts.json"
FIGURES = "figures"
PART_ORDER = ("groundtruth", "init", "init-nb101", "trained", "track", "search")
DATA_PAGE = "docs/data.md"
PLACEHOLDERS = {
    "--data-dir": ("DATA", f"the dataset folder (CIFAR-10's python version, etc.): see {DATA_PAGE}"),
    "--benchmark": ("BENCHMARK", "the NAS-Bench-201 accuracy table: `ntknas export-benchmark` writes it from the "
                                 f"official NAS-Bench-201 file ({DATA_PAGE})"),
    "--proxy-table": ("PROXY_TABLE", "the table holding the oracle column the baselines search by: "
                                     f"`ntknas export-benchmark` writes it ({DATA_PAGE})"),
    "--nb101-benchmark": ("NB101_BENCHMARK", "NAS-Bench-101's nasbench_only108.tfrecord or a table exported from it "
                                             f"({DATA_PAGE})"),
    "--nb101-archs-file": ("NB101_ARCHS", f"the study's all_graphs.json order of NAS-Bench-101 cells ({DATA_PAGE})"),
    "--scale": ("SCALE_FILE", "the scale file (TOML) this study ran with; see docs/commands/study.md"),
    "--out": ("STUDY_DIR", "any new folder: the study writes its parts and this page there"),
}
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s/`'\"(),;\[\]]+/)+([^\s/`'\"(),;\[\]]*)")
"""An absolute POSIX path in free text; the page shows its last component only."""


def is_study_folder(path: str | Path) -> bool:
    return (Path(path) / STUDY_FILE).is_file()


def portable_text(text: str) -> str:
    """``text`` with every absolute path replaced by its file name: a published page names files,
    not the folders of the machine that ran it."""
    return ABSOLUTE_PATH.sub(lambda match: match.group(1) or "(a folder)", text)


def portable_command(command: str) -> tuple[str, list[tuple[str, str]]]:
    """The study's command with its file and folder arguments as placeholders, and what each is."""
    try:
        words = shlex.split(command)
    except ValueError:
        return portable_text(command), []
    shown: list[str] = []
    used: list[tuple[str, str]] = []
    pending = None
    for word in words:
        name, equals, value = word.partition("=")
        flag, argument = (name, value) if equals and name.startswith("--") else (pending, word)
        pending = None
        if flag in PLACEHOLDERS and _is_file_argument(flag, argument):
            placeholder, meaning = PLACEHOLDERS[flag]
            used.append((placeholder, meaning))
            shown.append(f"{name}={placeholder}" if equals else placeholder)
            continue
        shown.append(portable_text(word))
        if word.startswith("--") and not equals:
            pending = word
    return " ".join(shown), list(dict.fromkeys(used))


def _is_file_argument(flag: str, argument: str) -> bool:
    """Whether a flag's argument names a file or folder (``--scale cpu`` names a scale, not a file)."""
    return bool(argument) and not argument.startswith("-") and (flag != "--scale" or argument.endswith(".toml"))


def _header(files: StudyFiles) -> list[Block]:
    study = files.study
    machine = {k: v for k, v in (study.get("machine") or {}).items() if k != "platform"}
    platform = (study.get("machine") or {}).get("platform")
    if platform:
        machine["os"] = str(platform).split("-")[0]  # the system's name, not the host's kernel string
    parts = study.get("parts") or {}
    scale = study.get("scale") or {}
    total = total_seconds(parts)
    command, placeholders = portable_command(str(study.get("command", "not recorded")))
    inputs = study.get("inputs") or {}
    sources = [(f"{name.replace('_', ' ')} used", Path(str(value)).name, False)
               for name, value in inputs.items() if value and name != "data_dir"]
    facts = [
        ("command", command, True),
        *((placeholder, meaning, False) for placeholder, meaning in placeholders),
        *sources,
        ("machine", ", ".join(f"{k} {v}" for k, v in sorted(machine.items())) or "not recorded", False),
        ("status", "finished" if study.get("finished") else "not finished: rerun the command to continue", False),
    ]
    return [
        Paragraph(f"Scale {scale.get('title', '?')}. Every number below is read from the part folders of this study; "
                  "every verdict's numbers are cited in verdicts.json (paired comparisons in comparisons.json)."),
        Facts(tuple(facts)),
        Table(("part", "folder", "status", "wall time (s, summed over invocations)"),
              tuple((name, str(p.get("folder", name)), str(p.get("status", "?")), f"{float(p.get('seconds', 0.0)):.1f}")
                    for name, p in sorted(parts.items(), key=lambda item: _part_order(item[0])))
              + (("total", "", "", f"{total:.1f}"),),
              caption="Wall time per part"),
    ]


def total_seconds(parts: dict[str, dict[str, Any]]) -> float:
    """The study's wall time: its parts' seconds, each summed over the invocations that ran it."""
    return sum(float(p.get("seconds", 0.0)) for p in parts.values())


def _part_order(name: str) -> int:
    return PART_ORDER.index(name) if name in PART_ORDER else len(PART_ORDER)


def _summary(files: StudyFiles, verdicts: list[Verdict], comparisons: Comparisons) -> list[Block]:
    """Every verdict's label and the paired differences behind it, in one table."""
    rows: list[tuple[str, ...]] = []
    labels = {v.claim: v.label or "inconclusive" for v in verdicts}
    wanted = {1: ("claim1/",), 2: ("claim2/lga/train/", "claim2/lga-trained"), 4: ("claim4/",)}
    for claim in sorted(labels):
        if claim == 3:
            track = read_json(files.root / "track" / TRACK_SUMMARY) or {}
            whole = track.get("all") or {}
            if whole:
                ci = whole.get("kendall_ci") or [None, None]
                rows.append(("3", labels[3], f"τ of {track.get('movement') or 'no unsaturated quantity'} with accuracy",
                             str(whole.get("n")), f"{fmt(whole.get('kendall'))} [{fmt(ci[0])}, {fmt(ci[1])}]"))
            continue
        for record in comparisons.records:
            if str(record["id"]).startswith(wanted[claim]) and record["id"] != "claim4/oracle-bill":
                ci = record["delta_ci"]
                n = record.get("n", "/".join(map(str, record.get("runs", []))))
                rows.append((str(claim), labels[claim], f"{record['first']} − {record['second']}", str(n),
                             f"{fmt(record['delta'])} [{fmt(ci[0])}, {fmt(ci[1])}]"))
    if not rows:
        return []
    return [Heading("Summary", 2, anchor="summary"),
            Table(("claim", "label", "comparison", "n (cells or runs)", "Δ [95% CI]"), tuple(rows),
                  caption="Paired differences behind each verdict (τ in each metric's own ranking direction; "
                          "search: mean final accuracy)")]


def _scale_blocks(files: StudyFiles) -> list[Block]:
    scale = files.study.get("scale") or {}
    blocks: list[Block] = [Heading("Scale and deviations from the study's protocol", 2, anchor="scale")]
    if scale.get("rows"):
        blocks.append(Table(("setting", "value"), tuple(tuple(str(c) for c in r) for r in scale["rows"]),
                            caption=scale.get("title")))
    blocks.append(Paragraph("Deviations from the study's protocol (docs/protocol.md):"))
    blocks.append(Facts(tuple((str(n), str(line), False)
                              for n, line in enumerate(scale.get("deviations") or ["none"], 1))))
    others = {k: v for k, v in scale.items() if k not in ("title", "rows", "deviations", "estimate")}
    if others:
        blocks.append(Facts(tuple((str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False), False)
                                  for k, v in others.items())))
    parts = files.study.get("parts") or {}
    if files.study.get("finished") and parts:
        device = (files.study.get("machine") or {}).get("device", "the machine above")
        blocks.append(Paragraph(f"Time: measured on this run, {duration(total_seconds(parts))} in all on {device} "
                                "(the wall time per part is at the top of this page)."))
    if scale.get("estimate"):
        blocks.append(Paragraph("The scale's documented time: " + str(scale["estimate"])))
    return blocks


def duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{seconds:.0f} s" if seconds < 120 else f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 \
        else f"{minutes} min"


def _portable(block: Block) -> Block:
    if isinstance(block, Paragraph):
        return replace(block, text=portable_text(block.text))
    if isinstance(block, Facts):
        return replace(block, items=tuple((label, value if code else portable_text(value), code)
                                          for label, value, code in block.items))
    if isinstance(block, Table):
        return replace(block, rows=tuple(tuple(portable_text(c) for c in row) for row in block.rows),
                       caption=None if block.caption is None else portable_text(block.caption))
    return block


def write_results_page(study_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Write results.md, results.html, verdicts.json and the figures of a study folder.

    ``out`` defaults to the study folder itself; another folder (e.g. ``docs/results/...``) gets the
    same page with its figures beside it, so the page can be published without the stores. The
    paired comparisons the verdicts cite go to the study folder's comparisons.json.
    """
    root = Path(study_dir)
    files = StudyFiles.read(root)
    target = report_folder(root if out is None else Path(out))
    figures = target / FIGURES
    comparisons = Comparisons(files)
    verdicts: list[Verdict] = []
    sections: list[Block] = []
    for section in (lambda: claim1(files, figures, comparisons), lambda: claim2(files, figures, comparisons),
                    lambda: claim3(files, figures), lambda: claim4(files, figures, comparisons)):
        section_blocks, verdict = section()
        sections += section_blocks
        if verdict is not None:
            verdicts.append(verdict)
    comparisons.write()
    blocks = [_portable(b) for b in _header(files) + _summary(files, verdicts, comparisons) + sections
              + _scale_blocks(files)]
    title = "ntknas study — results"
    md_path, html_path, verdict_path = target / RESULTS_MD, target / RESULTS_HTML, target / VERDICTS_JSON
    atomic_write_text(verdict_path, json.dumps([v.record() for v in verdicts], indent=1) + "\n")
    atomic_write_text(md_path, render_markdown(title, blocks, target.resolve()))
    atomic_write_text(html_path, render_html(title, blocks))
    return [md_path, html_path, verdict_path]
