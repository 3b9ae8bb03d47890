"""Semi-synthetic mpa-linked scenario: Last.fm music + Apple podcasts -> Book-Crossing books.

No public dataset holds the same people in all three domains, so a *composite user*
is one Last.fm user's full music history, one Book-Crossing reader's full rating
history and, for a seeded ``podcast_share`` of them, one Apple podcast reviewer's
reviews. Every per-domain history is one real person's, unmodified; only who is put
together with whom is synthetic, and that is controlled by ``rho``
(:mod:`benchmark.scenarios.linking`): rho = 0 is the null control (independent
join), rho = 1 the positive control (partners nearest in the multi-axis theme space).

Pools (documented on the card): all Last.fm users are anchors (one composite user
each); Book-Crossing readers with >= ``min_book_positives`` explicit ratings >=
``positive_threshold`` (ratings of 0 are implicit and dropped), so every composite
user has a meaningful target, of which >= MIN_BOOK_THEMED_POSITIVES is on a book a
catalog tags with a theme, so every reader has a place in the linking space; podcast
reviewers with >= ``min_podcast_reviews`` reviews (most have exactly one).
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.config.params import LinkedScenario, parse_params_section
from benchmark.scenarios.schema import TARGET, prefixed
from benchmark.scenarios import linking
from benchmark.scenarios.export import Built, finalize_interactions, items_table, read_prepared, users_table

BOILERPLATE_MIN_ITEMS = 3  # a description shared verbatim by this many catalog items is boilerplate
STREAM = {"book": 11, "podcast": 12, "podcast_members": 13}
MIN_BOOK_THEMED_POSITIVES = 1  # book pool: positive ratings on a themed (catalog-tagged) book


# ---------------------------------------------------------------- catalog matching


def norm_isbn(x: object) -> str:
    s = re.sub(r"[^0-9Xx]", "", str(x)).upper()
    return s.zfill(10) if s.isdigit() and len(s) < 10 else s


def norm_title(x: object) -> str:
    """Lower-case ASCII title without parentheses, subtitle and leading article."""
    s = unicodedata.normalize("NFKD", str(x)).encode("ascii", "ignore").decode().lower()
    s = re.sub(r"\(.*?\)|\[.*?\]", " ", s).split(":")[0].strip()
    s = re.sub(r"^(the|a|an)\s+", "", s)
    return re.sub(r"[^a-z0-9]+", " ", s).strip()


def norm_author(x: object) -> str:
    """Last name token of the first listed author ('' if none)."""
    s = unicodedata.normalize("NFKD", str(x)).encode("ascii", "ignore").decode().lower()
    toks = re.sub(r"[^a-z ]+", " ", s.split(",")[0]).split()
    return toks[-1] if toks else ""


def _key(title: pd.Series, creator: pd.Series) -> pd.Series:
    t = title.fillna("").map(norm_title)
    a = creator.fillna("").map(norm_author)
    return (t + "|" + a).where((t != "") & (a != ""), "")


def book_catalog_evidence(books: pd.DataFrame, catalogs: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, pd.Series, dict]:
    """Tags and descriptions for Book-Crossing books from the book catalogs.

    Match by normalised ISBN (catalog column ``isbn_key``/``isbn10``/``isbn``, else an
    ISBN-looking item id) and
    by normalised title + first author's last name. Returns (item, tag, weight) rows,
    a description per matched book (first catalog in order wins; boilerplate shared by
    >= BOILERPLATE_MIN_ITEMS catalog items ignored) and match counts.
    """
    bk = books.assign(isbn=books["item"].map(norm_isbn), key=_key(books["title"], books["creator"]))
    tag_rows, desc, counts, boiler = [], {}, {}, {}
    for src, cat in catalogs.items():
        cat = cat.copy()
        if "description" in cat.columns:
            # Scraped boilerplate ("make sure you're not a robot", publisher blurbs) repeats
            # verbatim across unrelated books and says nothing about any of them.
            d = cat["description"].fillna("").astype(str).str.strip()
            shared = d.map(d.value_counts()) >= BOILERPLATE_MIN_ITEMS
            boiler[src] = int((shared & (d != "")).sum())
            cat["description"] = d.where(~shared, "")
        col = next((c for c in ("isbn_key", "isbn10", "isbn") if c in cat.columns), None)
        isbn_col = cat[col] if col else cat["item"].where(cat["item"].astype(str).str.fullmatch(r"[0-9Xx-]{9,13}"), "")
        cat["isbn_n"] = isbn_col.fillna("").map(lambda v: norm_isbn(v) if str(v) else "")
        cat["key"] = _key(cat.get("title", pd.Series("", index=cat.index)), cat.get("creator", pd.Series("", index=cat.index)))
        by_isbn = bk.merge(cat[cat["isbn_n"] != ""].drop_duplicates("isbn_n"), left_on="isbn", right_on="isbn_n", suffixes=("", "_c"))
        by_key = bk[bk["key"] != ""].merge(cat[cat["key"] != ""].drop_duplicates("key"), on="key", suffixes=("", "_c"))
        m = pd.concat([by_isbn, by_key]).drop_duplicates("item")
        counts[src] = int(len(m))
        m = m.sort_values("item", kind="mergesort")
        for item, tags, d in zip(m["item"], m.get("tags_c", pd.Series("", index=m.index)).fillna(""), m.get("description_c", pd.Series("", index=m.index)).fillna("")):
            tag_rows += [(item, t, 1.0) for t in str(tags).split("|") if t.strip()]
            if str(d).strip() and item not in desc:
                desc[item] = str(d)
    tags = pd.DataFrame(tag_rows, columns=["item", "tag", "weight"]).drop_duplicates(["item", "tag"])
    return tags, pd.Series(desc, dtype=object), {"matches": counts, "boilerplate_descriptions_ignored": boiler}


def _split_tags(items: pd.DataFrame) -> pd.DataFrame:
    if items is None or "tags" not in items.columns:
        return pd.DataFrame(columns=["item", "tag", "weight"])
    rows = [(str(i), t, 1.0) for i, tags in zip(items["item"], items["tags"].fillna("")) for t in str(tags).split("|") if t.strip()]
    return pd.DataFrame(rows, columns=["item", "tag", "weight"])


# ---------------------------------------------------------------- loading + axes


def load_histories(spec: dict, prepared_root: Path) -> dict:
    """Per domain: interactions (user, item, value, timestamp, weight), item metadata,
    item tags, plus counts for the card. Read once; reusable across rho values."""
    s = spec
    out: dict = {"counts": {}}

    mi = read_prepared(prepared_root, s["music_source"], "interactions")
    mi = mi[mi["domain"] == "music"]
    m_items = read_prepared(prepared_root, s["music_source"], "items", required=False)
    at = read_prepared(prepared_root, s["music_source"], "artist_tags", required=False)
    m_tags = at.rename(columns={"count": "weight"})[["item", "tag", "weight"]] if at is not None else _split_tags(m_items)
    out["music"] = (mi.assign(weight=np.log1p(mi["value"].astype(float).clip(lower=0))), m_items, m_tags)

    pi = read_prepared(prepared_root, s["podcast_source"], "interactions")
    pi = pi[pi["domain"] == "podcast"]
    p_items = read_prepared(prepared_root, s["podcast_source"], "items", required=False)
    out["podcast"] = (pi.assign(weight=1.0), p_items, _split_tags(p_items))

    bi = read_prepared(prepared_root, s["book_source"], "interactions")
    bi = bi[bi["domain"] == TARGET]
    implicit = bi["value"] <= 0
    out["counts"]["book_implicit_ratings_dropped"] = int(implicit.sum())
    bi = bi[~implicit]
    b_items = read_prepared(prepared_root, s["book_source"], "items", required=False)
    if b_items is None:
        b_items = pd.DataFrame({"item": bi["item"].astype(str).unique(), "title": "", "creator": ""})
    catalogs = {c: df for c in s["book_catalogs"] if (df := read_prepared(prepared_root, c, "items", required=False)) is not None}
    b_tags, b_desc, matched = book_catalog_evidence(b_items.assign(item=b_items["item"].astype(str)), catalogs)
    b_tags = pd.concat([t for t in (_split_tags(b_items), b_tags) if len(t)] or [b_tags], ignore_index=True)
    if "description" not in b_items.columns:
        b_items = b_items.assign(description="")
    fill = b_items["item"].astype(str).map(b_desc)
    b_items = b_items.assign(description=b_items["description"].fillna("").where(b_items["description"].fillna("") != "", fill.fillna("")))
    out["book"] = (bi.assign(weight=1.0), b_items, b_tags)
    out["counts"]["book_catalog_matches"] = matched["matches"]
    out["counts"]["catalog_boilerplate_descriptions_ignored"] = matched["boilerplate_descriptions_ignored"]
    out["counts"]["book_catalogs_missing"] = sorted(set(s["book_catalogs"]) - set(catalogs))
    for dom in ("music", "podcast", "book"):
        df = out[dom][0]
        out[dom] = (df.assign(user=df["user"].astype(str), item=df["item"].astype(str)), out[dom][1], out[dom][2].assign(item=out[dom][2]["item"].astype(str)))
    return out


def pools_and_axes(h: dict, spec: dict) -> dict[str, pd.DataFrame]:
    """Eligible histories per domain with their linking-axis values (see linking).

    A book history's theme profile counts its positive ratings only (what the reader
    liked, i.e. the target the models must predict), and a reader needs at least
    MIN_BOOK_THEMED_POSITIVES of them on a themed book: without one, the history has
    no place in the linking space and would be joined at random even at rho = 1.
    """
    s = spec
    thr = float(s["positive_threshold"])
    inter = {d: h[d][0] for d in ("music", "podcast", "book")}
    pos = inter["book"][inter["book"]["value"] >= thr]
    themes = {d: linking.item_theme_matrix(h[d][2]) for d in ("music", "podcast", "book")}
    themed_pos = pos[pos["item"].isin(themes["book"].index)].groupby("user")["item"].nunique()
    book_pool = pos.groupby("user").size().loc[lambda n: n >= int(s["min_book_positives"])].index
    pool = {
        "music": pd.Index(np.sort(inter["music"]["user"].unique())),
        "podcast": inter["podcast"].groupby("user").size().loc[lambda n: n >= int(s["min_podcast_reviews"])].index.sort_values(),
        "book": book_pool[themed_pos.reindex(book_pool).fillna(0).to_numpy() >= MIN_BOOK_THEMED_POSITIVES].sort_values(),
    }
    axes = {}
    for d in ("music", "podcast", "book"):
        prof = linking.history_profiles((pos if d == "book" else inter[d])[["user", "item", "weight"]], themes[d])
        axes[d] = linking.axis_scores(pool[d], prof, linking.mainstreamness(inter[d]))
    return axes


def link(axes: dict[str, pd.DataFrame], rho: float, podcast_share: float, seed: int) -> pd.DataFrame:
    """Linkage table (user, domain, source_user, evidence, one column per linking axis):
    one row per composite user and domain. Composite ids ``u0000``... follow the sorted
    Last.fm user ids."""
    if not 0.0 <= podcast_share <= 1.0:
        raise ValueError(f"podcast_share must be in [0, 1], got {podcast_share}")
    cols = list(linking.AXES)
    music = axes["music"]
    order = sorted(music.index, key=lambda u: (len(u), u))  # numeric-looking ids in numeric order
    cid = pd.Series([f"u{j:04d}" for j in range(len(order))], index=order)
    z_m = music[cols].reindex(order)
    book_of = linking.copula_pair(z_m, axes["book"][cols], rho, seed, STREAM["book"])
    n_p = int(round(podcast_share * len(order)))
    members = np.sort(np.random.default_rng([seed, STREAM["podcast_members"]]).choice(len(order), size=n_p, replace=False))
    pod_of = linking.copula_pair(z_m.iloc[members], axes["podcast"][cols], rho, seed, STREAM["podcast"]) if n_p else pd.Series(dtype=object)
    rows = []
    for dom, mapping in (("music", pd.Series(order, index=order)), ("book", book_of), ("podcast", pod_of)):
        src = mapping.to_numpy()
        ax = axes[dom].reindex(src)
        rows.append(pd.DataFrame({"user": cid.reindex(mapping.index).to_numpy(), "domain": dom, "source_user": src, "evidence": ax["evidence"].to_numpy(), **{c: ax[c].to_numpy() for c in cols}}))
    return pd.concat(rows, ignore_index=True).sort_values(["user", "domain"], kind="mergesort").reset_index(drop=True)


def coupling_by_axis(lk: pd.DataFrame, dom: str) -> dict[str, float]:
    """Pearson correlation, per axis, between composite users' music and ``dom`` axes."""
    m = lk[lk["domain"] == "music"].set_index("user")
    o = lk[lk["domain"] == dom].set_index("user")
    m = m.reindex(o.index)
    return {c: round(linking.coupling(m[c].to_numpy(), o[c].to_numpy()), 4) for c in linking.AXES} if len(o) > 2 else {}


