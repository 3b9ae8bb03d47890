"""A static web leaderboard: the report's own outputs as pages one can sort and follow.

Why it reads files and not the report's frames: the site is a view of what the report
stage already wrote (``results/leaderboard/<scenario>.csv|json``, ``results/tables``,
``results/figures``) plus the cards (``models/<key>.yaml``, ``datasets/<name>/CARD.md``),
so every number on a page is the CSV's number, and the site can be rebuilt without the
run records. Pages: ``index.html`` (scenarios, the real-data replication table),
``scenario-<name>.html``, ``model-<key>.html``, ``dataset-<name>.html``, ``tables.html``.

Self-contained, for ``file://`` and any static host: inline CSS and a small vanilla JS
sorter (their hashes pinned by a Content-Security-Policy that forbids every network
fetch), figures and data files copied beside the pages, links relative. Submitters choose
model names, so every value from a CSV/YAML is HTML-escaped and card Markdown is rendered
by markdown-it-py with raw HTML disabled. Deterministic (sorted inputs, no timestamps):
unchanged inputs give byte-identical pages, so DVC sees no change.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from benchmark.evaluation.collapse import MAX_DISTINCT_SHARE, MAX_POP_OVERLAP
from benchmark.report.runs import HEADLINE, MARK_BETTER, MARK_REF, MARK_WORSE, fmt_rel

from benchmark.report.htmlkit import (  # noqa: F401  (hrefs re-exported for tests and callers)
    SEMI_TEXT, _CAPTIONS, _METRIC, _badges, _e, _interval, _md, _num, _page, _slug, _table, _td, _u, dataset_href, model_href, scenario_href,
)

__all__ = ["write_site"]

@dataclass
class Board:
    """One scenario's leaderboard as the report wrote it (CSV rows as strings, JSON meta)."""

    name: str
    rows: list[dict] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    status: str = ""
    level: str = ""

    @property
    def semi(self) -> bool:
        return bool(self.meta.get("semi_synthetic"))

    def ks(self) -> list[int]:
        found = {int(m.group(2)) for c in (self.rows[0] if self.rows else {}) if (m := _METRIC.match(c))}
        return sorted(found)

    def name_of(self, key: str | None) -> str:
        return next((r["name"] for r in self.rows if r["model"] == key), key or "none")

    def setting_text(self) -> str:
        """The leaderboard's own setting line (setting name, revision, code hash, folds): written by the report."""
        return str(self.meta.get("setting_text") or "")


def load_boards(lb_dir: Path) -> list[Board]:
    """Every scenario with a leaderboard CSV or JSON; real scenarios first, then by name."""
    names = sorted({p.stem for p in lb_dir.glob("*.csv")} | {p.stem for p in lb_dir.glob("*.json")}) if lb_dir.is_dir() else []
    boards = []
    for s in names:
        b = Board(s)
        if (lb_dir / f"{s}.json").is_file():
            b.meta = json.loads((lb_dir / f"{s}.json").read_text())
        if (lb_dir / f"{s}.csv").is_file():
            with open(lb_dir / f"{s}.csv", newline="") as f:
                rows = list(csv.DictReader(f))
            if rows and "model" in rows[0]:
                b.rows = rows
            elif rows:
                b.status = rows[0].get("status", "")
        b.status = b.status or ("" if b.rows else f"not available: no model has runs for scenario {s}")
        md = lb_dir / f"{s}.md"
        lvl = re.search(r"(\d+)% bootstrap interval", md.read_text()) if md.is_file() else None
        b.level = f"{lvl.group(1)}% " if lvl else ""
        boards.append(b)
    return sorted(boards, key=lambda b: (b.semi, b.name))


def _figures(fig_dir: Path, scenario: str) -> str:
    out = []
    for p in sorted(fig_dir.glob(f"*_{scenario}.png")):
        prefix = p.stem[: -len(scenario) - 1]
        cap = f"{_CAPTIONS.get(prefix, prefix.replace('_', ' '))} ({scenario})."
        out.append(f'<figure><img src="figures/{_u(p.name)}" alt="{_e(cap)}" loading="lazy">'
                   f"<figcaption>{_e(cap)}</figcaption></figure>")
    return "\n".join(out)


