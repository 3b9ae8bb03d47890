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

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.config import paths  # noqa: E402
from benchmark.config.params import load_params  # noqa: E402
from benchmark.models.popularity import Popularity  # noqa: E402
from benchmark.scenarios.protocol import load_fold, load_scenario  # noqa: E402
from benchmark.scenarios.schema import read_meta, scenario_hash  # noqa: E402


def make_predictions(scenario_dir: Path, seeds: list[int], min_support: int = 1, n_items: int = 20, model=None,
                     folds: int | None = None) -> pd.DataFrame:
    """Ranked lists of a registered model on every fold, or the first ``folds`` (Popularity by default)."""
    tables = load_scenario(Path(scenario_dir))
    k = int(tables["folds"]["fold"].nunique())
    k = min(k, folds or k)  # the folds the setting evaluates (params evaluation.folds)
    parts = []
    for seed in seeds:
        for fold in range(k):
            view, _ = load_fold(Path(scenario_dir), int(seed), fold, min_support, tables=tables)
            m = (model() if model else Popularity()).fit(view)
            s = m.score(view.test_users)
            n = min(n_items, view.n_catalog)
            top = np.argsort(-s, axis=1, kind="stable")[:, :n]
            users = view.users[view.test_users].astype(str)
            parts.append(pd.DataFrame({"seed": int(seed), "fold": fold, "user": np.repeat(users, n),
                                       "item": view.catalog[top.ravel()].astype(str),
                                       "rank": np.tile(np.arange(1, n + 1), len(users))}))
    return pd.concat(parts, ignore_index=True)




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="douban-m2b")
    ap.add_argument("--params", type=Path, default=paths.PARAMS)
    ap.add_argument("--out", type=Path, default=paths.SUBMISSIONS / "example-popularity")
    ap.add_argument("--scenario-root", type=Path, default=paths.SCENARIOS)
    args = ap.parse_args(argv)

    params = load_params(args.params)
    sdir = args.scenario_root / args.scenario
    if not (sdir / "meta.json").exists():
        print(f"error: scenario {sdir} is not built; run `dvc repro` first", file=sys.stderr)
        return 1
    seeds = list(params.protocol.seeds)
    kmax = max(params.evaluation.ks)
    preds = make_predictions(sdir, seeds, params.scenario(args.scenario).min_support, n_items=kmax,
                             folds=params.evaluation.folds)
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
