"""The static web leaderboard: built from a fake report, checked as files and in a real browser.

Why a real browser: sorting, the no-network policy (a Content-Security-Policy that pins
the inline script and style by hash) and relative links only prove themselves when a
browser loads the pages from ``file://``; string checks on the HTML cannot show that the
script runs or that a click reorders rows. Debian's ``/usr/bin/chromium`` is driven by
playwright (its own browser download is never used). Without chromium the browser test
skips, unless ``CDRBENCH_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import csv
import html
import json
import os
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from benchmark.config import paths
from benchmark.report import build_report
from benchmark.report.site import dataset_href, model_href, scenario_href, write_site
from fake_runs import fake_params, write_fake_runs

EVIL = "external-evil<script>alert(1)"  # a submitter-chosen model key (and so its display name)
REAL = {"popularity": 0.0, "collopop-artist": 0.35, "map2t-music": 0.7, "itemknn": 0.05, "bpr": -0.6, EVIL: 0.3}
LINKED = {"popularity": 0.0, "collopop-artist": 0.35, "map2t-full": 0.8, "map2t-concat": 0.45}
SCEN = {"fake-real": {"builder": "real"}, "fake-linked": {"builder": "linked", "rho": 1.0},
        "fake-empty": {"builder": "real"}}
EVIL_SPEC = """key: evil
class: benchmark.models.baselines:Popularity
display_name: 'Evil <script>alert(2)</script>'
family: baseline
description: 'desc <img src=x onerror=alert(3)>'
card: |
  # Evil card

  <script>alert(4)</script> and <img src="x" onerror="alert(5)"> and [a link](javascript:alert(6)).