def _notes(b: Board) -> str:
    best = b.meta.get("strongest_baseline")
    n_boot = b.meta.get("n_boot", "")
    gain = f"<dt>Transfer gain</dt><dd>{_md(b.meta['transfer_gain'])}</dd>\n" if b.meta.get("transfer_gain") else ""
    return f"""<dl class="notes">
<dt>Intervals</dt><dd>Absolute metrics: mean over evaluated users pooled over all runs, {_e(b.level)}bootstrap interval in
brackets ({_e(n_boot)} resamples). "vs Pop" columns: improvement over Popularity computed per (seed, fold) run and
averaged, with a paired bootstrap interval. The CSV and JSON below hold every metric at every K.</dd>
<dt>Sig. (significance marks)</dt><dd>Paired sign-flip test on per-user {_e(HEADLINE)} against the strongest baseline
({_e(b.name_of(best))}), Holm-corrected across models at alpha={_e(b.meta.get('alpha', ''))}:
<b>{MARK_BETTER}</b> significantly better, <b>{MARK_WORSE}</b> significantly worse, <b>{MARK_REF}</b> the reference
itself; blank: no significant difference.</dd>
{gain}<dt><span class="badge collapsed">collapsed to Popularity</span></dt><dd>Most of the model's runs have distinct
ordered top-10 lists for at most {MAX_DISTINCT_SHARE:.0%} of users or a Pop overlap (mean share of a user's top 10 in
Popularity's top 10) of at least {MAX_POP_OVERLAP:.1f}: its score is Popularity's, not transfer
(benchmark/evaluation/collapse.py).</dd>
<dt><span class="badge adapted">adapted</span></dt><dd>The model's paper scores users from their own target history,
which a cold-start user does not have; the row is the closest adaptation its architecture allows (its model card says
what was changed and how a zero-history user is scored), not the paper's model as published.</dd>
<dt><span class="badge external">external</span></dt><dd>A scored submission, tuned by its authors, not by the
benchmark.</dd></dl>"""


