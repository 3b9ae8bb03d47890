"""Write ``submissions/example-popularity/``: a complete, valid leaderboard submission.

Why it exists: a submitter learns the format fastest from a working example, and the
pipeline can score it (``cdrbench submit submissions/example-popularity``) to prove the
submission path end to end. The lists are the Popularity model's top-20 on every fold
of every seed of a built scenario, so the scored entry must match the built-in
Popularity row of the leaderboard exactly.

Usage: ``python scripts/make_example_submission.py [--scenario douban-m2b] [--params params.yaml]``
(needs the scenario built: ``dvc repro`` up to the scenario stage).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmark import paths  # noqa: E402
from benchmark.schema import read_meta, scenario_hash  # noqa: E402
from benchmark.submit import make_predictions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="douban-m2b")
    ap.add_argument("--params", type=Path, default=paths.PARAMS)
    ap.add_argument("--out", type=Path, default=paths.SUBMISSIONS / "example-popularity")
    ap.add_argument("--scenario-root", type=Path, default=paths.SCENARIOS)
    args = ap.parse_args(argv)

    params = yaml.safe_load(args.params.read_text())
    sdir = args.scenario_root / args.scenario
    if not (sdir / "meta.json").exists():
        print(f"error: scenario {sdir} is not built; run `dvc repro` first", file=sys.stderr)
        return 1
    spec = params["scenarios"].get(args.scenario, {})
    seeds = [int(s) for s in params["protocol"]["seeds"]]
    kmax = max(int(k) for k in params["protocol"]["ks"])
    preds = make_predictions(sdir, seeds, int(spec.get("min_support", 1)), n_items=kmax)
    k = int(preds["fold"].nunique())
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "model": "Popularity (example submission)",
        "authors": ["cdrbench maintainers"],
        "code_url": "scripts/make_example_submission.py in this repository",
        "description": "Top-20 most popular catalog items of each fold's training users; the format reference for submissions.",
        "scenario": args.scenario,
        "scenario_hash": scenario_hash(sdir),
        "semi_synthetic": bool(read_meta(sdir).get("semi_synthetic")),
        "seeds": seeds,
        "folds": list(range(k)),
    }
    (args.out / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=True, allow_unicode=True))
    for stale in ("predictions.csv",):
        (args.out / stale).unlink(missing_ok=True)
    target = args.out / "predictions.parquet"
    preds.to_parquet(target, index=False, compression="zstd")
    size = target.stat().st_size
    print(f"wrote {args.out}: {len(preds)} rows, {preds['user'].nunique()} users, {size / 1024:.0f} KiB"
          + ("  (over 1 MB: generate it in the pipeline instead of committing it)" if size > 2**20 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
