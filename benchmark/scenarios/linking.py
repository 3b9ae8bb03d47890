"""Linking space and multi-axis Gaussian-copula pairing for the semi-synthetic mpa-linked scenario.

Why a separate, hand-written space: the coupling between a composite user's domains
must not be made in the space the models compute in (MiniLM text embeddings of item
titles, collaborative embeddings), or the positive control would just reward models
for rediscovering the linker. The linking space here is a coarse genre/theme
lexicon applied to *tags* (Last.fm artist tags, Apple podcast genres, catalog genres
of books), which never enter item text or any model input.

Construction (documented on the dataset card):

1. every tag is mapped onto the ten themes of :data:`THEMES` by whole-word keyword
   match; an item's theme vector is its tag mass split over matched themes, normalised to 1;
2. a history's profile is the weighted sum of its items' theme vectors (the caller
   decides which items count: for books, the positively rated ones);
3. its axes (:data:`AXES`) are its share of the ten-theme profile on each theme of
   :data:`LINK_THEMES`, plus mainstreamness (mean log(1 + popularity) of its items);
   a history without a themed item has share 0 on every theme. Why these six themes:
   they are the ones both music and books really carry (mean share >= 2% in the
   Last.fm and in the Book-Crossing pool); humour, history/politics, crime and
   knowledge each hold < 0.5% of a music profile on average, so a music history's
   rank on them is set by a few stray tags no model can read off the artists, and
   matching on them would spend the assignment on noise. A fixed list, not a fitted
   one, so the axes do not move when the data are re-prepared;
4. per domain, every axis becomes normal scores Phi^-1((rank - 0.5) / n) (ties share
   their average rank), so axis k reads "how far up this domain's ranking of theme k
   the history is". The axes are matched across domains by name. Why not principal
   directions of the pooled profiles: the domains' profiles are distributed very
   differently (music is mostly rock/pop/metal, books mostly classics/crime/history),
   so pooled directions mostly separate the domains, and per-domain ones have
   arbitrary signs and orders with no correspondence across domains;
5. :func:`copula_pair`: latent t = rho * z_anchor + sqrt(1 - rho^2) * eps on every axis
   (eps iid N(0, 1)); anchors are assigned one-to-one to partner histories by minimum
   total squared distance between t and the partners' z
   (:func:`scipy.optimize.linear_sum_assignment`, exact within blocks of at most
   :data:`BLOCK` histories cut by recursive median splits, so the cost stays
   n * BLOCK^2 for large n). rho = 0 is an independent random join (t carries no
   information about the anchor); rho = 1 pairs anchors with the partners nearest to
   them in the multi-axis space.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.stats import norm, rankdata

# Whole-word keywords per theme, matched on lower-cased tags/genres.
THEMES: dict[str, tuple[str, ...]] = {
    "dark_gothic_horror": ("metal", "goth", "gothic", "dark", "darkwave", "horror", "industrial", "doom", "death", "hardcore", "grindcore", "emo", "screamo", "punk", "grunge", "noise", "vampire", "vampires", "occult", "paranormal"),
    "romance_love": ("love", "romance", "romantic", "ballad", "ballads", "sexy", "relationship", "relationships", "women's fiction", "chick lit", "erotica", "wedding", "sensual"),
    "fantasy_scifi": ("fantasy", "science fiction", "sci-fi", "scifi", "sci fi", "space", "epic", "symphonic", "psychedelic", "progressive", "dystopia", "dystopian", "magic", "dragons", "futuristic", "cyberpunk", "mythology"),
    "humour_comedy": ("comedy", "humor", "humour", "humorous", "funny", "parody", "novelty", "satire", "comedic"),
    "history_politics_news": ("history", "historical", "politics", "political", "news", "government", "war", "society", "culture", "biography", "biographies", "memoir", "memoirs", "protest", "current affairs"),
    "wellness_spiritual": ("self-help", "self help", "personal success", "personal development", "meditation", "spiritual", "spirituality", "religion", "religious", "christian", "christianity", "gospel", "worship", "health", "fitness", "wellness", "new age", "buddhism", "relax", "relaxing", "chillout", "yoga", "motivation", "motivational", "self-esteem", "stress management"),
    "crime_mystery": ("crime", "mystery", "mysteries", "detective", "thriller", "thrillers", "suspense", "true crime", "murder", "noir", "gangsta", "spy", "espionage"),
    "pop_mainstream": ("pop", "dance", "top 40", "mainstream", "disco", "r&b", "rnb", "kids", "family", "children", "children's", "teen", "young adult", "tv & film", "soundtrack", "boy band", "catchy", "party", "leisure", "sports"),
    "knowledge_business": ("science", "technology", "education", "business", "economics", "physics", "psychology", "philosophy", "finance", "investing", "leadership", "marketing", "management", "entrepreneurship", "astronomy", "neuroscience", "mathematics"),
    "arts_classic": ("classical", "classic", "classics", "literary", "literature", "poetry", "jazz", "blues", "folk", "arts", "acoustic", "singer-songwriter", "indie", "opera", "baroque", "drama", "essays", "piano", "ambient", "instrumental"),
}
THEME_NAMES = tuple(THEMES)
LINK_THEMES = ("dark_gothic_horror", "romance_love", "fantasy_scifi", "wellness_spiritual", "pop_mainstream", "arts_classic")
AXES = (*LINK_THEMES, "mainstream")
BLOCK = 2500  # max histories per assignment block (linear_sum_assignment is cubic in it)
_PATTERNS = {t: re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(k) for k in kws) + r")(?![\w-])") for t, kws in THEMES.items()}

AXIS_DOC = (
    f"{len(AXES)} axes matched across domains by name: a history's share of its ten-theme profile on each of "
    f"{', '.join(LINK_THEMES)} (0 without a themed item) and mainstreamness "
    "(mean log(1+popularity) of its items); each axis as normal scores within its domain"
)


def tag_themes(tag: str) -> list[str]:
    """Themes whose keywords occur as whole words in ``tag`` (lower-cased)."""
    s = str(tag).lower()
    return [t for t, p in _PATTERNS.items() if p.search(s)]


def item_theme_matrix(item_tags: pd.DataFrame) -> pd.DataFrame:
    """``item_tags`` (item, tag, weight) -> items x themes, each row summing to 1.

    A tag hitting several themes splits its weight equally; items none of whose tags
    hit a theme are left out (they carry no evidence in the linking space).
    """
    if item_tags.empty:
        return pd.DataFrame(columns=list(THEME_NAMES), dtype=float)
    uniq = pd.Series(item_tags["tag"].astype(str).unique())
    hits = {tag: tag_themes(tag) for tag in uniq}
    rows = [(i, th, w / len(hits[tg])) for i, tg, w in zip(item_tags["item"], item_tags["tag"].astype(str), item_tags["weight"].astype(float)) for th in hits[tg]]
    if not rows:
        return pd.DataFrame(columns=list(THEME_NAMES), dtype=float)
    long = pd.DataFrame(rows, columns=["item", "theme", "w"])
    mat = long.pivot_table(index="item", columns="theme", values="w", aggfunc="sum", fill_value=0.0)
    mat = mat.reindex(columns=list(THEME_NAMES), fill_value=0.0)
    mat = mat[mat.sum(axis=1) > 0]
    return mat.div(mat.sum(axis=1), axis=0).sort_index()


def history_profiles(inter: pd.DataFrame, item_themes: pd.DataFrame) -> pd.DataFrame:
    """``inter`` (user, item, weight) -> users x themes (summed theme mass); users
    without any themed item are absent."""
    sub = inter[inter["item"].isin(item_themes.index)]
    if sub.empty:
        return pd.DataFrame(columns=list(THEME_NAMES), dtype=float)
    vec = item_themes.loc[sub["item"]].to_numpy() * sub["weight"].to_numpy()[:, None]
    prof = pd.DataFrame(vec, columns=list(THEME_NAMES)).groupby(sub["user"].to_numpy()).sum()
    return prof[prof.sum(axis=1) > 0].sort_index()


def mainstreamness(inter: pd.DataFrame) -> pd.Series:
    """Mean log(1 + number of users of the item) over a user's distinct items."""
    pairs = inter[["user", "item"]].drop_duplicates()
    pop = pairs.groupby("item")["user"].size()
    lp = np.log1p(pairs["item"].map(pop).to_numpy(dtype=float))
    return pd.Series(lp, index=pairs["user"].to_numpy()).groupby(level=0).mean().sort_index()


