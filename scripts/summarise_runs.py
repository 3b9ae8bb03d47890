"""Print mean fit time, P@3, HR@3 and NDCG@10 per model from run records (a quick look; the
report stage is the real output). Usage: python scripts/summarise_runs.py SCENARIO"""

import sys

from benchmark.evaluation.records import collect_runs

recs, users = collect_runs(scenario=sys.argv[1])
fit = recs.groupby("model")["fit_time_s"].mean().rename("fit_s")
m = users.groupby("model")[["P@3", "HR@3", "NDCG@10"]].mean()
print(m.join(fit).sort_values("NDCG@10", ascending=False).round(4).to_string())
