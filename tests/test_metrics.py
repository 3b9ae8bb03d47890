"""Metrics and the evaluator: hand-worked cases, properties, independent implementations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark.evaluation.evaluate import evaluate_model, evaluate_topk
from benchmark.evaluation.metrics import (
    breakdown_metrics,
    head_tail_masks,
    hit_matrix,
    metric_columns,
    ranking_metrics,
    topk_indices,
)

L3 = np.log2(3.0)  # discount of rank 2 is 1/log2(3); rank 1 is 1/log2(2) = 1; rank 3 is 1/log2(4) = 1/2


def truth_of(rows: list[list[int]], m: int) -> sp.csr_matrix:
    r = [i for i, items in enumerate(rows) for _ in items]
    c = [j for items in rows for j in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), m))


# --- hand-worked cases -------------------------------------------------------------

# Catalog of 6 items.
# A: positives {1, 4}, list [1, 2, 4] -> hits [1, 0, 1]
# B: positives {0, 2, 3, 5}, list [4, 1, 3] -> hits [0, 0, 1]
# C: positives {5}, list [0, 1, 2] -> no hit
TRUTH = truth_of([[1, 4], [0, 2, 3, 5], [5]], 6)
TOPK = np.array([[1, 2, 4], [4, 1, 3], [0, 1, 2]])


def test_hand_case_k3():
    m = ranking_metrics(TOPK, TRUTH, [3])
    # A: P = 2/3, R = 2/2, F1 = 2*(2/3)*1/(2/3+1) = (4/3)/(5/3) = 0.8, HR = 1
    #    DCG = 1 + 1/2; IDCG over min(2,3)=2 ranks = 1 + 1/log2(3)
    #    MAP = (P@1 + P@3) / min(2,3) = (1 + 2/3) / 2 = 5/6
    # B: P = 1/3, R = 1/4, F1 = 2*(1/12)/(7/12) = 2/7, HR = 1
    #    DCG = 1/2; IDCG over min(4,3)=3 ranks = 1 + 1/log2(3) + 1/2
    #    MAP = P@3 / min(4,3) = (1/3)/3 = 1/9
    # C: all zero
    np.testing.assert_allclose(m["P@3"], [2 / 3, 1 / 3, 0])
    np.testing.assert_allclose(m["R@3"], [1.0, 1 / 4, 0])
    np.testing.assert_allclose(m["F1@3"], [0.8, 2 / 7, 0])
    np.testing.assert_allclose(m["HR@3"], [1, 1, 0])
    np.testing.assert_allclose(m["NDCG@3"], [1.5 / (1 + 1 / L3), 0.5 / (1.5 + 1 / L3), 0])
    np.testing.assert_allclose(m["MAP@3"], [5 / 6, 1 / 9, 0])


def test_hand_case_k1_and_k2():
    m = ranking_metrics(TOPK, TRUTH, [1, 2])
    # k=1: A hits at rank 1: P = 1, R = 1/2, F1 = 2*1*0.5/1.5 = 2/3, NDCG = 1/1 (IDCG over min(2,1)=1), MAP = 1/1
    np.testing.assert_allclose(m["P@1"], [1, 0, 0])
    np.testing.assert_allclose(m["R@1"], [0.5, 0, 0])
    np.testing.assert_allclose(m["F1@1"], [2 / 3, 0, 0])
    np.testing.assert_allclose(m["NDCG@1"], [1, 0, 0])
    np.testing.assert_allclose(m["MAP@1"], [1, 0, 0])
    # k=2: A: P = 1/2, NDCG = 1 / (1 + 1/log2 3), MAP = P@1 / min(2,2) = 1/2
    np.testing.assert_allclose(m["P@2"], [0.5, 0, 0])
    np.testing.assert_allclose(m["NDCG@2"], [1 / (1 + 1 / L3), 0, 0])
    np.testing.assert_allclose(m["MAP@2"], [0.5, 0, 0])
    assert list(m) == metric_columns([1, 2])


def test_truth_values_are_binary_and_explicit_zeros_ignored():
    t = TRUTH.copy().astype(np.float64)
    t.data = np.array([5.0, 2.0, 9.0, 1.0, 3.0, 4.0, 0.5])
    a = ranking_metrics(TOPK, t, [3])
    b = ranking_metrics(TOPK, TRUTH, [3])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # An explicitly stored 0 is not a positive: user C then has no positive -> error.
    t0 = sp.csr_matrix((np.array([1.0, 0.0]), ([0, 1], [1, 5])), shape=(2, 6))
    with pytest.raises(ValueError, match="no positive"):
        ranking_metrics(TOPK[:2], t0, [3])


def test_short_lists_and_empty_ranks_are_misses():
    truth = truth_of([[1], [2, 3]], 4)
    topk = np.array([[1, -1, -1], [3, -1, -1]])
    m = ranking_metrics(topk, truth, [3, 5])
    # A: 1 hit, P@3 = 1/3, P@5 = 1/5, R = 1; B: 1 hit of 2, MAP@3 = P@1 / min(2,3) = 1/2
    np.testing.assert_allclose(m["P@3"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(m["P@5"], [1 / 5, 1 / 5])
    np.testing.assert_allclose(m["R@5"], [1, 0.5])
    np.testing.assert_allclose(m["MAP@3"], [1, 0.5])


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="no positive"):
        ranking_metrics(TOPK, truth_of([[1], [], [2]], 6), [3])
    with pytest.raises(ValueError, match="same item twice"):
        ranking_metrics(np.array([[1, 1, 2]]), truth_of([[1]], 6), [3])
    with pytest.raises(ValueError, match="rows"):
        ranking_metrics(TOPK[:2], TRUTH, [3])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        ranking_metrics(np.array([[6, 0, 1]]), truth_of([[1]], 6), [3])
    with pytest.raises(ValueError, match="ks"):
        ranking_metrics(TOPK, TRUTH, [0])
    with pytest.raises(ValueError, match="NaN"):
        topk_indices(np.array([[0.1, np.nan]]), 1)


def test_topk_tie_break_lower_index_wins():
    s = np.array([[1.0, 3.0, 3.0, 0.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(topk_indices(s, 2), [[1, 2], [0, 1]])
    np.testing.assert_array_equal(topk_indices(s, 4), [[1, 2, 4, 0], [0, 1, 2, 3]])
    np.testing.assert_array_equal(topk_indices(s, 9), [[1, 2, 4, 0, 3], [0, 1, 2, 3, 4]])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 6), m=st.integers(1, 40), k=st.integers(1, 45), levels=st.integers(1, 5))
def test_topk_matches_stable_full_sort(seed, n, m, k, levels):
    # Few distinct score levels -> many ties, also at the K boundary; -inf included.
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, size=(n, m)).astype(np.float64)
    s[rng.random((n, m)) < 0.1] = -np.inf
    ref = np.argsort(-s, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(topk_indices(s, k), ref)


def test_topk_tie_pass_in_row_chunks(monkeypatch):
    from benchmark.evaluation import metrics

    s = np.random.default_rng(9).integers(0, 3, size=(23, 50)).astype(np.float64)
    monkeypatch.setattr(metrics, "_TIE_CHUNK_CELLS", 120)  # 2 rows per chunk
    np.testing.assert_array_equal(topk_indices(s, 7), np.argsort(-s, axis=1, kind="stable")[:, :7])


def test_hit_matrix_against_python_sets():
    rng = np.random.default_rng(3)
    truth = sp.random(20, 50, density=0.1, format="csr", random_state=4)
    topk = np.stack([rng.permutation(50)[:7] for _ in range(20)])
    pos = [set(truth[i].indices) for i in range(20)]
    expected = np.array([[j in pos[i] for j in topk[i]] for i in range(20)])
    np.testing.assert_array_equal(hit_matrix(topk, truth), expected)


# --- properties --------------------------------------------------------------------


def random_case(seed: int, n: int, m: int, density: float = 0.2):
    rng = np.random.default_rng(seed)
    dense = rng.random((n, m)) < density
    dense[np.arange(n), rng.integers(0, m, n)] = True  # everyone has a positive
    scores = rng.permutation(n * m).reshape(n, m).astype(np.float64)  # no ties
    return scores, sp.csr_matrix(dense.astype(np.float32))


KS = [1, 3, 5, 10]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), m=st.integers(2, 30))
def test_metric_properties(seed, n, m):
    scores, truth = random_case(seed, n, m)
    met = ranking_metrics(topk_indices(scores, max(KS)), truth, KS)
    for name, v in met.items():
        assert v.shape == (n,)
        assert np.all((v >= 0) & (v <= 1 + 1e-12)), name
    for k in KS:
        hr = met[f"HR@{k}"]
        for other in ("P", "R", "F1", "NDCG", "MAP"):
            assert np.all(met[f"{other}@{k}"] <= hr + 1e-12), (other, k)  # no hit -> all zero
        assert np.all((met[f"P@{k}"] > 0) == (hr > 0))
        p, r = met[f"P@{k}"], met[f"R@{k}"]
        np.testing.assert_allclose(met[f"F1@{k}"], np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0))
    for k1, k2 in zip(KS, KS[1:]):  # recall and hit rate cannot fall as the list grows
        assert np.all(met[f"R@{k2}"] >= met[f"R@{k1}"] - 1e-12)
        assert np.all(met[f"HR@{k2}"] >= met[f"HR@{k1}"])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), m=st.integers(2, 30))
def test_perfect_ranking_scores_one(seed, n, m):
    _, truth = random_case(seed, n, m)
    scores = truth.toarray() + 1e-3 * np.random.default_rng(seed).random((n, m))  # positives first
    met = ranking_metrics(topk_indices(scores, max(KS)), truth, KS)
    n_pos = np.diff(truth.indptr)
    for k in KS:
        np.testing.assert_allclose(met[f"NDCG@{k}"], 1.0)
        np.testing.assert_allclose(met[f"MAP@{k}"], 1.0)
        np.testing.assert_allclose(met[f"P@{k}"], np.minimum(n_pos, k) / k)
        np.testing.assert_allclose(met[f"R@{k}"], np.minimum(n_pos, k) / n_pos)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), m=st.integers(2, 30))
def test_permuting_items_consistently_changes_nothing(seed, n, m):
    scores, truth = random_case(seed, n, m)
    perm = np.random.default_rng(seed + 1).permutation(m)
    a = ranking_metrics(topk_indices(scores, 10), truth, KS)
    b = ranking_metrics(topk_indices(scores[:, perm], 10), truth[:, perm], KS)
    pop = np.arange(m, dtype=float)
    ea, eb = evaluate_topk(topk_indices(scores, 10), truth, KS, pop), evaluate_topk(topk_indices(scores[:, perm], 10), truth[:, perm], KS, pop[perm])
    for key in a:
        np.testing.assert_allclose(a[key], b[key])
    np.testing.assert_allclose(ea.to_numpy(dtype=float), eb.to_numpy(dtype=float))


# --- independent implementations ----------------------------------------------------


def test_ndcg_matches_sklearn():
    # sklearn: gain = relevance (linear), discount 1/log2(rank+1), ideal DCG from the
    # sorted true relevances over the top k -> for binary relevance that is
    # min(n_pos, k) ones, our convention. Continuous scores: no ties to break.
    from sklearn.metrics import ndcg_score

    scores, truth = random_case(11, 25, 40, density=0.15)
    dense = truth.toarray()
    met = ranking_metrics(topk_indices(scores, 20), truth, [3, 5, 10, 20])
    for k in (3, 5, 10, 20):
        ref = [ndcg_score(dense[i : i + 1], scores[i : i + 1], k=k, ignore_ties=True) for i in range(25)]
        np.testing.assert_allclose(met[f"NDCG@{k}"], ref, rtol=1e-10)


def test_matches_recbole_metric_info(monkeypatch):
    # RecBole's metric_info functions take pos_index (n x K bool: is rank j a hit) and
    # pos_len (n positives). Its MAP normaliser in code is min(pos_len, K) (the
    # docstring's min(|R_hat|, K) is misleading), i.e. ours. RecBole 1.2.1 still uses
    # np.float (removed in numpy 1.24); its Config object re-creates the alias, which
    # we do not build here, so the alias is set for this test only.
    import recbole.evaluator.metrics as mod  # a dependency: an import error must fail, not skip
    monkeypatch.setattr(np, "float", float, raising=False)
    scores, truth = random_case(5, 30, 60, density=0.1)
    topk = topk_indices(scores, 20)
    pos = [set(truth[i].indices) for i in range(30)]
    pos_index = np.array([[j in pos[i] for j in topk[i]] for i in range(30)])  # independent of hit_matrix
    pos_len = np.array([len(p) for p in pos])
    ks = [3, 5, 10, 20]
    met = ranking_metrics(topk, truth, ks)
    ref = {
        "P": mod.Precision.metric_info(None, pos_index),
        "R": mod.Recall.metric_info(None, pos_index, pos_len),
        "HR": mod.Hit.metric_info(None, pos_index),
        "NDCG": mod.NDCG.metric_info(None, pos_index, pos_len),
        "MAP": mod.MAP.metric_info(None, pos_index, pos_len),
    }
    for name, arr in ref.items():
        for k in ks:
            np.testing.assert_allclose(met[f"{name}@{k}"], arr[:, k - 1], rtol=1e-10, err_msg=f"{name}@{k}")


# --- popularity breakdown ----------------------------------------------------------


def test_head_tail_split_and_breakdown():
    pop = np.array([10, 9, 1, 1, 0, 5])
    head, tail = head_tail_masks(pop, 0.2)  # ceil(0.2 * 6) = 2 head items: 0 and 1
    np.testing.assert_array_equal(head, [1, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(tail, ~head)
    tb = breakdown_metrics(TOPK, TRUTH, [1, 3], tail, "tail")
    hb = breakdown_metrics(TOPK, TRUTH, [1, 3], head, "head")
    # A: tail positives {4}; list [1,2,4]: tail hit at rank 3 -> R@1 = 0, R@3 = 1.
    #    head positives {1}: hit at rank 1 -> head R@1 = 1.
    # B: tail positives {2,3,5}; hit 3 at rank 3 -> R@3 = 1/3; head positives {0}: none hit.
    # C: tail positives {5}: no hit; no head positive -> head NaN.
    np.testing.assert_allclose(tb["tail/R@1"], [0, 0, 0])
    np.testing.assert_allclose(tb["tail/R@3"], [1, 1 / 3, 0])
    np.testing.assert_allclose(tb["tail/HR@3"], [1, 1, 0])
    np.testing.assert_allclose(hb["head/R@1"], [1, 0, np.nan])
    np.testing.assert_allclose(hb["head/HR@3"], [1, 0, np.nan])
    # Ties in popularity: lower index is head.
    np.testing.assert_array_equal(head_tail_masks(np.ones(5), 0.2)[0], [1, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        head_tail_masks(pop, 1.5)


# --- the evaluator ------------------------------------------------------------------


class FixedModel:
    class_name = "fixed"

    def __init__(self, scores):
        self.scores = np.asarray(scores)
        self.calls = []

    def score(self, rows):
        self.calls.append(len(rows))
        return self.scores[rows]


def test_evaluate_model_matches_evaluate_topk_and_batches():
    scores, truth = random_case(2, 9, 30)
    model = FixedModel(scores)
    rows = np.array([4, 0, 8, 1, 2, 3, 5, 6, 7])
    df, topk = evaluate_model(model, rows, truth[rows], [3, 5], np.arange(30.0), batch_size=4)
    assert model.calls == [4, 4, 1]
    ref = np.argsort(-scores[rows], axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(topk, ref)
    expected = evaluate_topk(ref, truth[rows], [3, 5], np.arange(30.0))
    np.testing.assert_allclose(df.to_numpy(dtype=float), expected.to_numpy(dtype=float))
    assert list(df.columns[:1]) == ["n_pos"] and "tail/R@5" in df.columns and "MAP@5" in df.columns
    np.testing.assert_array_equal(df["n_pos"], np.diff(truth[rows].indptr))
    assert df.attrs["score_time_s"] >= 0


def test_evaluate_model_small_catalog_pads_lists():
    model = FixedModel(np.array([[0.1, 0.9], [0.5, 0.2]]))
    df, topk = evaluate_model(model, np.array([0, 1]), truth_of([[1], [1]], 2), [3], np.ones(2))
    np.testing.assert_array_equal(topk, [[1, 0, -1], [0, 1, -1]])
    np.testing.assert_allclose(df["P@3"], [1 / 3, 1 / 3])
    np.testing.assert_allclose(df["NDCG@3"], [1, 1 / L3])


@pytest.mark.parametrize(
    "bad, err",
    [(np.zeros((3, 5)), "shape"), (np.full((2, 6), np.nan), "non-finite"), (np.full((2, 6), np.inf), "non-finite")],
)
def test_evaluate_model_names_the_model_on_bad_scores(bad, err):
    class Broken(FixedModel):
        def score(self, rows):
            return self.scores

    with pytest.raises(ValueError, match=rf"Broken \('fixed'\).*{err}"):
        evaluate_model(Broken(bad), np.array([0, 1]), truth_of([[1], [2]], 6), [3], np.ones(6))
