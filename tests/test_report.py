"""The report stage on fake run records: completeness, sane statistics, not-available
tables, computed findings that follow the data, the transfer gain over the null twin,
and byte-identical rebuilds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.report import build_report, figure_paths
from fake_runs import fake_params, write_fake_runs

REAL = {"popularity": 0.0, "collopop-artist": 0.35, "map2t-music": 0.7, "itemknn": 0.05, "bpr": -0.6,
        "external-mine": 0.4}
LINKED = {"popularity": 0.0, "collopop-artist": 0.35, "map2t-full": 0.8, "map2t-concat": 0.45, "map2t-imputed_p": 0.5,
          "map2t-music-book": 0.2, "map2t-music-book-podcast": 0.6, "collopop-podcast": 0.2}
NULL = {"popularity": 0.0, "map2t-full": 0.0, "collopop-artist": 0.0}
SCEN = {"fake-real": {"builder": "real"}, "fake-linked": {"builder": "linked", "rho": 1.0},
        "fake-null": {"builder": "linked", "rho": 0.0}, "fake-empty": {"builder": "real"}}
# Skills on fake-real's null twin (fold 0 only, as in CI): MAP-2T(music) loses most of its
# skill without its users' own histories (a transfer gain), the others keep theirs (none).
TWIN = {**{m: v for m, v in REAL.items() if m != "external-mine"}, "map2t-music": 0.1}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    write_fake_runs(runs, "fake-real", REAL, external=("external-mine",))
    write_fake_runs(runs, "fake-linked", LINKED, semi=True)
    write_fake_runs(runs, "fake-null", NULL, semi=True)
    twins = root / "twins"
    write_fake_runs(twins, "fake-real", TWIN, folds=(0,), twin=True)
    params = fake_params(SCEN)
    out = root / "out"
    written = build_report(runs, out, params, twins_root=twins)
    return {"root": root, "runs": runs, "twins": twins, "out": out, "params": params, "written": written}


def board(built, scenario) -> pd.DataFrame:
    return pd.read_csv(built["out"] / "leaderboard" / f"{scenario}.csv")


def test_leaderboard_lists_every_model_once(built):
    for scen, models in (("fake-real", REAL), ("fake-linked", LINKED), ("fake-null", NULL)):
        df = board(built, scen)
        assert sorted(df["model"]) == sorted(models)
        assert set(built["written"]["leaderboard"]) >= {built["out"] / "leaderboard" / f"{scen}.{e}" for e in ("md", "csv", "json")}
    md = (built["out"] / "leaderboard" / "fake-real.md").read_text()
    assert "mine (external)" in md and "SEMI-SYNTHETIC" not in md
    assert "**SEMI-SYNTHETIC**" in (built["out"] / "leaderboard" / "fake-linked.md").read_text()
    assert "not available" in (built["out"] / "leaderboard" / "fake-empty.md").read_text()


def test_intervals_contain_the_mean_and_setting_is_reported(built):
    df = board(built, "fake-real")
    metrics = [f"{m}@{k}" for k in (3, 5, 10, 20) for m in ("P", "R", "F1", "HR", "NDCG", "MAP")]
    assert set(metrics) <= set(df.columns)
    for c in metrics:
        assert (df[f"{c}_lo"] <= df[c] + 1e-9).all() and (df[c] <= df[f"{c}_hi"] + 1e-9).all(), c
        assert (df[f"{c}_hi"] > df[f"{c}_lo"]).any(), f"{c}: degenerate intervals everywhere"
    assert (df["n_dropped_test"] == 2).all() and (df["catalog_max"] == 40).all()
    md = (built["out"] / "leaderboard" / "fake-real.md").read_text()
    assert "k=2 folds x seeds [0]" in md and "lr in {0.01, 0.02}" in md


def test_relative_improvement_of_popularity_is_zero_and_signs_follow_skill(built):
    df = board(built, "fake-real").set_index("model")
    rel = [c for c in df.columns if c.startswith("rel_") and not c.endswith(("_lo", "_hi"))]
    assert len(rel) == 24
    assert np.allclose(df.loc["popularity", rel].to_numpy(float), 0.0)
    assert df.loc["map2t-music", "rel_NDCG@10"] > df.loc["collopop-artist", "rel_NDCG@10"] > 0 > df.loc["bpr", "rel_NDCG@10"]
    # relative improvement agrees with the absolute means it is built from (single pairing, equal folds)
    approx = 100 * (df.loc["map2t-music", "P@3"] / df.loc["popularity", "P@3"] - 1)
    assert abs(df.loc["map2t-music", "rel_P@3"] - approx) < 5


def test_significance_marks_against_strongest_baseline(built):
    df = board(built, "fake-real").set_index("model")
    assert (df["vs_best"] == "collopop-artist").all()  # strongest of the baseline families, not the external one
    assert df.loc["collopop-artist", "mark"] == "ref"
    assert df.loc["map2t-music", "mark"] == "†" and df.loc["bpr", "mark"] == "‡"
    assert (df["p_holm"].dropna() >= df["p_vs_best"].dropna() - 1e-12).all()


def test_not_available_tables_are_written(built):
    t3 = (built["out"] / "tables" / "table3_dual_signal_training_fake-linked.md").read_text()
    assert "not available: model MAP-2T(music_podcast) (map2t-music_podcast) has no runs for scenario fake-linked" in t3
    csv = pd.read_csv(built["out"] / "tables" / "table3_dual_signal_training_fake-linked.csv")
    assert csv["status"].str.startswith("not available").all()
    t1 = (built["out"] / "tables" / "table1_relative_improvement_fake-real.md").read_text()
    assert "not available" not in t1 and "MAP-2T(music)" in t1
    t4 = (built["out"] / "tables" / "table4_modality_ablation_fake-linked.md").read_text()
    assert "map2t-podcast) has no runs" in t4
    assert not (built["out"] / "tables" / "table2_mp_cohort_fake-real.md").exists()  # no m&p cohort on real data


def test_cohort_table_uses_only_mp_users(built):
    t2 = pd.read_csv(built["out"] / "tables" / "table2_mp_cohort_fake-linked.csv")
    full = board(built, "fake-linked").set_index("model")
    n_mp = t2.loc[t2["reference"] == "popularity", "n_rows"].iloc[0]
    assert 0 < n_mp < full.loc["map2t-full", "n_test_users"]
    assert (t2["subset"] == "cohort=m&p").all()


def test_real_replication_and_breakdowns(built):
    t7 = pd.read_csv(built["out"] / "tables" / "table7_real_replication.csv")
    assert set(t7["scenario"]) == {"fake-real", "fake-empty"}
    ok = t7[t7["status"] == "ok"]
    assert set(ok["model"]) == set(REAL) and set(ok["metric"]) == {"NDCG@10", "P@3", "HR@3"}
    assert (t7.loc[t7["scenario"] == "fake-empty", "status"].str.startswith("not available")).all()
    hist = pd.read_csv(built["out"] / "tables" / "table7b_history_length.csv")
    pop = hist[hist["model"] == "popularity"]
    assert pop["bin"].nunique() == 3 and pop["n_rows"].sum() == 80
    ht = pd.read_csv(built["out"] / "tables" / "table7c_head_tail.csv")
    assert set(ht["metric"]) == {"head/R@10", "tail/R@10"}


def test_findings_are_computed_from_numbers(built, tmp_path):
    readme = (built["out"] / "README.md").read_text()
    assert "not evidence about real users; the real scenarios are" in readme
    rows = [ln for ln in readme.splitlines() if ln.startswith("| ") and "**" in ln]
    get = lambda claim, scen: next(r for r in rows if claim in r and f"| {scen}" in r)  # noqa: E731
    assert "**reproduced**" in get("MAP-2T(full) > ColloPop-Artist", "fake-linked")
    assert "**reproduced**" in get("podcast input adds precision", "fake-linked")
    assert "**reproduced**" in get("rho=0 null control", "fake-null")
    assert "**not available**" in get("gated > concat", "fake-null")
    # Flip the data: MAP-2T(full) now worse than ColloPop-Artist -> the claim must flip too.
    runs = tmp_path / "runs"
    write_fake_runs(runs, "fake-linked", {**LINKED, "map2t-full": -0.3}, semi=True)
    out = tmp_path / "out"
    build_report(runs, out, fake_params({"fake-linked": SCEN["fake-linked"]}))
    flipped = (out / "README.md").read_text()
    line = next(ln for ln in flipped.splitlines() if "MAP-2T(full) > ColloPop-Artist" in ln)
    assert "**not reproduced**" in line


def test_null_control_flags_a_gain(tmp_path):
    runs = tmp_path / "runs"
    write_fake_runs(runs, "fake-null", {"popularity": 0.0, "map2t-full": 0.9}, semi=True, n_users=120)
    out = tmp_path / "out"
    build_report(runs, out, fake_params({"fake-null": SCEN["fake-null"]}))
    line = next(ln for ln in (out / "README.md").read_text().splitlines() if "rho=0 null control" in ln)
    assert "**not reproduced**" in line and "MAP-2T(full)" in line


def test_figures_are_pngs_at_declared_paths(built):
    figs = built["written"]["figures"]
    assert sorted(figs) == sorted(figure_paths(built["params"], built["out"], built["runs"]))
    for p in figs:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_rebuild_is_byte_identical(built, tmp_path):
    out2 = tmp_path / "out2"
    build_report(built["runs"], out2, built["params"], twins_root=built["twins"])
    first, second = _digest(built["out"]), _digest(out2)
    assert first.keys() == second.keys() and len(first) > 40
    assert first == second


def test_external_root_is_merged(tmp_path):
    runs, ext = tmp_path / "runs", tmp_path / "external"
    write_fake_runs(runs, "fake-real", {"popularity": 0.0, "collopop-artist": 0.3})
    write_fake_runs(ext, "fake-real", {"external-theirs": 0.5}, external=("external-theirs",))
    out = tmp_path / "out"
    build_report(runs, out, fake_params({"fake-real": SCEN["fake-real"]}), external_root=ext)
    df = board({"out": out}, "fake-real").set_index("model")
    assert sorted(df.index) == ["collopop-artist", "external-theirs", "popularity"]
    assert df.loc["external-theirs", "name"] == "theirs (external)" and df.loc["external-theirs", "rel_P@3"] > 0
    with pytest.raises(ValueError, match="more than one runs root"):
        build_report(runs, out, fake_params({"fake-real": SCEN["fake-real"]}), external_root=runs)


# ---------------------------------------------------------------- transfer gain over the null twin


def test_real_leaderboard_carries_the_transfer_gain(built):
    df = board(built, "fake-real").set_index("model")
    assert (df.loc[df.index != "external-mine", "transfer_runs"] == 1).all()  # fold 0 only, like CI
    music = df.loc["map2t-music"]
    assert music["transfer_gain"] > 0 and music["transfer_gain_lo"] > 0 and bool(music["transfer"])
    assert music["transfer_p_holm"] <= 0.05 and pd.isna(music["transfer_mark"])
    for m in ("popularity", "collopop-artist", "itemknn", "bpr"):  # same skill on the twin: no transfer
        assert df.loc[m, "transfer_gain"] == 0 and df.loc[m, "transfer_users_changed"] == 0, m
        assert df.loc[m, "transfer_mark"] == "no measurable transfer" and not bool(df.loc[m, "transfer"]), m
    assert df.loc["external-mine", "transfer_mark"] == "no twin run" and pd.isna(df.loc["external-mine", "transfer_gain"])
    md = (built["out"] / "leaderboard" / "fake-real.md").read_text()
    assert "Transfer gain NDCG@10 (real - twin)" in md and "*no measurable transfer*" in md and "n/a (no twin run)" in md
    assert "Check: Popularity's NDCG@10 is identical on the real scenario and its twin for all 40 paired users." in md
    # a real scenario without any twin run still has the column, saying so
    empty = (built["out"] / "leaderboard" / "fake-empty.md").read_text()
    assert "not available" in empty


def test_linked_leaderboards_are_unchanged(built):
    for scen in ("fake-linked", "fake-null"):
        df = board(built, scen)
        assert not [c for c in df.columns if c.startswith("transfer")], scen
        assert "Transfer gain" not in (built["out"] / "leaderboard" / f"{scen}.md").read_text()


def test_replication_tables_and_findings_carry_the_gain(built):
    t7 = pd.read_csv(built["out"] / "tables" / "table7_real_replication.csv")
    row = t7[(t7["scenario"] == "fake-real") & (t7["model"] == "map2t-music") & (t7["metric"] == "NDCG@10")].iloc[0]
    lb = board(built, "fake-real").set_index("model").loc["map2t-music"]
    assert row["transfer_gain"] == pytest.approx(lb["transfer_gain"]) and row["transfer_lo"] > 0
    md = (built["out"] / "tables" / "table7_real_replication.md").read_text()
    assert "## Transfer gain on NDCG@10: real minus null twin" in md and "Transfer gain: NDCG@10 on the real" in md
    t6 = (built["out"] / "tables" / "table6_leaderboard.md").read_text()
    assert "Transfer gain NDCG@10 (real scenarios)" in t6
    readme = (built["out"] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "MAP-2T(music) > ColloPop-Artist" in ln and "| fake-real" in ln)
    # MAP-2T(music) transfers, ColloPop-Artist does not (same skill on the twin): the claim does not survive
    assert "does not survive: 1/2" in line and "*no measurable transfer*" in line


def test_findings_survive_when_every_credited_model_transfers(tmp_path):
    runs, twins = tmp_path / "runs", tmp_path / "twins"
    skills = {"popularity": 0.0, "collopop-artist": 0.5, "map2t-music": 0.8}
    write_fake_runs(runs, "fake-real", skills, n_users=120)
    write_fake_runs(twins, "fake-real", {**skills, "collopop-artist": 0.0, "map2t-music": 0.0}, n_users=120, twin=True)
    out = tmp_path / "out"
    build_report(runs, out, fake_params({"fake-real": SCEN["fake-real"]}), twins_root=twins)
    line = next(ln for ln in (out / "README.md").read_text().splitlines() if "MAP-2T(music) > ColloPop-Artist" in ln)
    assert "survives: 2/2" in line


def test_transfer_figure_is_declared_for_real_scenarios_only(built):
    figs = {Path(p).name for p in built["written"]["figures"]}
    assert {"transfer_fake-real.png", "transfer_fake-empty.png"} <= figs
    assert not {"transfer_fake-linked.png", "transfer_fake-null.png"} & figs


def test_leaderboard_json_has_flat_metrics_for_dvc_and_names_the_code(built):
    """`dvc metrics show` flattens dicts: every model's headline numbers sit under metrics.<model>; the setting names setting, revision and code hash."""
    js = json.loads((built["out"] / "leaderboard" / "fake-real.json").read_text())
    df = board(built, "fake-real")
    assert set(js["metrics"]) == set(df["model"])
    for row in df.to_dict(orient="records"):
        m = js["metrics"][row["model"]]
        assert m["NDCG@10"] == pytest.approx(row["NDCG@10"]) and m["P@3"] == pytest.approx(row["P@3"])
        assert all(not isinstance(v, (dict, list)) for v in m.values())
    assert "transfer_gain" in js["metrics"]["popularity"] and js["metrics"]["popularity"]["transfer_gain"] == 0
    assert js["setting"]["code_hashes"] == ["fakecodehash"] and js["setting"]["setting_name"] == "ci"
    md = (built["out"] / "leaderboard" / "fake-real.md").read_text()
    assert "ci setting, code revision fake, modelling-code hash fakecodehash" in md
    flat = json.loads((built["out"] / "metrics" / "fake-real.json").read_text())
    assert flat["metrics"] == js["metrics"] and flat["code_hashes"] == ["fakecodehash"]


