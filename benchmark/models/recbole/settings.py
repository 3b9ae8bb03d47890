"""RecBole's config dict for one of our fits.

Kept apart from the adapter (which fits and scores) because it is a pure mapping from
:class:`~benchmark.models.recbole.adapter.RecBoleConfig` to RecBole's settings: no
filtering, no evaluation split, nothing written outside the temporary folder, so that
RecBole sees exactly the merged graph the adapter wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SUPPORTED = ("BPR", "LightGCN", "EASE", "ItemKNN", "MultiVAE")

# Model-specific hyperparameters; None means "RecBole's own default for that model".
MODEL_KEYS = ("embedding_size", "n_layers", "reg_weight", "k", "shrink", "latent_dimension", "mlp_hidden_size", "dropout_prob", "anneal_cap", "total_anneal_steps")


def recbole_settings(cfg, data_path: str, seed: int) -> dict[str, Any]:
    """The RecBole config dict for ``cfg`` (an adapter ``RecBoleConfig``, not imported: the
    adapter imports this module): no filtering, no eval split, nothing written outside tmp."""
    if cfg.model not in SUPPORTED:
        raise ValueError(f"recbole model {cfg.model!r} is not supported; choose one of {list(SUPPORTED)}")
    if cfg.epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {cfg.epochs}")
    d: dict[str, Any] = {
        "data_path": data_path,
        "checkpoint_dir": str(Path(data_path) / "saved"),
        "seed": int(seed),
        "reproducibility": True,
        "use_gpu": False,
        "gpu_id": "",
        "state": "WARNING",
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "worker": 0,
        "load_col": {"inter": ["user_id", "item_id"]},
        # No filtering that could remove a cold user or a catalog item.
        "rm_dup_inter": None,
        "val_interval": None,
        "filter_inter_by_user_or_item": False,
        "user_inter_num_interval": "[0,inf)",
        "item_inter_num_interval": "[0,inf)",
        # Everything is training data; the benchmark's own valid users drive tuning.
        "eval_args": {"split": {"RS": [1.0, 0.0, 0.0]}, "group_by": None, "order": "RO", "mode": "full"},
        "epochs": int(cfg.epochs),
        "eval_step": 0,
        "train_batch_size": int(cfg.train_batch_size),
        "learning_rate": float(cfg.learning_rate),
        "weight_decay": float(cfg.weight_decay),
    }
    for key in MODEL_KEYS:
        val = getattr(cfg, key)
        if val is not None:
            d[key] = list(val) if key == "mlp_hidden_size" else val
    for key in ("k", "n_layers", "embedding_size", "latent_dimension", "total_anneal_steps"):
        if key in d:
            d[key] = int(d[key])
    d.update(cfg.extra)
    return d