def scenario_page(b: Board, fig_dir: Path) -> tuple[str, str]:
    body = [f"<h1>Leaderboard: {_e(b.name)}</h1>"]
    if b.semi:
        body.append(f'<div class="banner" role="note">{_e(SEMI_TEXT)}</div>')
    body.append(f'<p>Dataset: <a href="{dataset_href(b.name)}">card of {_e(b.name)}</a>. '
                f"Setting: {_e(b.setting_text() or 'n/a')}.</p>")
    if not b.rows:
        body.append(f"<p><b>{_e(b.status)}</b></p>")
        return b.name, "\n".join(body)
    ks = b.ks()
    k0, k1 = ks[0], ks[min(1, len(ks) - 1)]
    shown = list(dict.fromkeys([HEADLINE, f"P@{k0}", f"R@{k0}", f"HR@{k0}", f"P@{k1}", f"HR@{k1}"]))
    rels = list(dict.fromkeys([HEADLINE, f"P@{k0}"]))
    heads = [("#", "num", "rank by " + HEADLINE), ("Model", "text", "links to the model card"), ("Family", "text", ""),
             ("Runs", "num", "(seed, fold) runs")]
    heads += [(c, "num", f"{c}: mean [interval]") for c in shown]
    heads += [(f"vs Pop {c}", "num", f"relative improvement over Popularity on {c}, %") for c in rels]
    gain = "transfer_gain" in b.rows[0]  # real scenarios with a null twin (benchmark/report/transfer.py)
    heads += [("Sig.", "text", "see the notes under the table")]
    heads += [(f"Transfer gain {HEADLINE}", "num", "real minus null twin, per user")] if gain else []
    heads += [("Distinct top-10", "num", "distinct lists / users"),
              ("Pop overlap", "num", "")]
    rows = []
    for i, r in enumerate(b.rows, 1):
        collapsed = r.get("collapsed") == "True"
        share = _num(r.get("distinct_share"))
        dist = ("" if not np.isfinite(share) else f"{100 * share:.1f}%") + (
            '<span class="badge collapsed">collapsed to Popularity</span>' if collapsed else "")
        cells = [_td(str(i), i, "num"),
                 _td(f'<a href="{model_href(r["model"])}">{_e(r["name"])}</a>{_badges(r)}', r["name"]),
                 _td(_e(r.get("family")))] + [_td(_e(r.get("n_runs")), r.get("n_runs"), "num")]
        cells += [_interval(r, c) for c in shown] + [_interval(r, f"rel_{c}", rel=True) for c in rels]
        ov = _num(r.get("pop_overlap"))
        cells.append(_td(_e(r.get("mark"))))
        if gain:
            cells.append(_interval(r, "transfer_gain", extra=f' <span class="ci">{_e(r.get("transfer_mark"))}</span>'))
        cells += [_td(dist, r.get("distinct_share", ""), "num"),
                  _td("" if not np.isfinite(ov) else f"{ov:.2f}", r.get("pop_overlap", ""), "num")]
        cls = ' class="collapsed"' if collapsed else ""
        rows.append(f'<tr data-model="{_e(r["model"])}"{cls}>' + "".join(cells) + "</tr>")
    body.append("<p>Click a column header to sort by it, click again to reverse.</p>")
    body.append(_table("leaderboard", heads, rows, filt=True))
    body.append(_notes(b))
    body.append("<h2>Tuned configurations</h2>\n<p>Chosen on validation users, per fold (summary over runs; "
                "each model's page lists every run's configuration).</p>")
    cfg = ["<tr>" + _td(f'<a href="{model_href(r["model"])}">{_e(r["name"])}</a>', r["name"])
           + _td(_e(r.get("tuned_config")), cls="cfg") + "</tr>" for r in b.rows]
    body.append(_table("configs", [("Model", "text", ""), ("Tuned config", "text", "")], cfg))
    body.append("<p>Data: " + " · ".join(f'<a href="data/{_u(f"{b.name}.{ext}")}">{label}</a>' for ext, label in
                                           (("csv", "CSV"), ("json", "JSON"), ("md", "Markdown"))) + "</p>")
    figs = _figures(fig_dir, b.name)
    if figs:
        body += ["<h2>Figures</h2>", figs]
    return b.name, "\n".join(body)


def _read_spec(models_dir: Path, key: str) -> dict:
    p = models_dir / f"{key}.yaml"
    if not p.is_file():
        return {}
    spec = yaml.safe_load(p.read_text())
    return spec if isinstance(spec, dict) else {}


def _cfg_text(cfg: dict) -> str:
    return "; ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in sorted((cfg or {}).items())) or "(nothing tuned)"


