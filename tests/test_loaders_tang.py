"""Epinions / Ciao MATLAB loaders on fixtures written with scipy.io.savemat."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from benchmark.data.loaders import LoaderError, load_source
from benchmark.data.loaders.tang import category_domains, domain_categories, parse_catalog

EPI_CATALOG = "1 Online Stores & Services\r\n4 Books\r\n5 Music\r\n20 Musical Instruments\r\n"
CIAO_CATALOG = "1 DVDs\r\n2 Books\r\n4 Music\r\n10 Ciao Caf\xe9\r\n"


def mat_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"rating": arr})
    return buf.getvalue()


def epinions_fixture(root: Path, arr: np.ndarray, member: str = "epinions/rating.mat") -> Path:
    d = root / "epinions-tang"
    d.mkdir(parents=True, exist_ok=True)
    (d / "catalog_epinion.txt").write_text(EPI_CATALOG, newline="")
    with zipfile.ZipFile(d / "epinions.zip", "w") as z:
        z.writestr(member, mat_bytes(arr))
    return d


def ciao_fixture(root: Path, arr: np.ndarray) -> Path:
    d = root / "ciao-tang"
    d.mkdir(parents=True, exist_ok=True)
    (d / "catalog_ciao.txt").write_bytes(CIAO_CATALOG.encode("latin-1"))
    (d / "rating_with_timestamp.mat").write_bytes(mat_bytes(arr))
    return d


def test_catalog_maps_exact_names_only():
    cat = parse_catalog(EPI_CATALOG)
    assert cat[20] == "Musical Instruments"
    assert domain_categories(cat) == {4: "book", 5: "music"}
    with pytest.raises(LoaderError, match="no category for domains"):
        domain_categories(parse_catalog("1 DVDs\n5 Music\n"))
    # every other category is kept as its own domain cat<N>
    assert category_domains(cat) == {1: "cat1", 4: "book", 5: "music", 20: "cat20"}


def test_epinions_from_zip_in_memory(tmp_path):
    arr = np.array(
        [
            [1, 10, 5, 4],  # music
            [1, 20, 4, 5],  # book
            [2, 10, 5, 3],  # music
            [2, 30, 1, 5],  # other category: kept as cat1
            [3, 10, 20, 5],  # Musical Instruments: not music, kept as cat20
            [3, 11, 99, 5],  # category missing from the catalog
            [3, 12, 5, 9],  # rating out of range
            [1, 10, 5, 1],  # repeated rating: first kept
            [4, 10, 4, 2],  # product 10 also under Books
        ],
        dtype=np.int32,
    )
    d = epinions_fixture(tmp_path, arr)
    res = load_source("epinions-tang", tmp_path)
    rep = next(iter(res.files.values()))
    rep.check("epinions")
    assert rep.dropped == {"unknown_id": 1, "out_of_range": 1, "duplicate": 1}
    assert rep.rows_read == rep.rows_kept + sum(rep.dropped.values()) == len(arr)
    assert any("helpfulness" in n for n in rep.notes)
    inter = res.interactions
    assert sorted(map(tuple, inter[["user", "item", "domain", "value"]].values.tolist())) == [
        ("1", "10", "music", 4.0),
        ("1", "20", "book", 5.0),
        ("2", "10", "music", 3.0),
        ("2", "30", "cat1", 5.0),
        ("3", "10", "cat20", 5.0),
        ("4", "10", "book", 2.0),
    ]
    assert inter["timestamp"].isna().all()
    assert set(map(tuple, res.items[["domain", "item"]].values.tolist())) == {
        ("music", "10"), ("book", "20"), ("book", "10"), ("cat1", "30"), ("cat20", "10")}
    # category names travel in the prepared items table
    names = dict(zip(res.items["domain"], res.items["category_name"]))
    assert names == {"music": "Music", "book": "Books", "cat1": "Online Stores & Services", "cat20": "Musical Instruments"}
    assert dict(zip(res.items["domain"], res.items["category_id"].astype(int))) == {"music": 5, "book": 4, "cat1": 1, "cat20": 20}
    assert sorted(p.name for p in d.iterdir()) == ["catalog_epinion.txt", "epinions.zip"]  # nothing extracted


def test_epinions_zip_without_rating_mat(tmp_path):
    epinions_fixture(tmp_path, np.zeros((1, 4), dtype=np.int32), member="epinions/other.mat")
    with pytest.raises(LoaderError, match="no rating.mat"):
        load_source("epinions-tang", tmp_path)


def test_ciao_timestamps_nan_and_latest_duplicate(tmp_path):
    nan = np.nan
    arr = np.array(
        [
            [1, 5, 4, 5, 4, 1000],  # music
            [1, 6, 2, 4, 3, 2000],  # book
            [1, 5, 4, 2, 4, 3000],  # music again, later: this one is kept
            [2, 7, 2, nan, 4, 1500],  # NaN rating
            [2, 8, 2, 0, 4, 1500],  # rating 0: out of range
            [2, 9, 1, 5, 4, 1500],  # DVDs: kept as cat1
            [3, 9, 77, 5, 4, 1500],  # unknown category
        ],
        dtype=np.float64,
    )
    ciao_fixture(tmp_path, arr)
    res = load_source("ciao-tang", tmp_path, min_kept_share=0.25)  # a deliberately dirty fixture
    rep = res.files["rating_with_timestamp.mat"]
    rep.check("ciao")
    assert rep.dropped == {"not_a_number": 1, "out_of_range": 1, "unknown_id": 1, "duplicate": 1}
    inter = res.interactions.set_index(["user", "item", "domain"])
    assert inter.loc[("1", "5", "music"), "value"] == 2.0
    assert inter.loc[("1", "5", "music"), "timestamp"] == 3000
    assert inter.loc[("2", "9", "cat1"), "value"] == 5.0
    assert res.items.set_index("domain").loc["cat1", "category_name"] == "DVDs"
    assert str(res.interactions["timestamp"].dtype) == "Int64"
    assert res.interactions["timestamp"].notna().all()


def test_ciao_wrong_shape_is_clear_error(tmp_path):
    ciao_fixture(tmp_path, np.ones((2, 4), dtype=np.int32))
    with pytest.raises(LoaderError, match="expected 6"):
        load_source("ciao-tang", tmp_path)
