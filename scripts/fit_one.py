"""Fit one spec on a built fold and print validation NDCG@10 vs Popularity and fit time.
usage: CDRBENCH_BUILT=<data dir> python scripts/fit_one.py SPEC_KEY [scenario] [min_support] [key=value ...]"""
import sys, time, copy, json
from pathlib import Path
import torch
torch.set_num_threads(1)
from benchmark.scenarios.protocol import load_fold, restrict_training
from benchmark.features.vectors import attach_features
from benchmark.evaluation.evaluate import evaluate_model
from benchmark.experiment import registry
key = sys.argv[1]
sc = sys.argv[2] if len(sys.argv) > 2 else "epinions-m2b"
ms = int(sys.argv[3]) if len(sys.argv) > 3 else 2
over = dict(a.split("=", 1) for a in sys.argv[4:])
over = {k: json.loads(v) for k, v in over.items()}
root = Path(__import__("os").environ.get("CDRBENCH_BUILT", "data"))
view, truth = load_fold(root / "scenarios" / sc, 0, 0, min_support=ms)
view = attach_features(view, root / "pretrain" / sc, root / "embed" / sc)
print(f"{sc}: users {view.n_users} train {len(view.train_users)} valid {len(view.valid_users)} catalog {view.n_catalog} source items",
      {d: len(v) for d, v in view.source_items.items()})
for k in (key, "popularity"):
    spec = registry.checked_spec(k)
    t0 = time.perf_counter()
    m = registry.build(spec, overrides=over if k == key else {}, seed=0)
    m.fit(restrict_training(copy.deepcopy(view), spec.train_cohort))
    t1 = time.perf_counter()
    pu, _ = evaluate_model(m, view.valid_users, truth.valid, [3, 10], view.popularity())
    print(f"{k}: valid NDCG@10 {pu['NDCG@10'].mean():.4f} P@3 {pu['P@3'].mean():.4f} fit {t1-t0:.1f}s info {m.fit_info}")
