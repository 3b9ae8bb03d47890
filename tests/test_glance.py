"""scripts/glance.py: the README summary lines come from the leaderboard, ranked, with the significance marks it states."""

from __future__ import annotations

import sys

from benchmark.config import paths

sys.path.insert(0, str(paths.ROOT / "scripts"))
from glance import summary  # noqa: E402


def _row(model, name, rel, lo, hi, gain=None, p=None):
    return {"model": model, "name": name, "NDCG@10": 0.1, "rel_NDCG@10": rel, "rel_NDCG@10_lo": lo, "rel_NDCG@10_hi": hi,
            "transfer_gain": gain, "transfer_gain_lo": None if gain is None else gain - 0.01,
            "transfer_gain_hi": None if gain is None else gain + 0.01, "transfer_p_holm": p}


def test_summary_ranks_marks_and_lists_significant_transfer_only():
    board = {"scenario": "s", "setting_text": "full setting", "alpha": 0.05, "models": [
        _row("popularity", "Popularity", 0.0, 0.0, 0.0),
        _row("a", "A", 1.0, -2.0, 3.0, gain=0.02, p=0.2),
        _row("b", "B", 2.5, 0.5, 4.0, gain=0.015, p=0.01),
        _row("c", "C", -9.0, -12.0, -6.0, gain=0.03, p=0.001),
    ]}
    lines = summary(board, top=2)
    assert lines[:3] == ["## s", "full setting", "Popularity NDCG@10 0.1000"]
    assert lines[3] == "- B: +2.5% [+0.5, +4.0] NDCG@10 vs Popularity (interval excludes 0)"
    assert lines[4] == "- A: +1.0% [-2.0, +3.0] NDCG@10 vs Popularity"
    assert [line.split(":")[1].split(" over")[0] for line in lines[5:]] == [" C +0.0300 [+0.0200, +0.0400]", " B +0.0150 [+0.0050, +0.0250]"]
    assert len(lines) == 7
