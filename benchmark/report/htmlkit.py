"""HTML building blocks of the static site (benchmark/report/site.py): style, sorter, CSP, escaping, tables, cells.

Kept apart from the pages so the site module holds only what each page shows. Every
value that reaches HTML goes through :func:`_e` (escape) or :func:`_u` (URL quote);
the inline CSS and JS are pinned by hash in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import zlib
from urllib.parse import quote

import numpy as np
from markdown_it import MarkdownIt

from benchmark.report.runs import HEADLINE, fmt_abs, fmt_rel

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fff}
header{background:#1f3a5f;padding:.5em 1.5em}header a{color:#fff;margin-right:1.2em;text-decoration:none}
header a:hover{text-decoration:underline}main{padding:1em 1.5em;max-width:1500px}
a{color:#1a5fb4}h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #d0d7de}
.scroll{overflow-x:auto;margin:.6em 0}table{border-collapse:collapse;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#eef2f6;position:sticky;top:0;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{background:#dde5ee}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#f7f9fb}tr.collapsed td{color:#6b7480}
td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}.ci{color:#6b7480;font-size:.85em}
.cfg{font-size:.8em;max-width:45em;white-space:normal}.badge{display:inline-block;font-size:.75em;padding:0 .4em;border-radius:.6em;
margin-left:.3em;background:#e4e7eb;color:#333;white-space:nowrap}.badge.semi,.badge.collapsed{background:#fde2c4;color:#7a3d00}
.badge.adapted{background:#dfe9ff;color:#1c3f8c}.badge.external{background:#e5f4e3;color:#1f5b1a}
.banner{background:#fff1dc;border:2px solid #e08a00;padding:.6em 1em;margin:1em 0;font-weight:600}
.notes{font-size:.88em;color:#3b434c;max-width:70em}.notes dt{font-weight:600;margin-top:.4em}.notes dd p{margin:0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d0d7de}figcaption{font-size:.88em;color:#3b434c}
input[type=search]{padding:.3em .5em;width:22em;max-width:100%}pre{background:#f6f8fa;padding:.6em;overflow-x:auto}
article.card{border-left:3px solid #d0d7de;padding-left:1em}footer{color:#6b7480;font-size:.8em;padding:1em 1.5em}
"""

# Sorting: first click on a numeric column sorts descending (best first for the metrics),
# on a text column ascending; a second click reverses. Missing values stay at the bottom.
_JS = """
(function(){
var NUM=/^\\s*[+-]?(\\d+\\.?\\d*|\\.\\d+)(e[+-]?\\d+)?/i;
function key(td){return td?(td.hasAttribute('data-sort')?td.getAttribute('data-sort'):td.textContent.trim()):'';}
function isNum(v){return NUM.test(v);}
function colType(th,rows,i){var t=th.getAttribute('data-type');if(t)return t;var n=0,m=0;
 rows.forEach(function(r){var v=key(r.cells[i]);if(v!==''){m++;if(isNum(v))n++;}});return m&&n*2>m?'num':'text';}
function sortBy(th){var tr=th.parentNode,table=tr.closest('table'),body=table.tBodies[0];
 var i=Array.prototype.indexOf.call(tr.children,th),rows=Array.prototype.slice.call(body.rows),type=colType(th,rows,i);
 var cur=th.getAttribute('aria-sort'),dir=cur?(cur==='ascending'?'descending':'ascending'):(type==='num'?'descending':'ascending');
 var s=dir==='ascending'?1:-1;
 rows.sort(function(a,b){var x=key(a.cells[i]),y=key(b.cells[i]);
  if(type==='num'){var p=isNum(x)?parseFloat(x):NaN,q=isNum(y)?parseFloat(y):NaN;
   if(isNaN(p)||isNaN(q))return isNaN(p)-isNaN(q);return s*(p-q);}
  if(x===''||y==='')return (x==='')-(y==='');return s*x.localeCompare(y);});
 rows.forEach(function(r){body.appendChild(r);});
 Array.prototype.forEach.call(tr.children,function(h){h.removeAttribute('aria-sort');});th.setAttribute('aria-sort',dir);}
document.querySelectorAll('table.sortable thead th').forEach(function(th){th.tabIndex=0;
 th.addEventListener('click',function(){sortBy(th);});
 th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();sortBy(th);}});});
document.querySelectorAll('input[data-filter]').forEach(function(inp){inp.addEventListener('input',function(){
 var q=inp.value.toLowerCase(),t=document.getElementById(inp.getAttribute('data-filter'));
 Array.prototype.forEach.call(t.tBodies[0].rows,function(r){r.hidden=q!==''&&r.textContent.toLowerCase().indexOf(q)<0;});});});
})();
"""


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


