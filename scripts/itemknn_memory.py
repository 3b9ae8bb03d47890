"""Peak RSS of RecBole's ComputeSimilarity + pred_mat vs LeanItemKNN's item_similarity.

Each runs in a fresh subprocess on the same synthetic binary matrix (n_users x n_items,
per_user random items a user) and also scores 256 users. Usage:

    PYTHONPATH=. python scripts/itemknn_memory.py [n_users n_items per_user k]   # 5000 20000 20 3000

Measured on the 2-core machine (shared with another job), peak RSS incl. ~370 MB of imports:
    5000 20000  20 3000: nnz(W)=1.9M   lean  432 MB, 3.9 s;  RecBole 1,626 MB,   8.0 s
    5000 20000 100 3000: nnz(W)=46.1M  lean 1,299 MB, 16.8 s; RecBole 9,590 MB, 117.5 s
"""
import resource, subprocess, sys, time

CHILD = r'''
import resource, sys, time
import numpy as np, scipy.sparse as sp
which, n_users, n_items, per_user, k = sys.argv[1], *map(int, sys.argv[2:6])
rng = np.random.default_rng(0)
rows = np.repeat(np.arange(n_users), per_user)
cols = rng.integers(0, n_items, size=rows.size)
x = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
x.data[:] = 1.0
import torch, recbole.model.general_recommender.itemknn, benchmark.models.recbole.itemknn
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if which == "recbole":
    from recbole.model.general_recommender.itemknn import ComputeSimilarity
    _, w = ComputeSimilarity(x, topk=k, shrink=0.0, method="item").compute_similarity()
    pred = x.dot(w).tolil()
    users = np.arange(256)
    s = pred[users, :].toarray()
else:
    from benchmark.models.recbole.itemknn import item_similarity
    w = item_similarity(x, topk=k, shrink=0.0)
    s = x[np.arange(256)].dot(w).toarray()
print(f"{which}: nnz(X)={x.nnz} nnz(W)={w.nnz} seconds={time.perf_counter()-t:.1f} "
      f"peak_rss_MB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} (after data+imports {base/1024:.0f})")
'''
args = sys.argv[1:] or ["5000", "20000", "20", "3000"]
for which in ("lean", "recbole"):
    subprocess.run([sys.executable, "-c", CHILD, which, *args], check=True)
