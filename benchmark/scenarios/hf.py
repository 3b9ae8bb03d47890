"""A built scenario as a Hugging Face ``datasets`` folder (DESIGN section 3, last paragraph).

Researchers load benchmark data with ``datasets.load_dataset``; this writes a folder
that it opens offline and that ``huggingface-cli upload`` can publish unchanged:

* ``data/<table>.parquet`` for the four canonical tables (interactions, items, users,
  folds), each a config of its own with one ``train`` split (the Hub's convention for
  a table that is not split);
* per (seed, fold) a config ``fold-s<seed>-f<fold>`` with the user split already
  applied: ``train`` = every interaction a model may learn from in that fold (all
  users' source rows, target rows of training users only), ``validation`` and
  ``test`` = the held-out target rows of the fold's validation and test users. The
  catalog rule (``min_support`` training positives) is *not* applied here: it is a
  protocol step (``benchmark.scenarios.protocol.build_fold``), stated in the README;
* ``README.md`` with the Hub's YAML front matter (``configs``, licence, tags) and a
  body giving provenance, the SEMI-SYNTHETIC flag where it applies, cohorts and the
  split rule.

Why files are copied rather than linked: a Hub upload needs real files, and the
parquet tables are small (the largest, epinions-m2b, is a few MB). The output is a pure
function of the scenario folder and its card, so rebuilding gives identical bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from benchmark.config.atomic import atomic_dir
from benchmark.scenarios.card import sample_banner
from benchmark.scenarios.schema import TARGET

TABLES = ("interactions", "items", "users", "folds")
SPLITS = ("train", "validation", "test")
_ROLE_OF_SPLIT = {"validation": "valid", "test": "test"}


def _write(df: pd.DataFrame, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.reset_index(drop=True).to_parquet(path, index=False, compression="zstd")
    return int(len(df))


def fold_frames(inter: pd.DataFrame, folds: pd.DataFrame, seed: int, fold: int) -> dict[str, pd.DataFrame]:
    """The three splits of one (seed, fold): train inputs and held-out target rows.

    Users absent from ``folds`` (not evaluable: e.g. target-only users) always train, as
    in the protocol; validation and test users keep their source rows in ``train``.
    """
    f = folds[(folds["seed"] == seed) & (folds["fold"] == fold)]
    held = {split: set(f.loc[f["role"] == role, "user"]) for split, role in _ROLE_OF_SPLIT.items()}
    cold = held["validation"] | held["test"]
    is_target = (inter["domain"] == TARGET).to_numpy()
    in_cold = inter["user"].isin(cold).to_numpy()
    out = {"train": inter[~(is_target & in_cold)]}
    for split in ("validation", "test"):
        out[split] = inter[is_target & inter["user"].isin(held[split]).to_numpy()]
    return out


def _front_matter(name: str, card: dict, configs: list[dict]) -> str:
    licences = sorted({s.get("licence", "") for s in card.get("sources", [])})
    meta = {
        "pretty_name": f"cdrbench {name}",
        "license": "other",
        "license_name": "per-source (see below)",
        "license_details": "; ".join(x for x in licences if x) or "see datasets/sources.tsv",
        "task_categories": ["other"],
        "tags": ["recommender-systems", "cross-domain", "cold-start", "cdrbench"]
        + (["semi-synthetic"] if card.get("semi_synthetic") else []),
        "configs": configs,
    }
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _body(name: str, card: dict, counts: dict[str, dict[str, int]]) -> str:
    L = []
    if card.get("semi_synthetic"):
        L += [f"**{card.get('banner') or 'SEMI-SYNTHETIC'}**", ""]
    if sample_banner(card.get("user_sample")):  # a CI sample must not pass for the full data here either
        L += [f"**{sample_banner(card['user_sample'])}**", ""]
    L += [f"# cdrbench scenario `{name}`", ""]
    L += [f"Cross-domain cold-start recommendation: source domains {', '.join(card['source_domains'])} -> "
          f"target domain `{card['target_domain']}`. Built by the `scenario` stage of cdrbench from public raw "
          "files (checksums in `datasets/sources.tsv`); the dataset card of the benchmark "
          f"(`datasets/{name}/CARD.md`) has the full recipe. "
          f"{'SEMI-SYNTHETIC: composite users joined by a seeded linkage; not evidence about real users.' if card.get('semi_synthetic') else 'Real users.'}",
          ""]
    L += ["## Load", "", "```python", "import datasets",
          f"inter = datasets.load_dataset(\"PATH/TO/{name}\", \"interactions\")[\"train\"]",
          f"fold = datasets.load_dataset(\"PATH/TO/{name}\", \"fold-s0-f0\")  # train / validation / test", "```", ""]
    L += ["## Configs", "", "| config | split | rows |", "|---|---|---|"]
    for cfg, splits in counts.items():
        for split, n in splits.items():
            L.append(f"| {cfg} | {split} | {n} |")
    L += ["", "## Split rule", "",
          "Users are split, not interactions. In `fold-s<seed>-f<fold>`, `validation` and `test` hold the "
          f"`{card['target_domain']}` rows of that fold's validation and test users (their held-out truth); `train` "
          "holds everything a model may learn from: every user's source rows and the target rows of the other "
          f"users. The fold's target catalog is the target items with at least {card['min_support']} positive "
          f"training row(s) (value >= {card['positive_threshold']}); test users without a positive in it are "
          "dropped by the benchmark's evaluator. This rule is not pre-applied here.", ""]
    if card.get("modalities"):  # a schema role holding another kind of item (multi: Movies as `podcast`)
        L += ["## Modalities (schema role: what it really holds)", ""]
        L += [f"- {role}: {what}" for role, what in card["modalities"].items()] + [""]
    L += ["## Cohorts (users with each set of source histories)", ""]
    L += [f"- {k}: {v} users ({card.get('cohorts_evaluable', {}).get(k, 0)} evaluable)" for k, v in sorted(card["cohorts"].items())]
    L += ["", "## Provenance and licences", ""]
    L += [f"- `{s['source']}` ({s.get('upstream', '')}): {s.get('licence', '')}" for s in card.get("sources", [])]
    L += ["", f"Scenario hash: `{card.get('scenario_hash', '')}`.", ""]
    return "\n".join(L)


def export_hf(scenario_dir: Path, card_json: Path, out_dir: Path) -> dict:
    """Write the Hugging Face folder of one built scenario into ``out_dir`` (replaced atomically); return row counts."""
    scenario_dir, out_dir = Path(scenario_dir), Path(out_dir)
    for t in TABLES:
        if not (scenario_dir / f"{t}.parquet").exists():
            raise FileNotFoundError(f"{scenario_dir}: no {t}.parquet; build it first with `cdrbench scenario`")
    card = json.loads(Path(card_json).read_text())
    name = card["name"]
    frames = {t: pd.read_parquet(scenario_dir / f"{t}.parquet") for t in TABLES}
    configs, counts = [], {}
    with atomic_dir(out_dir) as tmp:
        for t in TABLES:
            rel = f"data/{t}.parquet"
            counts[t] = {"train": _write(frames[t], tmp / rel)}
            configs.append({"config_name": t, "data_files": [{"split": "train", "path": rel}]})
        folds = frames["folds"]
        for seed, fold in sorted({(int(s), int(f)) for s, f in zip(folds["seed"], folds["fold"])}):
            cfg = f"fold-s{seed}-f{fold}"
            parts = fold_frames(frames["interactions"], folds, seed, fold)
            files, counts[cfg] = [], {}
            for split in SPLITS:
                rel = f"data/{cfg}/{split}.parquet"
                counts[cfg][split] = _write(parts[split], tmp / rel)
                files.append({"split": split, "path": rel})
            configs.append({"config_name": cfg, "data_files": files})
        (tmp / "README.md").write_text(_front_matter(name, card, configs) + "\n" + _body(name, card, counts))
    return {"name": name, "dir": str(out_dir), "rows": counts}
