"""Collaborative item embeddings by truncated SVD of a weighted interaction matrix.

Shared by the ``pretrain`` stage (frozen source-domain towers) and by models that need
target-side item vectors learned from a fold's training users only (MAP-2T's item
tower on scenarios without text). PureSVD on a BM25/idf-weighted matrix is a strong,
well-understood choice (Cremonesi et al. 2010) and scikit-learn's randomized SVD is
deterministic for a fixed ``random_state``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer


def idf_weight(
    matrix: sp.spmatrix, log_values: bool = True, fit_rows: np.ndarray | None = None, sort_indices: bool = True
) -> sp.csr_matrix:
    """log(1 + value) damped counts, scaled by item idf so hub items do not dominate.

    The idf is scikit-learn's smoothed one, ``ln((1 + n) / (1 + df)) + 1``
    (``TfidfTransformer``), with document frequencies over ``fit_rows`` (default: every
    row); no row normalisation. It is applied as a product with the diagonal idf matrix.
    Why ``sort_indices``: sparse products and the randomized SVD downstream sum in the
    stored index order, so the layout decides the last bits of every vector, and those
    bits decide MAP-2T's early-stopping epoch. The published numbers were produced with
    sorted indices (an earlier ``matrix > 0`` sorted them in place); UserKNN's with the
    order as given (it passes False).
    """
    m = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    if log_values:
        m.data = np.log1p(np.abs(m.data))
    if sort_indices:
        m.sort_indices()
    if m.shape[0] == 0:
        return m
    fit = sp.csr_matrix(m if fit_rows is None else m[fit_rows], copy=True)
    fit.eliminate_zeros()  # document frequency counts stored entries: drop explicit zeros
    idf = TfidfTransformer(norm=None, use_idf=True, smooth_idf=True, sublinear_tf=False).fit(fit).idf_
    return m.dot(sp.diags(idf)).tocsr()


def item_embeddings(matrix: sp.spmatrix, dim: int, seed: int = 0, normalize: bool = True) -> np.ndarray:
    """Item vectors (n_items x dim) from a users x items matrix.

    Items with no interactions get zero vectors (callers mask them). ``dim`` is capped
    at min(shape) - 1 as TruncatedSVD requires, and padded back with zeros so the
    output width is always ``dim``.
    """
    m = idf_weight(matrix)
    n_users, n_items = m.shape
    out = np.zeros((n_items, dim), dtype=np.float32)
    k = min(dim, n_users - 1, n_items - 1)
    if k < 1 or m.nnz == 0:
        return out
    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
    svd.fit(m)
    vecs = (svd.components_.T * np.sqrt(svd.singular_values_)).astype(np.float32)
    # Fix the sign of each component so results do not flip between library versions.
    signs = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(k)])
    signs[signs == 0] = 1.0
    vecs *= signs
    if normalize:
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
    out[:, :k] = vecs
    # Randomized SVD leaves small noise on items nobody interacted with; after row
    # normalisation that noise would become a unit vector. Such items have no signal.
    out[np.asarray(m.getnnz(axis=0)) == 0] = 0.0
    return out
