"""The check both results-page tests share: each verdict sentence is on the page, and every number
it prints is the value its verdicts.json cites, rounded to the printed digits."""

import math
import re
from typing import Any

NUMBER = re.compile(r"(?<![\w.@-])[+-]?\d+(?:\.\d+)?(?!\w)")
"""A printed number: not part of a name (NAS-Bench-201, cifar10, lga@1ep)."""


def check_verdicts_as_cited(verdicts: list[dict[str, Any]], page_markdown: str) -> None:
    assert [v["claim"] for v in verdicts] == [1, 2, 3, 4]
    shown = page_markdown.replace("\\", "")
    for verdict in verdicts:
        text = verdict["text"]
        assert "No verdict" not in text
        assert "Verdict: " + text in shown
        assert verdict["label"] in ("supported", "contradicted", "inconclusive")
        printed = NUMBER.findall(text)
        assert printed, text
        assert printed == [n["text"] for n in verdict["numbers"]], text
        for number, value in zip(verdict["numbers"], printed):
            assert math.isclose(float(value), round(number["value"], number["digits"]), abs_tol=1e-9)