# No default source: the browser itself refuses any fetch but our own images, and runs
# only the exact script and style above (an injected inline script would be blocked too).
_CSP = (f"default-src 'none'; img-src 'self'; style-src '{_sha(_CSS)}'; script-src '{_sha(_JS)}'; "
        "base-uri 'none'; form-action 'none'")
_MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_METRIC = re.compile(r"^(P|R|F1|HR|NDCG|MAP)@(\d+)$")
_CAPTIONS = {
    "leaderboard": f"{HEADLINE} per model with its bootstrap interval",
    "table1_relative_improvement": "Table 1 as bars: relative improvement over Popularity",
    "fig3_mp_cohort": "Paper Fig. 3 analogue: MAP-2T(full) vs Popularity and ColloPop-Artist on music-and-podcast users",
    "fig4_dual_signal": "Paper Fig. 4 analogue: MAP-2T(music_podcast) vs Popularity and ColloPop-Podcast",
    "transfer": f"{HEADLINE} against the transfer gain over the scenario's null twin (source histories permuted)",
}
SEMI_TEXT = ("SEMI-SYNTHETIC: composite users formed by a seeded linkage of real per-domain histories. "
             "A controlled testbed, not evidence about real users; the real scenarios are.")


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _u(name: str) -> str:
    """A file name as a relative URL inside an attribute (percent-encoded, then escaped)."""
    return _e(quote(name))


def _num(s) -> float:
    try:
        return float(s)
    except (TypeError, ValueError):
        return float("nan")


def _slug(key: str) -> str:
    """A file-name-safe form of a key; a changed key gets a checksum so two keys never collide."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key).strip(".") or "_"
    return safe if safe == key else f"{safe}-{zlib.crc32(key.encode()):08x}"


def model_href(key: str) -> str:
    return f"model-{_slug(key)}.html"


def scenario_href(name: str) -> str:
    return f"scenario-{_slug(name)}.html"


def dataset_href(name: str) -> str:
    return f"dataset-{_slug(name)}.html"


def _md(text: str, shift: int = 1) -> str:
    """Markdown -> HTML (raw HTML escaped); headings pushed down under the page's own h1."""
    tokens = _MD.parse(text or "")
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            t.tag = f"h{min(6, int(t.tag[1]) + shift)}"
    out = _MD.renderer.render(tokens, _MD.options, {})
    return out.replace("<table>", '<div class="scroll"><table class="sortable">').replace("</table>", "</table></div>")


def _page(title: str, body: str, nav: list[tuple[str, str]]) -> str:
    links = "".join(f'<a href="{_e(h)}">{_e(t)}</a>' for h, t in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_e(_CSP)}\">\n"
            f"<title>{_e(title)} - cdrbench</title>\n<style>{_CSS}</style></head>\n<body>\n"
            f"<header><nav>{links}</nav></header>\n<main>\n{body}\n</main>\n"
            "<footer>Generated by benchmark/report/site.py from results/leaderboard, results/tables, "
            "results/figures, models/ and datasets/. Static: no network.</footer>\n"
            f"<script>{_JS}</script>\n</body></html>\n")


def _table(tid: str, heads: list[tuple[str, str, str]], rows: list[str], filt: bool = False) -> str:
    """heads: (label, 'num'|'text', tooltip); rows: ready ``<tr>`` strings."""
    th = "".join(f'<th data-type="{t}" title="{_e(tip)}">{_e(lab)}</th>' for lab, t, tip in heads)
    box = (f'<p><input type="search" data-filter="{tid}" placeholder="Filter rows (model, family, ...)" '
           f'aria-label="Filter rows"></p>\n') if filt else ""
    return (f'{box}<div class="scroll"><table class="sortable" id="{tid}">\n<thead><tr>{th}</tr></thead>\n'
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody></table></div>\n")


def _td(content_html: str, sort=None, cls: str = "") -> str:
    s = "" if sort is None else f' data-sort="{_e(sort)}"'
    c = f' class="{cls}"' if cls else ""
    return f"<td{c}{s}>{content_html}</td>"


def _interval(row: dict, col: str, rel: bool = False, extra: str = "") -> str:
    m, lo, hi = (_num(row.get(c)) for c in (col, f"{col}_lo", f"{col}_hi"))
    text = (fmt_rel if rel else fmt_abs)((m, lo, hi))
    head, _, ci = text.partition(" [")
    inner = _e(head) + (f' <span class="ci">[{_e(ci)}</span>' if ci else "") + extra
    return _td(inner, row.get(col, "") if np.isfinite(m) else "", "num")


def _badges(row: dict) -> str:
    out = ""
    if row.get("external") == "True":
        out += '<span class="badge external" title="external submission, tuned by its authors">external</span>'
    if row.get("adapted") == "True":
        out += '<span class="badge adapted" title="cold-start adaptation of a model that needs target history">adapted</span>'
    return out
