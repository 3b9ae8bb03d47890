"""The numbers behind the README's "Results at a glance", read from the leaderboards.

usage: python scripts/glance.py [LEADERBOARD_DIR] [--top N]   (default results/leaderboard, 3)

Why: that README section is prose written by hand, and prose drifts from the tables it
summarises. This prints, per scenario, Popularity's NDCG@10, the top rows against it with
their paired intervals, which of them excludes zero, and the rows whose transfer gain over
the null twin is significant after Holm; a maintainer rewriting the section copies from
here, not from memory. Reads the leaderboard JSON only; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _pct(m: dict, key: str) -> str:
    return f"{m[key]:+.1f}% [{m[key + '_lo']:+.1f}, {m[key + '_hi']:+.1f}]"


def summary(board: dict, top: int) -> list[str]:
    models = board["models"]
    pop = next((m for m in models if m["model"] == "popularity"), None)
    out = [f"## {board['scenario']}" + ("  (SEMI-SYNTHETIC)" if board.get("semi_synthetic") else ""),
           board.get("setting_text", "")]
    if pop is not None:
        out.append(f"Popularity NDCG@10 {pop['NDCG@10']:.4f}")
    ranked = sorted((m for m in models if m["model"] != "popularity" and m.get("rel_NDCG@10") is not None),
                    key=lambda m: -m["rel_NDCG@10"])
    for m in ranked[:top]:
        above = " (interval excludes 0)" if m["rel_NDCG@10_lo"] > 0 else ""
        out.append(f"- {m['name']}: {_pct(m, 'rel_NDCG@10')} NDCG@10 vs Popularity{above}")
    alpha = board.get("alpha", 0.05)
    gains = [m for m in models if m.get("transfer_p_holm") is not None and m["transfer_p_holm"] < alpha
             and m.get("transfer_gain", 0) > 0]
    for m in sorted(gains, key=lambda m: -m["transfer_gain"]):
        out.append(f"- transfer: {m['name']} +{m['transfer_gain']:.4f} [{m['transfer_gain_lo']:+.4f}, "
                   f"{m['transfer_gain_hi']:+.4f}] over its twin (Holm p {m['transfer_p_holm']:.3g}); "
                   f"vs Popularity {m['rel_NDCG@10']:+.1f}%")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=Path("results/leaderboard"))
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args(argv)
    boards = sorted(args.folder.glob("*.json"))
    if not boards:
        print(f"error: no leaderboard JSON in {args.folder}", file=sys.stderr)
        return 1
    for path in boards:
        print("\n".join(summary(json.loads(path.read_text()), args.top)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