def test_adapted_rows_are_marked(tmp_path):
    """A record's ``adapted: true`` (read back as a numpy bool in the records frame) marks the row; absent means not adapted."""
    runs = tmp_path / "runs"
    write_fake_runs(runs, "fake-real", REAL, external=("external-mine",))
    some = sorted(m for m in REAL if m != "popularity" and not m.startswith("external"))[0]
    for rec in (runs / "fake-real" / some).glob("s*_f*/record.json"):
        r = json.loads(rec.read_text())
        rec.write_text(json.dumps({**r, "adapted": True}))
    build_report(runs, tmp_path / "out", fake_params(SCEN))
    df = pd.read_csv(tmp_path / "out" / "leaderboard" / "fake-real.csv")
    assert df.set_index("model")["adapted"].to_dict() == {m: m == some for m in df["model"]}
    md = (tmp_path / "out" / "leaderboard" / "fake-real.md").read_text()
    assert md.count("(adapted)") >= 2  # the row and the note under the table


def test_multi_source_real_scenario_gets_the_cohort_tables_and_a_twin(tmp_path):
    """builder: multi (real people, two source modalities): tables 2-5, the per-cohort table of
    every model, Figs. 3-4 and the transfer figure, the m&p claims in the findings, no banner."""
    runs, twins, out = tmp_path / "runs", tmp_path / "twins", tmp_path / "out"
    write_fake_runs(runs, "fake-multi", LINKED, semi=True)  # semi=True only deals cohorts m&p / m-only here
    for d in runs.rglob("record.json"):
        rec = json.loads(d.read_text())
        d.write_text(json.dumps({**rec, "semi_synthetic": False, "modalities": {"podcast": "Movies (category 3)"}}))
    params = fake_params({"fake-multi": {"builder": "multi"}})
    written = build_report(runs, out, params, twins_root=twins)
    names = {p.name for p in written["tables"]}
    for stem in ("table2_mp_cohort", "table3_dual_signal_training", "table4_modality_ablation",
                 "table5_fusion_ablation", "table_cohorts"):
        assert f"{stem}_fake-multi.md" in names
    figs = {p.name for p in figure_paths(params, out, runs)}
    assert {"fig3_mp_cohort_fake-multi.png", "fig4_dual_signal_fake-multi.png", "transfer_fake-multi.png"} <= figs
    cohorts = (out / "tables" / "table_cohorts_fake-multi.md").read_text()
    assert "**m&p**" in cohorts and "MAP-2T(full)" in cohorts and "SEMI-SYNTHETIC" not in cohorts
    assert "the second source modality" in cohorts and "Movies (category 3)" in cohorts
    board_md = (out / "leaderboard" / "fake-multi.md").read_text()
    assert "ColloPop-Podcast [podcast = Movies]" in board_md  # the role's name says what it holds here
    csv = pd.read_csv(out / "tables" / "table_cohorts_fake-multi.csv")
    mp = csv[(csv["cohort"] == "m&p") & (csv["model"] == "map2t-full") & (csv["metric"] == "NDCG@10")]
    assert len(mp) == 1 and mp["rel_pct"].iloc[0] > 0  # skill 0.8 against Popularity
    readme = (out / "README.md").read_text()
    assert "m&p cohort: MAP-2T(full) above Popularity" in readme and "dual-signal training" in readme