def model_page(key: str, spec: dict, boards: list[Board]) -> tuple[str, str]:
    mine = [(b, next(r for r in b.rows if r["model"] == key)) for b in boards if any(r["model"] == key for r in b.rows)]
    first = mine[0][1] if mine else {}
    name = spec.get("display_name") or first.get("name") or key
    badges = _badges({"external": first.get("external"), "adapted": "True" if spec.get("adapted") is True else first.get("adapted")})
    body = [f"<h1>{_e(name)}{badges}</h1>",
            f"<p>Key <code>{_e(key)}</code> · family {_e(spec.get('family') or first.get('family') or 'n/a')}</p>",
            f"<p>{_e(spec.get('description') or first.get('description') or '')}</p>", "<h2>Results</h2>"]
    rows = []
    for b, r in mine:
        rank = next(i for i, x in enumerate(b.rows, 1) if x["model"] == key)
        kind = '<span class="badge semi">SEMI-SYNTHETIC</span>' if b.semi else "real"
        rows.append("<tr>" + "".join([
            _td(f'<a href="{scenario_href(b.name)}">{_e(b.name)}</a>', b.name), _td(kind, "semi" if b.semi else "real"),
            _interval(r, HEADLINE), _interval(r, f"rel_{HEADLINE}", rel=True), _td(_e(r.get("mark"))),
            _td(f"{rank} of {len(b.rows)}", rank, "num"), _td(_e(r.get("tuned_config")), cls="cfg")]) + "</tr>")
    if rows:
        body.append(_table("results", [("Scenario", "text", ""), ("Kind", "text", ""), (HEADLINE, "num", ""),
                                       (f"vs Pop {HEADLINE}", "num", "%"), ("Sig.", "text", "see the scenario page"),
                                       ("Rank", "num", f"by {HEADLINE}"), ("Tuned config (summary)", "text", "")], rows))
    else:
        body.append("<p>No runs in any leaderboard.</p>")
    if spec:
        body.append(f'<h2>Model card</h2>\n<article class="card">{_md(spec.get("card") or "(no card text)")}</article>')
    else:
        body.append("<h2>Model card</h2>\n<p>No spec under models/: an external submission, described by its authors "
                    "(description above).</p>")
    body.append("<h2>Tuned configuration per scenario</h2>\n<p>Chosen on each fold's validation users "
                "(test users never seen); one row per (seed, fold) run.</p>")
    trs = ["<tr>" + "".join([_td(f'<a href="{scenario_href(b.name)}">{_e(b.name)}</a>', b.name),
                             _td(_e(p.get("seed")), p.get("seed"), "num"), _td(_e(p.get("fold")), p.get("fold"), "num"),
                             _td(_e(_cfg_text(p.get("chosen_config"))), cls="cfg"),
                             _td(_e(p.get("inherited_from") or "")), _td(_e(p.get("note") or ""), cls="cfg")]) + "</tr>"
           for b, _ in mine for p in (b.meta.get("tuned_configs") or {}).get(key) or []]
    body.append(_table("configs", [("Scenario", "text", ""), ("Seed", "num", ""), ("Fold", "num", ""),
                                   ("Chosen config", "text", ""), ("Inherited from", "text", ""), ("Note", "text", "")], trs)
                if trs else "<p>n/a: no runs.</p>")
    if spec:
        shown = {k: spec[k] for k in ("config", "search_space", "tune_from", "train_cohort", "applies_to") if k in spec}
        body.append("<h2>Spec (default config and search space)</h2>\n<pre>"
                    + _e(yaml.safe_dump(shown, sort_keys=True, allow_unicode=True)) + "</pre>")
    return name, "\n".join(body)


def dataset_page(name: str, datasets_dir: Path, board: Board | None) -> tuple[str, str]:
    card = datasets_dir / name / "CARD.md"
    body = [f"<h1>Dataset card: {_e(name)}</h1>"]
    if board is not None and board.semi:
        body.append(f'<div class="banner" role="note">{_e(SEMI_TEXT)}</div>')
    if board is not None:
        body.append(f'<p>Leaderboard: <a href="{scenario_href(name)}">{_e(name)}</a></p>')
    body.append(f'<article class="card">{_md(card.read_text())}</article>' if card.is_file()
                else f"<p>No card at datasets/{_e(name)}/CARD.md.</p>")
    return f"dataset {name}", "\n".join(body)


def _replication(tables_dir: Path) -> str:
    """Table 7 (every model on the real scenarios, relative to Popularity) as sortable tables per metric."""
    path, md = tables_dir / "table7_real_replication.csv", tables_dir / "table7_real_replication.md"
    rows = list(csv.DictReader(open(path, newline=""))) if path.is_file() else []
    intro = md.read_text().split("\n## ")[0] if md.is_file() else ""
    intro = "\n".join(ln for ln in intro.splitlines() if not ln.startswith("# "))
    out = ["<h2>Real-data replication (Table 7)</h2>", _md(intro)]
    ok = [r for r in rows if "metric" in r]
    if not ok:
        return "\n".join(out + ["<p>not available: no real scenario has runs.</p>"])
    scen = list(dict.fromkeys(r["scenario"] for r in ok))
    for metric in dict.fromkeys(r["metric"] for r in ok):
        cells: dict[str, dict[str, dict]] = {}
        for r in ok:
            if r["metric"] == metric and r.get("model"):
                cells.setdefault(r["model"], {})[r["scenario"]] = r
        trs = []
        for key in sorted(cells, key=lambda k: (next(iter(cells[k].values()))["name"], k)):
            first = next(iter(cells[key].values()))
            tds = [_td(f'<a href="{model_href(key)}">{_e(first["name"])}</a>', first["name"])]
            for s in scen:
                r = cells[key].get(s)
                if r is None or r.get("status") != "ok":
                    why = r.get("status") if r else f"not available: no runs on {s}"
                    tds.append(f'<td class="num" data-sort="" title="{_e(why)}">not available</td>')
                    continue
                t = fmt_rel((_num(r["rel_pct"]), _num(r["lo"]), _num(r["hi"])))
                head, _, ci = t.partition(" [")
                tds.append(_td(f'{_e(head)} <span class="ci">[{_e(ci)}</span> <b>{_e(r.get("mark") or "")}</b>',
                               r["rel_pct"], "num"))
            trs.append("<tr>" + "".join(tds) + "</tr>")
        out.append(f"<h3>{_e(metric)}, relative to Popularity (%)</h3>")
        out.append(_table(f"t7-{_slug(metric)}", [("Model", "text", "")] + [(s, "num", "") for s in scen], trs))
    return "\n".join(out)