def normal_scores(x: pd.Series) -> pd.Series:
    """Rank-based normal scores (average ranks for ties): a monotone map to N(0,1)."""
    if len(x) == 0:
        return x.astype(float)
    r = rankdata(x.to_numpy(), method="average")
    return pd.Series(norm.ppf((r - 0.5) / len(r)), index=x.index)


def axis_scores(users: pd.Index, profiles: pd.DataFrame, mainstream: pd.Series) -> pd.DataFrame:
    """The linking axes of every history in ``users`` (one domain's pool).

    Returns a frame indexed by user with one column per axis of :data:`AXES` (normal
    scores within the domain) and ``evidence`` (theme mass of the profile: 0 when no
    item of the history is themed).
    """
    users = pd.Index(users)
    prof = profiles.reindex(index=users, columns=list(THEME_NAMES)).fillna(0.0)
    mass = prof.sum(axis=1)
    share = prof.div(mass.where(mass > 0, 1.0), axis=0)
    ms = mainstream.reindex(users)
    if ms.isna().any():
        raise ValueError(f"{int(ms.isna().sum())} histories have no item for mainstreamness")
    out = pd.DataFrame({t: normal_scores(share[t]) for t in LINK_THEMES}, index=users)
    out["mainstream"] = normal_scores(ms)
    out["evidence"] = mass
    return out


