"""The neural pieces of MAP-2T (paper section 3.2), as small torch modules.

Kept apart from the training loop (``map2t.py``) so each piece can be tested for
shape and range on its own, and so ablations swap a module, not a code path.
Every module works on already-aggregated, frozen pretrained inputs: the towers
over raw music/podcast histories are *not* trained here (paper design choice 1).

Notation follows the paper: ``d`` is the shared latent size.
"""

from __future__ import annotations

import torch
from torch import nn


class FFN(nn.Module):
    """Two-layer feed-forward block: Linear -> GELU -> Dropout -> Linear."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_hidden, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CalibratedPath(nn.Module):
    """Music path: z = W x + b; z~ = gamma * z + beta; u = LN(z~ + FFN(z~)).

    The feature-wise affine calibration corrects scale/shift mismatch between the
    pretrained space and the shared space. Reused for the book (audiobook-history)
    input, as the brief allows a third modality to reuse this design.
    """

    def __init__(self, d_in: int, d: int, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(d_in, d)
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d))
        self.ffn = FFN(d, 2 * d, d, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.gamma * self.proj(x) + self.beta
        return self.norm(z + self.ffn(z))


class GatedMixturePath(nn.Module):
    """Podcast path: two parallel FFNs mixed per feature by g = sigmoid(f_gate(x)).

    u~ = g * FFN1(x) + (1 - g) * FFN2(x); u = LN(u~ + FFN(u~)). A soft two-expert
    mixture with per-dimension arbitration (paper section 3.2.1). The paper writes
    the gate in the input size d_p; both branches output d here, so the gate does too.
    """

    def __init__(self, d_in: int, d: int, dropout: float = 0.0):
        super().__init__()
        self.branch1 = FFN(d_in, 2 * d, d, dropout)
        self.branch2 = FFN(d_in, 2 * d, d, dropout)
        self.gate = FFN(d_in, d, d, dropout)
        self.ffn = FFN(d, 2 * d, d, dropout)
        self.norm = nn.LayerNorm(d)
        self.last_gate: torch.Tensor | None = None  # kept for inspection/tests

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.gate(x))
        self.last_gate = g.detach()
        u = g * self.branch1(x) + (1.0 - g) * self.branch2(x)
        return self.norm(u + self.ffn(u))


def _interaction_features(us: list[torch.Tensor]) -> torch.Tensor:
    """[u_1 .. u_M, |u_i - u_j|, u_i * u_j for every pair i < j]."""
    feats = list(us)
    for i in range(len(us)):
        for j in range(i + 1, len(us)):
            feats += [torch.abs(us[i] - us[j]), us[i] * us[j]]
    return torch.cat(feats, dim=-1)


class GatedFusion(nn.Module):
    """Feature-gated fusion of M modality vectors (each of size d).

    M = 2 is exactly the paper's form: alpha = sigmoid(W2 phi(W1 z + b1) + b2) with
    z = [u_m, u_p, |u_m - u_p|, u_m * u_p] and u = alpha * u_m + (1 - alpha) * u_p.
    M >= 3 generalises it with a per-feature softmax over modalities, the input z
    holding every vector plus the |difference| and product of every pair (for M = 2
    a softmax over two logits is a sigmoid of their difference, so the forms agree).
    """

    def __init__(self, n_modalities: int, d: int, dropout: float = 0.0):
        super().__init__()
        if n_modalities < 2:
            raise ValueError("fusion needs at least two modalities")
        self.m = n_modalities
        n_pairs = n_modalities * (n_modalities - 1) // 2
        d_z = d * (n_modalities + 2 * n_pairs)
        d_out = d if n_modalities == 2 else d * n_modalities
        self.mlp = FFN(d_z, d, d_out, dropout)
        self.d = d
        self.last_weights: torch.Tensor | None = None  # (batch, M, d), for inspection/tests

    def forward(self, us: list[torch.Tensor]) -> torch.Tensor:
        logits = self.mlp(_interaction_features(us))
        if self.m == 2:
            a = torch.sigmoid(logits)
            w = torch.stack([a, 1.0 - a], dim=1)
        else:
            w = torch.softmax(logits.view(-1, self.m, self.d), dim=1)
        self.last_weights = w.detach()
        return (w * torch.stack(us, dim=1)).sum(dim=1)


class ConcatFusion(nn.Module):
    """The ablation baseline: concatenate the modality vectors, then one Linear to d."""

    def __init__(self, n_modalities: int, d: int):
        super().__init__()
        self.proj = nn.Linear(n_modalities * d, d)

    def forward(self, us: list[torch.Tensor]) -> torch.Tensor:
        return self.proj(torch.cat(us, dim=-1))


PATHS = {"music": CalibratedPath, "book": CalibratedPath, "podcast": GatedMixturePath}


class UserTower(nn.Module):
    """One path per modality (music/book: calibrated; podcast: gated mixture), then fusion."""

    def __init__(self, in_dims: dict[str, int], d: int, fusion: str = "gated", dropout: float = 0.0):
        super().__init__()
        unknown = sorted(set(in_dims) - set(PATHS))
        if unknown or not in_dims:
            raise ValueError(f"user tower modalities must be a non-empty subset of {sorted(PATHS)}; got {list(in_dims)}")
        self.modalities = list(in_dims)
        self.paths = nn.ModuleDict({m: PATHS[m](in_dims[m], d, dropout) for m in self.modalities})
        n = len(self.modalities)
        if n == 1:
            self.fusion = None
        elif fusion == "gated":
            self.fusion = GatedFusion(n, d, dropout)
        elif fusion == "concat":
            self.fusion = ConcatFusion(n, d)
        else:
            raise ValueError(f"fusion must be 'gated' or 'concat', got {fusion!r}")

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        us = [self.paths[m](inputs[m]) for m in self.modalities]
        return us[0] if self.fusion is None else self.fusion(us)


class ItemTower(nn.Module):
    """v = LN(mixer([FFN_deep(x) || Linear_shallow(x)]) + P x).

    The shallow branch keeps the pretrained geometry (zero-shot items), the deep one
    adapts it; the residual keeps updates small. ``P`` is the identity when the input
    already has size d, else a bias-free projection (the paper assumes equal sizes).
    """

    def __init__(self, d_in: int, d: int, dropout: float = 0.0):
        super().__init__()
        self.deep = FFN(d_in, 2 * d, d, dropout)
        self.shallow = nn.Linear(d_in, d)
        self.mixer = nn.Linear(2 * d, d)
        self.skip = nn.Identity() if d_in == d else nn.Linear(d_in, d, bias=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.mixer(torch.cat([self.deep(x), self.shallow(x)], dim=-1))
        return self.norm(z + self.skip(x))


def cosine_logits(u: torch.Tensor, v: torch.Tensor, tau: float) -> torch.Tensor:
    """Temperature-scaled cosine similarity, (n_users x n_items).

    The 1/tau scale is applied to the (small) user side before the product, so the
    large users x catalog matrix is touched once.
    """
    u = nn.functional.normalize(u, dim=-1, eps=1e-8) / tau
    v = nn.functional.normalize(v, dim=-1, eps=1e-8)
    return u @ v.T


def regularised_loss(
    logits: torch.Tensor,
    pos_rows: torch.Tensor,
    pos_cols: torch.Tensor,
    log_prior: torch.Tensor,
    lambda_ls: float,
    lambda_kl: float,
    lambda_ent: float,
) -> torch.Tensor:
    """L = CE + lambda_ls * L_smooth + lambda_kl * KL(p || prior) - lambda_ent * H(p).

    Paper section 3.2.3 in its additive form: ``L_smooth`` is the cross-entropy to the
    uniform distribution over the catalog (label smoothing), ``prior`` a tempered
    popularity distribution (log-probabilities given), and the entropy enters with a
    minus sign, so a positive ``lambda_ent`` is a bonus that rewards spread scores.

    ``logits`` has one row per *user*; the (user, positive) pairs are
    ``(pos_rows[j], pos_cols[j])``. Every term is the mean over pairs, so this equals
    the pair-batch loss with each user's row repeated once per positive, while the
    costly full-catalog softmax is computed once per user instead of once per pair.
    sum(p log p) is shared by the KL and entropy terms; zero-weight terms are skipped.
    """
    logp = torch.log_softmax(logits, dim=-1)
    loss = -logp[pos_rows, pos_cols].mean()
    w = torch.bincount(pos_rows, minlength=logits.shape[0]).to(logits.dtype)
    w = w / w.sum()  # per-row weight = the row's share of the pairs
    if lambda_ls:
        loss = loss - lambda_ls * (w * logp.mean(dim=-1)).sum()
    if lambda_kl or lambda_ent:
        p = logp.exp()
        neg_entropy = (p * logp).sum(dim=-1)  # sum_a p log p = -H(p)
        if lambda_kl:
            loss = loss + lambda_kl * (w * (neg_entropy - p @ log_prior)).sum()
        if lambda_ent:
            loss = loss + lambda_ent * (w * neg_entropy).sum()
    return loss
