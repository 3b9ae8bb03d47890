"""Linking space and Gaussian-copula pairing for the semi-synthetic mpa-linked scenario.

Why a separate, hand-written space: the coupling between a composite user's domains
must not be made in the space the models compute in (MiniLM text embeddings of item
titles, collaborative embeddings), or the positive control would just reward models
for rediscovering the linker. The linking space here is a coarse genre/theme
lexicon applied to *tags* (Last.fm artist tags, Apple podcast genres, catalog genres
of books), which never enter item text.

Construction (documented on the dataset card):

1. every tag is mapped onto the themes of :data:`THEMES` by whole-word keyword match;
   an item's theme vector is its tag mass split over matched themes, normalised to 1;
2. a history's profile is the weighted sum of its items' theme vectors;
3. the axis is a fixed contrast: share of the profile on the *light* themes
   (:data:`LIGHT`: pop/mainstream, romance, humour, wellness/spiritual) against the
   serious/intense rest. A fixed contrast, not a fitted principal direction, so the
   axis has no sign ambiguity and does not move when the data are re-prepared;
4. a history with no themed item falls back to mainstreamness (mean log(1 +
   popularity) of its items; mainstream is read as the light end);
5. per domain, and separately within the two bases (themes / mainstreamness), the
   scores become normal scores Phi^-1((rank - 0.5) / n), so each domain's axis is
   N(0, 1)-shaped before pairing;
6. :func:`copula_pair`: latent t = rho * z_anchor + sqrt(1 - rho^2) * eps, and the
   anchors sorted by t are matched to the partner histories sorted by z. rho = 0 is
   an independent random join; rho = 1 matches by axis rank.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
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
LIGHT = frozenset({"pop_mainstream", "romance_love", "humour_comedy", "wellness_spiritual"})
_PATTERNS = {t: re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(k) for k in kws) + r")(?![\w-])") for t, kws in THEMES.items()}

AXIS_DOC = (
    "axis = share of a history's theme profile on light themes "
    f"({', '.join(sorted(LIGHT))}) vs the serious/intense rest "
    f"({', '.join(t for t in THEME_NAMES if t not in LIGHT)}); "
    "histories without a themed item use mainstreamness (mean log(1+popularity) of their items); "
    "normal scores per domain and basis"
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
    """Axis value of every history in ``users`` (one domain's pool).

    Returns a frame indexed by user with ``score`` (raw), ``basis`` ("themes" or
    "mainstreamness") and ``z`` (normal score within the domain and basis).
    """
    users = pd.Index(users)
    themed = profiles.reindex(users).dropna(how="all")
    themed = themed[themed.sum(axis=1) > 0]
    light = themed[[t for t in THEME_NAMES if t in LIGHT]].sum(axis=1) / themed.sum(axis=1)
    rest = users.difference(themed.index)
    ms = mainstream.reindex(rest)
    if ms.isna().any():
        raise ValueError(f"{int(ms.isna().sum())} histories have neither themed items nor any item for mainstreamness")
    out = pd.concat(
        [
            pd.DataFrame({"score": light, "basis": "themes", "z": normal_scores(light)}),
            pd.DataFrame({"score": ms, "basis": "mainstreamness", "z": normal_scores(ms)}),
        ]
    )
    return out.reindex(users)


def copula_pair(anchor_z: pd.Series, partner_z: pd.Series, rho: float, seed: int, stream: int) -> pd.Series:
    """Pair every anchor with a distinct partner by a Gaussian copula on the axis.

    ``partner_z`` must have at least as many histories as ``anchor_z``: a seeded
    random subset of the right size is drawn first (independent of rho, so different
    rho values with the same seed share their marginals and differ only in who is
    paired with whom). Ties are broken by seeded random keys. Returns anchor ->
    partner id, in the order of ``anchor_z``.
    """
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}")
    n = len(anchor_z)
    if len(partner_z) < n:
        raise ValueError(f"only {len(partner_z)} partner histories for {n} anchors: lower the pool filter")
    a = anchor_z.sort_index()
    p = partner_z.sort_index()
    p = p.iloc[np.sort(np.random.default_rng([seed, stream, 0]).choice(len(p), size=n, replace=False))]
    eps = np.random.default_rng([seed, stream, 1]).standard_normal(n)
    t = rho * a.to_numpy() + np.sqrt(max(0.0, 1.0 - rho * rho)) * eps
    tie = np.random.default_rng([seed, stream, 2])
    a_order = np.lexsort((tie.random(n), t))
    p_order = np.lexsort((tie.random(n), p.to_numpy()))
    paired = pd.Series(index=a.index[a_order], data=p.index[p_order].to_numpy())
    return paired.reindex(anchor_z.index)