# ---------------------------------------------------------------- the builder


def build_linked(name: str, spec: dict, prepared_root: Path) -> Built:
    # Through the params schema: defaults filled in one place, typos refused.
    s = parse_params_section(LinkedScenario, {"builder": "linked", **spec}, f"scenarios.{name}").model_dump()
    thr = float(s["positive_threshold"])
    h = load_histories(s, prepared_root)
    axes = pools_and_axes(h, s)
    lk = link(axes, float(s["rho"]), float(s["podcast_share"]), int(s["seed"]))

    parts = []
    for dom in ("music", "podcast", "book"):
        m = lk[lk["domain"] == dom]
        src = h[dom][0].merge(m[["user", "source_user"]].rename(columns={"user": "cu"}), left_on="user", right_on="source_user")
        parts.append(pd.DataFrame({"user": src["cu"], "item": [prefixed(dom, i) for i in src["item"]], "domain": dom, "value": src["value"], "timestamp": src["timestamp"] if "timestamp" in src else pd.NA, "positive": (src["value"] >= thr) if dom == TARGET else True}))
    inter = finalize_interactions(pd.concat(parts, ignore_index=True))
    items = items_table(inter, {d: h[d][1] for d in ("music", "podcast", "book")})
    evaluable = set(inter.loc[(inter["domain"] == TARGET) & inter["positive"], "user"]) & set(inter.loc[inter["domain"] == "music", "user"])

    cb = {d: coupling_by_axis(lk, d) for d in ("book", "podcast")}
    linkage_note = {
        "method": f"Gaussian copula on {len(linking.AXES)} linking axes: per axis latent t = rho*z_anchor + sqrt(1-rho^2)*noise; anchors (Last.fm users) assigned one-to-one to partner histories by minimum total squared distance between t and the partners' z (linear_sum_assignment in blocks of <= {linking.BLOCK})",
        "linking_space": "coarse genre/theme lexicon over tags (Last.fm artist tags, Apple podcast genres, book catalog genres matched by ISBN or title+author) plus mainstreamness; disjoint from the models' feature space: tags never enter item text (the text tower reads title, author and description) nor any interaction matrix the models are fitted on; a catalog description can still name a genre its tags name, so the features are disjoint but not unrelated",
        "axes": linking.AXIS_DOC,
        "profiles": "music: artists weighted by log(1+plays); book: positively rated books only; podcast: reviewed podcasts",
        "themes": ", ".join(linking.THEME_NAMES),
        "rho": float(s["rho"]),
        "seed": int(s["seed"]),
        "podcast_share": float(s["podcast_share"]),
        "min_book_positives": int(s["min_book_positives"]),
        "min_podcast_reviews": int(s["min_podcast_reviews"]),
        "shared_across_rho": "with the same seed, the chosen book/podcast histories and the podcast cohort are identical for every rho; only the pairing changes",
        "pools": f"music: all {len(axes['music'])} Last.fm users; book: {len(axes['book'])} Book-Crossing readers with >= {s['min_book_positives']} ratings >= {thr:g}, >= {MIN_BOOK_THEMED_POSITIVES} of them on a themed book; podcast: {len(axes['podcast'])} reviewers with >= {s['min_podcast_reviews']} review(s)",
        "themed_share": {d: round(float((axes[d]["evidence"] > 0).mean()), 4) for d in axes},
        "coupling_music_book": round(float(np.mean(list(cb["book"].values()))), 4) if cb["book"] else None,
        "coupling_music_podcast": round(float(np.mean(list(cb["podcast"].values()))), 4) if cb["podcast"] else None,
        "coupling_music_book_by_axis": cb["book"],
        "coupling_definition": "Pearson correlation of a composite user's music and partner axis values, per axis, averaged over axes (0 for a random join)",
        "audit_file": "linkage.parquet (user, domain, source_user, evidence, one column per axis)",
    }
    filters = {
        "book_implicit_ratings_dropped": h["counts"]["book_implicit_ratings_dropped"],
        "book_catalog_matches": h["counts"]["book_catalog_matches"],
        "book_catalogs_missing": h["counts"]["book_catalogs_missing"],
        "catalog_boilerplate_descriptions_ignored": h["counts"]["catalog_boilerplate_descriptions_ignored"],
        "book_text": "title by author, plus a catalog description where a catalog matches",
        "evaluable_rule": "every composite user has music and >= min_book_positives book positives",
    }
    return Built(
        interactions=inter,
        items=items,
        users=users_table(inter, evaluable),
        source_domains=["music", "podcast"],
        semi_synthetic=True,
        sources=[s["music_source"], s["podcast_source"], s["book_source"], *[c for c in s["book_catalogs"] if c not in h["counts"]["book_catalogs_missing"]]],
        notes={"linkage": linkage_note, "filters": filters},
        extra_tables={"linkage.parquet": lk},
    )