def index_page(boards: list[Board], tables_dir: Path, fig_dir: Path, models: list[tuple[str, str, str]]) -> tuple[str, str]:
    body = ["<h1>cdrbench: cross-domain cold-start recommendation</h1>",
            "<p>Test users have <b>no</b> target (book) history: every model scores them from their source history "
            "(music, podcasts). One leaderboard per scenario; intervals are bootstrap intervals over users, marks come from "
            "paired tests against each scenario's strongest baseline. All tables: <a href=\"tables.html\">tables.html</a>.</p>",
            "<h2>Scenarios</h2>"]
    rows = []
    for b in boards:
        kind = '<span class="badge semi">SEMI-SYNTHETIC</span>' if b.semi else "real"
        top = max(b.rows, key=lambda r: (np.nan_to_num(_num(r.get(HEADLINE)), nan=-np.inf)), default=None)
        best = b.meta.get("strongest_baseline")
        tds = [_td(f'<a href="{scenario_href(b.name)}">{_e(b.name)}</a>', b.name), _td(kind, "semi" if b.semi else "real"),
               _td(f'<a href="{dataset_href(b.name)}">card</a>'), _td(str(len(b.rows)), len(b.rows), "num"),
               _td(_e((b.meta.get("setting") or {}).get("n_test_users", "")), (b.meta.get("setting") or {}).get("n_test_users", ""), "num"),
               _td(f'<a href="{model_href(best)}">{_e(b.name_of(best))}</a>' if best else "", b.name_of(best) if best else "")]
        if top is None:
            tds += [_td(_e(b.status)), _td("", "", "num")]
        else:
            tds += [_td(f'<a href="{model_href(top["model"])}">{_e(top["name"])}</a>', top["name"]), _interval(top, HEADLINE)]
        rows.append("<tr>" + "".join(tds) + "</tr>")
    body.append(_table("scenarios", [("Scenario", "text", ""), ("Kind", "text", ""), ("Dataset", "text", ""),
                                     ("Models", "num", ""), ("Test-user rows", "num", "evaluated, over all runs"),
                                     ("Strongest baseline", "text", "reference of the significance tests"),
                                     (f"Best on {HEADLINE}", "text", ""), (f"Best {HEADLINE}", "num", "")], rows))
    if any(b.semi for b in boards):
        body.append(f"<p class=\"notes\">{_e(SEMI_TEXT)}</p>")
    if (fig_dir / "overview_vs_popularity.png").is_file():
        body.append('<figure><img src="figures/overview_vs_popularity.png" alt="Every model on every scenario against '
                    f'Popularity" loading="lazy"><figcaption>Every model on every scenario: {_e(HEADLINE)} relative to '
                    "Popularity (%), boxed where the 95% interval excludes zero.</figcaption></figure>")
    body.append(_replication(tables_dir))
    if (fig_dir / "table7_real_replication.png").is_file():
        body.append('<figure><img src="figures/table7_real_replication.png" alt="Table 7 as bars" loading="lazy">'
                    f"<figcaption>Table 7 as bars: every model on the real scenarios, {_e(HEADLINE)} relative to "
                    "Popularity with intervals.</figcaption></figure>")
    body.append("<h2>Models</h2>\n<ul>" + "".join(f'<li><a href="{model_href(k)}">{_e(n)}</a> ({_e(f)})</li>'
                                                   for k, n, f in models) + "</ul>")
    body.append("<h2>Datasets</h2>\n<ul>" + "".join(f'<li><a href="{dataset_href(b.name)}">{_e(b.name)}</a></li>'
                                                     for b in boards) + "</ul>")
    return "Overview", "\n".join(body)