def _assign(t: np.ndarray, z: np.ndarray) -> np.ndarray:
    """One-to-one assignment (len(t) == len(z)) minimising the summed squared distance,
    exactly within blocks of at most BLOCK rows cut by median splits on the widest axis."""
    n = len(t)
    if n <= BLOCK:
        cost = (t * t).sum(1)[:, None] + (z * z).sum(1)[None, :] - 2.0 * t @ z.T
        _, col = linear_sum_assignment(cost)
        return col
    ax = int(np.argmax(np.vstack([t, z]).var(axis=0)))
    h = n // 2
    ta, za = np.argsort(t[:, ax], kind="stable"), np.argsort(z[:, ax], kind="stable")
    out = np.empty(n, dtype=np.int64)
    for ti, zi in ((ta[:h], za[:h]), (ta[h:], za[h:])):
        out[ti] = zi[_assign(t[ti], z[zi])]
    return out


def copula_pair(anchor_z: pd.DataFrame, partner_z: pd.DataFrame, rho: float, seed: int, stream: int) -> pd.Series:
    """Pair every anchor with a distinct partner by a Gaussian copula on the axes.

    ``anchor_z`` / ``partner_z``: histories x axes (the same columns; a Series is one
    axis). ``partner_z`` must have at least as many histories as ``anchor_z``: a
    seeded random subset of the right size is drawn first (independent of rho, so
    different rho values with the same seed share their marginals and differ only in
    who is paired with whom). Returns anchor -> partner id, in the order of ``anchor_z``.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    a = (anchor_z.to_frame() if isinstance(anchor_z, pd.Series) else anchor_z).sort_index()
    p = (partner_z.to_frame() if isinstance(partner_z, pd.Series) else partner_z).sort_index()
    n = len(a)
    if len(p) < n:
        raise ValueError(f"only {len(p)} partner histories for {n} anchors: lower the pool filter")
    if list(a.columns) != list(p.columns):
        raise ValueError(f"anchor axes {list(a.columns)} differ from partner axes {list(p.columns)}")
    p = p.iloc[np.sort(np.random.default_rng([seed, stream, 0]).choice(len(p), size=n, replace=False))]
    eps = np.random.default_rng([seed, stream, 1]).standard_normal((n, a.shape[1]))
    t = rho * a.to_numpy(dtype=float) + np.sqrt(max(0.0, 1.0 - rho * rho)) * eps
    col = _assign(t, p.to_numpy(dtype=float)) if n else np.zeros(0, dtype=np.int64)
    return pd.Series(p.index[col].to_numpy(), index=a.index).reindex(anchor_z.index)


def coupling(x: np.ndarray, y: np.ndarray) -> float:
    """Agreement of paired axis vectors (rows of ``x`` with rows of ``y``): the mean
    over axes of Pearson's correlation between the two sides (0 under a random join)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    xs, ys = x - x.mean(0), y - y.mean(0)
    den = np.sqrt((xs * xs).sum(0) * (ys * ys).sum(0))
    r = np.divide((xs * ys).sum(0), den, out=np.zeros(x.shape[1]), where=den > 0)
    return float(r.mean())