def test_mtl_ablation_table_is_relative_to_the_full_mtl(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    write_fake_runs(runs, "fake-real", {"popularity": 0.0, "mtl": 0.6, "mtl-noaux": 0.1})
    build_report(runs, out, fake_params({"fake-real": SCEN["fake-real"]}))
    f = pd.read_csv(out / "tables" / "table4b_mtl_ablation_fake-real.csv")
    noaux = f[(f["model"] == "mtl-noaux") & (f["metric"] == "NDCG@10")]["rel_pct"].iloc[0]
    assert noaux < 0  # skill 0.1 against 0.6
    assert set(f["model"]) == {"mtl", "mtl-noaux", "popularity"}  # per-modality rows only where two sources exist
    assert (f[f["model"] == "mtl"]["rel_pct"] == 0).all()


def test_setting_line_counts_users_excluded_because_they_chose_the_configuration(tmp_path):
    """Published setting: folds that reuse another fold's tuning do not score its validation users; the line says how many."""
    from benchmark.report.runs import ScenarioRuns, Settings
    from fake_runs import write_fake_runs

    write_fake_runs(tmp_path, "fake-real", {"popularity": 0.5, "userknn": 0.6})
    runs = ScenarioRuns.load(tmp_path, "fake-real", Settings.from_params(None))
    assert "not scored because" not in runs.setting_text()  # nothing excluded: the CI setting's line is unchanged
    runs.records["n_excluded_tuning_users"] = 3
    n_ref = int((runs.records["model"] == "popularity").sum())
    assert f"{3 * n_ref} test-user rows not scored because the configurations were tuned on them" in runs.setting_text()


def test_setting_line_names_the_tuning_users_and_the_code_of_each_row(tmp_path):
    """A reader judging a tuned baseline needs the number of users its configuration was
    chosen on; an incremental build names how many models each code hash produced."""
    from benchmark.report.runs import ScenarioRuns, Settings
    from fake_runs import write_fake_runs

    write_fake_runs(tmp_path, "fake-real", {"popularity": 0.5, "userknn": 0.6, "ease": 0.4})
    runs = ScenarioRuns.load(tmp_path, "fake-real", Settings.from_params(None))
    assert "tuned with" not in runs.setting_text()  # records without a tuning fold: nothing claimed
    r = runs.records
    r["tuning"] = [{} if m == "popularity" else {"tuned_on": [0, 0], "budget_trials": 8, "chosen_config": {}} for m in r["model"]]
    r["n_valid_users"] = [42 if (s, f) == (0, 0) else 7 for s, f in zip(r["seed"], r["fold"])]
    runs = ScenarioRuns("fake-real", r, runs.per_user, runs.settings)
    assert "tuned with 8 trials per model on the validation users of seed 0 / fold 0 (42 users)" in runs.setting_text()
    assert "model)" not in runs.setting_text() and "incremental" not in runs.setting_text()
    r.loc[r["model"] == "ease", "code_hash"] = "newerhash"
    runs = ScenarioRuns("fake-real", r, runs.per_user, runs.settings)
    line = runs.setting_text()
    assert "modelling-code hash fakecodehash (2 models), newerhash (1 model) (incremental build" in line
    assert runs.setting()["models_per_code_hash"] == {"fakecodehash": 2, "newerhash": 1}


def test_overview_figure_is_deterministic_and_says_when_empty(tmp_path):
    """The heatmap of every model on every scenario: same bytes on a rebuild (DVC sees no change), a panel when empty."""
    from benchmark.report.figures import overview_figure

    def board(rels):
        return pd.DataFrame({"model": list(rels), "name": [m.upper() for m in rels], "external": False,
                             "rel_NDCG@10": list(rels.values()), "rel_NDCG@10_lo": [v - 3 for v in rels.values()],
                             "rel_NDCG@10_hi": [v + 3 for v in rels.values()]})

    boards = {"a": board({"popularity": 0.0, "ease": -40.0, "mtl": 5.0}), "b": board({"popularity": 0.0, "mtl": 1.0})}
    one = overview_figure(boards, {"a": False, "b": True}, tmp_path / "one.png").read_bytes()
    two = overview_figure(boards, {"a": False, "b": True}, tmp_path / "two.png").read_bytes()
    assert one == two and one[:4] == b"\x89PNG"
    empty = overview_figure({"a": pd.DataFrame()}, {"a": False}, tmp_path / "empty.png").read_bytes()
    assert empty[:4] == b"\x89PNG" and empty != one