def tables_page(tables_dir: Path) -> tuple[str, str]:
    files = sorted(tables_dir.glob("*.md")) if tables_dir.is_dir() else []
    toc = "".join(f'<li><a href="#{_e(_slug(p.stem))}">{_e(p.stem)}</a> (<a href="data/tables/{_u(p.stem + ".csv")}">CSV</a>)</li>'
                  for p in files)
    secs = [f'<section id="{_e(_slug(p.stem))}">{_md(p.read_text())}</section>' for p in files]
    return "Tables", "<h1>All tables</h1>\n<ul>" + toc + "</ul>\n" + "\n".join(secs)


def _clear(out_dir: Path) -> None:
    """Remove what a previous build wrote (only our kinds of files), so nothing stale survives."""
    for p in sorted(out_dir.glob("*.html")):
        p.unlink()
    for sub in ("figures", "data"):
        if (out_dir / sub).is_dir():
            shutil.rmtree(out_dir / sub)


def write_site(results_dir: Path, out_dir: Path, models_dir: Path, datasets_dir: Path) -> list[Path]:
    """Generate the static site into ``out_dir`` from the report outputs and the cards; return the files written."""
    results_dir, out_dir, models_dir, datasets_dir = map(Path, (results_dir, out_dir, models_dir, datasets_dir))
    lb_dir, tables_dir, fig_dir = results_dir / "leaderboard", results_dir / "tables", results_dir / "figures"
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear(out_dir)
    boards = load_boards(lb_dir)
    keys = sorted({p.stem for p in models_dir.glob("*.yaml")} | {r["model"] for b in boards for r in b.rows})
    specs = {k: _read_spec(models_dir, k) for k in keys}
    names = {r["model"]: (r["name"], r.get("family", "")) for b in boards for r in b.rows}
    models = sorted(((k, specs[k].get("display_name") or names.get(k, (k, ""))[0],
                      specs[k].get("family") or names.get(k, ("", ""))[1]) for k in keys), key=lambda t: (t[1].lower(), t[0]))
    data_names = sorted({b.name for b in boards} | {p.parent.name for p in datasets_dir.glob("*/CARD.md")})
    by_name = {b.name: b for b in boards}

    scen_nav = [(scenario_href(b.name), b.name) for b in boards]
    nav = [("index.html", "Overview")] + scen_nav + [("tables.html", "Tables")]
    pages = {"index.html": index_page(boards, tables_dir, fig_dir, models), "tables.html": tables_page(tables_dir)}
    pages.update({scenario_href(b.name): scenario_page(b, fig_dir) for b in boards})
    pages.update({model_href(k): model_page(k, specs[k], boards) for k in keys})
    pages.update({dataset_href(n): dataset_page(n, datasets_dir, by_name.get(n)) for n in data_names})

    written = []
    for fname, (title, body) in sorted(pages.items()):
        p = out_dir / fname
        p.write_text(_page(title, body, nav))
        written.append(p)
    copies = [(f, out_dir / "figures" / f.name) for f in sorted(fig_dir.glob("*.png"))]
    copies += [(f, out_dir / "data" / f.name) for ext in ("csv", "json", "md") for f in sorted(lb_dir.glob(f"*.{ext}"))]
    copies += [(f, out_dir / "data" / "tables" / f.name) for f in sorted(tables_dir.glob("*.csv"))]
    for src, dst in copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        written.append(dst)
    return sorted(written)