"""
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    runs = root / "runs"
    write_fake_runs(runs, "fake-real", REAL, external=(EVIL,))
    write_fake_runs(runs, "fake-linked", LINKED, semi=True)
    build_report(runs, root / "results", fake_params(SCEN))
    models = root / "models"
    shutil.copytree(paths.MODEL_CARDS, models)
    (models / "evil.yaml").write_text(EVIL_SPEC)
    datasets = root / "datasets"
    for s in ("fake-real", "fake-linked"):
        (datasets / s).mkdir(parents=True)
        (datasets / s / "CARD.md").write_text(f"# Dataset card: {s}\n\n| domain | users |\n|---|---|\n| book | 80 |\n")
    out = root / "results" / "site"
    written = write_site(root / "results", out, models, datasets)
    return {"root": root, "out": out, "written": written, "args": (root / "results", models, datasets)}


class _Refs(HTMLParser):
    """Every (tag, attribute, value) that references another file, plus the script tags."""

    def __init__(self):
        super().__init__()
        self.refs, self.scripts, self.handlers, self.csp = [], [], [], ""

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") or (tag == "object" and k == "data"):
                self.refs.append((tag, k, v or ""))
        if tag == "script":
            self.scripts.append(dict(attrs))
        self.handlers += [(tag, k) for k, _ in attrs if k.startswith("on")]
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp = dict(attrs).get("content") or ""


def _refs(path: Path) -> _Refs:
    p = _Refs()
    p.feed(path.read_text())
    return p


def _board(site, scenario) -> list[dict]:
    with open(site["root"] / "results" / "leaderboard" / f"{scenario}.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_pages_exist_for_every_scenario_model_and_dataset(site):
    out = site["out"]
    for s in SCEN:
        assert (out / scenario_href(s)).is_file() and (out / dataset_href(s)).is_file(), s
    for m in REAL:
        assert (out / model_href(m)).is_file(), m
    assert model_href(EVIL) != f"model-{EVIL}.html" and "<" not in model_href(EVIL)  # a file-name-safe slug
    assert "not available: no model has runs for scenario fake-empty" in (out / scenario_href("fake-empty")).read_text()
    assert "No card at datasets/fake-empty/CARD.md" in (out / dataset_href("fake-empty")).read_text()
    assert set(site["written"]) == {p for p in out.rglob("*") if p.is_file()}
    # the page's setting line is the leaderboard's own: setting name, revision and modelling-code hash included
    line = json.loads((site["root"] / "results" / "leaderboard" / "fake-real.json").read_text())["setting_text"]
    assert "modelling-code hash" in line and html.escape(line, quote=False) in (out / scenario_href("fake-real")).read_text()


def test_values_from_csv_and_yaml_are_escaped(site):
    out = site["out"]
    for page in (out / "index.html", out / scenario_href("fake-real"), out / model_href(EVIL), out / model_href("evil")):
        text = page.read_text()
        assert text.count("<script") == 1, f"{page.name}: a script tag besides the site's own"
        refs = _refs(page)
        assert len(refs.scripts) == 1 and not refs.handlers, (page.name, refs.handlers)
        assert "<img src=x" not in text and '<img src="x"' not in text, page.name
    scen = (out / scenario_href("fake-real")).read_text()
    assert "evil&lt;script&gt;alert(1)" in scen
    card = (out / model_href("evil")).read_text()
    assert "Evil &lt;script&gt;alert(2)&lt;/script&gt;" in card
    assert "&lt;script&gt;alert(4)&lt;/script&gt;" in card and "&lt;img src=&quot;x&quot;" in card
    assert not [v for _, _, v in _refs(out / model_href("evil")).refs if "javascript:" in v]  # markdown-it refuses it


def test_every_linked_page_exists_and_nothing_is_fetched_from_the_network(site):
    out = site["out"]
    index = _refs(out / "index.html")
    linked = {v.split("#")[0] for t, k, v in index.refs if t == "a"}
    assert {scenario_href(s) for s in SCEN} | {dataset_href(s) for s in SCEN} | {"tables.html"} <= linked
    for page in sorted(out.glob("*.html")):
        refs = _refs(page)
        for tag, attr, v in refs.refs:
            assert not v.startswith(("http://", "https://", "//")), f"{page.name}: network reference {tag} {attr}={v}"
            target = unquote(v.split("#")[0])
            if target:
                assert (out / target).is_file(), f"{page.name}: {tag} {attr}={v} points to no file"
        assert not any("src" in s for s in refs.scripts), f"{page.name}: external script"
        text = page.read_text()
        assert "url(" not in text and "@import" not in text and 'rel="stylesheet"' not in text, page.name
        assert refs.csp.startswith("default-src 'none';"), f"{page.name}: no Content-Security-Policy"
    scen = _refs(out / scenario_href("fake-real"))
    assert {model_href(r["model"]) for r in _board(site, "fake-real")} <= {v for _, _, v in scen.refs}
    assert dataset_href("fake-real") in {v for _, _, v in scen.refs}
    assert any(v == "figures/leaderboard_fake-real.png" for t, _, v in scen.refs if t == "img")
    assert "figures/overview_vs_popularity.png" in {v for t, _, v in index.refs if t == "img"}  # the heatmap, on the front page


def test_semi_synthetic_banner_marks_and_tuned_configs(site):
    out = site["out"]
    linked, real = (out / scenario_href("fake-linked")).read_text(), (out / scenario_href("fake-real")).read_text()
    assert 'class="banner"' in linked and "SEMI-SYNTHETIC" in linked
    assert 'class="banner"' not in real
    for mark in ("significantly better", "significantly worse", "collapsed to Popularity", "adapted"):
        assert mark in real, mark
    assert "0.05" in real and "Holm" in real
    page = (out / model_href("map2t-music")).read_text()  # fake tuning: lr = 0.01 * (fold + 1)
    assert "lr=0.01" in page and "lr=0.02" in page and scenario_href("fake-real") in page


def test_output_is_deterministic_and_stale_pages_go(site, tmp_path):
    results, models, datasets = site["args"]
    other = tmp_path / "site"
    other.mkdir()
    (other / "scenario-gone.html").write_text("stale")
    again = write_site(results, other, models, datasets)
    assert not (other / "scenario-gone.html").exists()
    assert [p.relative_to(other) for p in again] == [p.relative_to(site["out"]) for p in site["written"]]
    for a, b in zip(site["written"], again):
        assert a.read_bytes() == b.read_bytes(), a.name


def _browser():
    """Playwright's sync API and chromium, or a skip (a failure when CI requires the browser)."""
    required = os.environ.get("CDRBENCH_REQUIRE_BROWSER") == "1"
    if not CHROMIUM.exists():
        if required:
            pytest.fail(f"{CHROMIUM} missing and CDRBENCH_REQUIRE_BROWSER=1 (install: apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} missing (install Debian's chromium; CI sets CDRBENCH_REQUIRE_BROWSER=1)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("playwright not installed and CDRBENCH_REQUIRE_BROWSER=1 (pip install -e '.[test]')")
        pytest.skip("playwright not installed (test extra)")
    return sync_playwright


def _column(page, idx: int) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard tbody tr", f"rs => rs.map(r => r.cells[{idx}].getAttribute('data-sort') || '')")


def _order(page) -> list[str]:
    return page.eval_on_selector_all("#leaderboard tbody tr", "rs => rs.map(r => r.dataset.model)")


def test_site_in_a_real_browser(site, tmp_path):
    sync_playwright = _browser()
    out, start = site["out"], time.perf_counter()
    rows = _board(site, "fake-real")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto((out / "index.html").as_uri())
            assert page.title().startswith("Overview")
            assert page.locator("#scenarios tbody tr").count() == len(SCEN)
            page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
            page.click(f'#scenarios a[href="{scenario_href("fake-real")}"]')  # follow the link, as a reader would
            assert page.url.endswith(scenario_href("fake-real"))

            # every model of the CSV is a row, shown under its (escaped) display name
            before = _order(page)
            assert sorted(before) == sorted(r["model"] for r in rows) and len(before) == len(rows)
            names = page.eval_on_selector_all("#leaderboard tbody tr td:nth-child(2) a", "as => as.map(a => a.textContent)")
            assert names == [next(r["name"] for r in rows if r["model"] == m) for m in before]

            # a numeric column whose descending order differs from the current one: click, then click again
            heads = page.eval_on_selector_all("#leaderboard thead th", "hs => hs.map(h => h.textContent)")
            # (the fake runs' metrics all follow one skill, so the collapse figures are among the candidates)
            value = {r["model"]: r for r in rows}
            col = {h: h for h in heads if h in rows[0]} | {f"vs Pop {h}": f"rel_{h}" for h in heads if h in rows[0]}
            col |= {"Distinct top-10": "distinct_share", "Pop overlap": "pop_overlap"}
            pick = next(h for h in heads if h in col and
                        sorted(before, key=lambda m: -float(value[m][col[h]])) != before)
            idx, c = heads.index(pick), col[pick]
            page.locator("#leaderboard thead th").nth(idx).click()
            after = _order(page)
            vals = [float(v) for v in _column(page, idx)]
            assert after != before, f"clicking {pick} left the order unchanged"
            assert vals == sorted(vals, reverse=True) and vals == [float(value[m][c]) for m in after]
            assert after == sorted(before, key=lambda m: -float(value[m][c]))  # stable: ties keep their order
            page.locator("#leaderboard thead th").nth(idx).click()
            up = [float(v) for v in _column(page, idx)]
            assert up == sorted(up) and _order(page) != after
            assert page.locator("#leaderboard thead th").nth(idx).get_attribute("aria-sort") == "ascending"

            page.fill('input[data-filter="leaderboard"]', "heuristic")  # the filter box: one family
            visible = page.eval_on_selector_all("#leaderboard tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.model)")
            assert visible == [m for m in _order(page) if value[m]["family"] == "heuristic"] and 0 < len(visible) < len(rows)
            page.fill('input[data-filter="leaderboard"]', "")

            shot = tmp_path / "scenario-fake-real.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            img = page.locator('img[src="figures/leaderboard_fake-real.png"]')
            img.scroll_into_view_if_needed()
            page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle())

            page.goto((out / scenario_href("fake-linked")).as_uri())
            assert page.locator(".banner").inner_text().startswith("SEMI-SYNTHETIC")
        finally:
            browser.close()
    assert not errors, f"console errors (a CSP violation shows here): {errors}"
    assert requests and all(u.startswith("file://") for u in requests), [u for u in requests if not u.startswith("file://")]
    print(f"\n[site] browser check {time.perf_counter() - start:.1f}s; screenshot {shot}")
