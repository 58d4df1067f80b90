"""The HTML report of an `evaluate` run: one self-contained file, `report.html`, beside metrics.json.

No network and no script: inline CSS, histograms as inline SVG. It shows the metric table with
95 % bootstrap intervals over examples, the same metrics by query type (QMSum: general vs
specific) and by document length (terciles of words), answer and reference lengths, and the
examples with the lowest ROUGE-1 beside their references and evidence. Every text from the data or
the model goes through `html.escape`.

    qfsum report runs/evaluate-default-val      # rebuild it from an existing run folder
"""

from __future__ import annotations

import datetime
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..document import Example
from .bootstrap import DRAWS, interval
from .runs import Run, evidence_texts, load_run, query_type, run_examples

REPORT_FILE = "report.html"
WORST = 5
GROUP_DRAWS = 2_000  # resamples for the breakdown tables' intervals: 25 of them, each on a part of the data
# (key, label, scale): ROUGE is F1 x 100 already, the faithfulness metrics are shares in [0, 1]
METRICS = (
    ("rouge1", "ROUGE-1", 100), ("rouge2", "ROUGE-2", 100), ("rougeL", "ROUGE-L (plain LCS)", 100),
    ("rougeLsum", "ROUGE-Lsum (QMSum's R-L)", 100),
    ("number_precision", "numbers in the evidence", 1), ("number_precision_document", "numbers in the document", 1),
    ("name_precision", "names in the evidence", 1), ("name_precision_document", "names in the document", 1),
    ("supported_sentences", "supported sentences", 1),
)
BREAKDOWN = ("rouge1", "rouge2", "rougeLsum", "number_precision", "supported_sentences")
CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:78em;padding:0 1em;color:#1d2327}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#555;font-size:.9em}table{border-collapse:collapse;margin:.6em 0}
th,td{padding:.3em .8em;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top}
th:first-child,td:first-child{text-align:left}th{background:#f6f7f8;font-weight:600}
.ci{color:#666;font-size:.85em;white-space:nowrap}.note{color:#666;font-size:.9em}
.example{border:1px solid #ddd;border-radius:6px;margin:1em 0;padding:.6em 1em}
.example h3{font-size:1em;margin:.2em 0 .5em}.cols{display:grid;grid-template-columns:1fr 1fr 1.4fr;gap:1em}
.cols h4{margin:.2em 0;font-size:.85em;text-transform:uppercase;color:#666;letter-spacing:.04em}
.text{white-space:pre-wrap;font-size:.92em}.evidence{max-height:24em;overflow:auto;font-size:.85em}
.evidence p{white-space:pre-wrap;margin:0 0 .6em;padding-left:.5em;border-left:3px solid #c9d7e8}
svg text{font:11px system-ui,sans-serif;fill:#333}
"""


def write_report(run_dir: Path, examples: Sequence[Example] | None = None) -> Path:
    """Write `report.html` into an `evaluate` run folder and return its path.

    `examples` (those of the run) give the evidence texts, and document lengths where old rows lack
    them; None reads them again from the data the run's `run.json` names (if it is still there).
    """
    run = load_run(Path(run_dir))
    # the worst examples' evidence are spans of their documents: read the data again if not given
    by_id = {e.id: e for e in examples} if examples is not None else run_examples(run)
    path = run.path / REPORT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render(run, by_id or {}), encoding="utf-8")
    tmp.replace(path)
    return path


def render(run: Run, examples: Mapping[str, Example]) -> str:
    """The report's HTML for a run (`examples` by id fill in what old rows lack)."""
    rows = [dict(r) for r in run.rows]
    for row in rows:
        if row.get("document_words") is None and row["id"] in examples:
            row["document_words"] = len(examples[row["id"]].document.text.split())
        if "query_type" not in row:
            row["query_type"] = query_type(row["id"])
    scorer = run.metrics.get("support_scorer") or run.config.get("support_scorer") or "lexical"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>qfsum report: {_e(run.name)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{CSS}</style></head><body>",
        f"<h1>Evaluation of <code>{_e(run.name)}</code></h1>",
        f'<p class="meta">{len(rows)} examples · data {_e(str(run.config.get("data", "unknown")))} · '
        f"support scorer {_e(str(scorer))} · folder {_e(str(run.path))} · "
        f"written {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
        _metric_table(rows),
        _breakdowns(rows),
        "<h2>Answer and reference lengths</h2>",
        _histogram([_words(r.get("prediction", "")) for r in rows],
                   [_words(ref) for r in rows for ref in r.get("references", [])]),
        _worst(rows, examples, run.config.get("pipeline")),
        f'<p class="note">Intervals: 95 % percentile bootstrap over examples ({DRAWS:,} resamples; '
        f"{GROUP_DRAWS:,} in the breakdowns). "
        "ROUGE is F1 ×100 with stemming; the other metrics are shares in [0, 1] over the examples "
        "where they are defined (answers with a number, a name, a sentence). "
        f"Rebuild with <code>qfsum report {_e(str(run.path))}</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _words(text: str) -> int:
    return len(str(text).split())


def _values(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    values = []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            values.append(float(value))
    return values


def _cell(rows: Sequence[dict[str, Any]], key: str, scale: int, draws: int = DRAWS) -> str:
    """'mean [low, high]' of a metric over rows, formatted for its scale; an en dash if undefined."""
    found = interval(_values(rows, key), draws=draws)
    if found is None:
        return '<td>–</td>'
    digits = 2 if scale == 100 else 3
    return (f"<td>{found.mean:.{digits}f} <span class=\"ci\">[{found.low:.{digits}f}, {found.high:.{digits}f}]"
            f"</span></td>")


def _metric_table(rows: Sequence[dict[str, Any]]) -> str:
    body = []
    for key, label, scale in METRICS:
        values = _values(rows, key)
        if not values:
            continue
        body.append(f"<tr><td>{_e(label)} <code>{_e(key)}</code></td>{_cell(rows, key, scale)}<td>{len(values)}</td></tr>")
    return ("<h2>Metrics</h2><table><tr><th>metric</th><th>mean [95 % interval]</th><th>n</th></tr>"
            + "".join(body) + "</table>")


def _group_table(title: str, groups: Sequence[tuple[str, list[dict[str, Any]]]], note: str = "") -> str:
    scales = {key: scale for key, _, scale in METRICS}
    head = "".join(f"<th>{_e(k)}</th>" for k in BREAKDOWN)
    body = "".join(
        f"<tr><td>{_e(name)}</td><td>{len(members)}</td>"
        + "".join(_cell(members, k, scales[k], GROUP_DRAWS) for k in BREAKDOWN)
        + "</tr>"
        for name, members in groups if members
    )
    note_html = f'<p class="note">{_e(note)}</p>' if note else ""
    return f"<h3>{_e(title)}</h3>{note_html}<table><tr><th>group</th><th>n</th>{head}</tr>{body}</table>"


def _breakdowns(rows: Sequence[dict[str, Any]]) -> str:
    parts = ["<h2>Breakdown</h2>"]
    types = [(t, [r for r in rows if r.get("query_type") == t]) for t in ("general", "specific")]
    if any(members for _, members in types):
        other = [r for r in rows if r.get("query_type") not in ("general", "specific")]
        parts.append(_group_table("By query type", [*types, ("other", other)]))
    else:
        parts.append('<p class="note">By query type: this data records none (QMSum ids end in -g<i>n</i> '
                     "for general, -s<i>n</i> for specific queries).</p>")
    lengths = [r for r in rows if isinstance(r.get("document_words"), int)]
    if len(lengths) >= 3:
        parts.append(_group_table("By document length (terciles of words)", tercile_groups(lengths),
                                  f"{len(rows) - len(lengths)} examples without a recorded length left out"
                                  if len(lengths) < len(rows) else ""))
    else:
        parts.append('<p class="note">By document length: not recorded in this run and its data could not '
                     "be read again.</p>")
    return "".join(parts)


def tercile_groups(rows: Sequence[dict[str, Any]], key: str = "document_words") -> list[tuple[str, list[dict[str, Any]]]]:
    """Rows split into three groups of (nearly) equal size by `key`, shortest first, each named by
    its range of values. Ties stay together, so a group may be larger than a third."""
    ordered = sorted(rows, key=lambda r: r[key])
    n = len(ordered)
    cuts = [ordered[min(n - 1, (n * k) // 3)][key] for k in (1, 2)]  # values at the 1/3 and 2/3 ranks
    bands = [[r for r in ordered if r[key] < cuts[0]], [r for r in ordered if cuts[0] <= r[key] < cuts[1]],
             [r for r in ordered if r[key] >= cuts[1]]]
    bands = [band for band in bands if band]
    names = ("short", "medium", "long") if len(bands) == 3 else ("shorter", "longer") if len(bands) == 2 else ("all",)
    return [(f"{name} ({band[0][key]:,}–{band[-1][key]:,} words)", band) for name, band in zip(names, bands)]


def _histogram(answers: Sequence[int], references: Sequence[int], bins: int = 12) -> str:
    """Inline SVG: word counts of answers and references, side by side per bin, each as a share of its own."""
    if not answers and not references:
        return '<p class="note">No answers.</p>'
    top = max([*answers, *references, 1])
    step = max(1, math.ceil((top + 1) / bins))
    edges = [i * step for i in range(bins + 1)]
    series = [("answers", answers, "#3b73b9"), ("references", references, "#e08a2c")]
    shares = [[sum(edges[i] <= v < edges[i + 1] for v in values) / max(len(values), 1) for i in range(bins)]
              for _, values, _ in series]
    width, height, left, bottom, top_pad = 720, 240, 44, 34, 26
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    peak = max(max(s) for s in shares) or 1.0
    bar = plot_w / bins
    shapes = []
    for k, ((label, values, colour), share) in enumerate(zip(series, shares)):
        for i, value in enumerate(share):
            h = plot_h * value / peak
            x = left + i * bar + 2 + k * (bar - 4) / 2
            shapes.append(f'<rect x="{x:.1f}" y="{top_pad + plot_h - h:.1f}" width="{(bar - 4) / 2:.1f}" '
                          f'height="{h:.1f}" fill="{colour}"><title>{_e(label)}: {edges[i]}–{edges[i + 1] - 1} '
                          f'words, {value:.0%}</title></rect>')
        median = sorted(values)[len(values) // 2] if values else 0
        shapes.append(f'<rect x="{left + 10 + k * 230}" y="6" width="10" height="10" fill="{colour}"/>'
                      f'<text x="{left + 24 + k * 230}" y="15">{_e(label)} (n={len(values)}, median {median} words)</text>')
    for i in range(0, bins + 1, max(1, bins // 6)):
        x = left + i * bar
        shapes.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle">{edges[i]}</text>')
    shapes.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle">words</text>')
    shapes.append(f'<text x="{left - 6}" y="{top_pad + 8}" text-anchor="end">{peak:.0%}</text>'
                  f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end">0</text>')
    shapes.append(f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>')
    return (f'<svg role="img" aria-label="histogram of answer and reference lengths in words" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
            + "".join(shapes) + "</svg>")


def _worst(rows: Sequence[dict[str, Any]], examples: Mapping[str, Example], pipeline: dict[str, Any] | None) -> str:
    scored = [r for r in rows if _values([r], "rouge1")]
    worst = sorted(scored, key=lambda r: (r["rouge1"], r["id"]))[:WORST]
    parts = [f"<h2>The {len(worst)} examples with the lowest ROUGE-1</h2>"]
    for row in worst:
        evidence = evidence_texts(row, examples.get(row["id"]), pipeline)
        figures = ", ".join(f"{k} {_format(row.get(k), s)}" for k, _, s in METRICS
                            if k in ("rouge1", "rouge2", "rougeLsum", "number_precision", "supported_sentences"))
        evidence_html = ("".join(f"<p>{_e(text)}</p>" for text in evidence) if evidence
                         else '<p class="note">not available (the run\'s data could not be read again)</p>')
        parts.append(
            f'<div class="example"><h3>{_e(row["id"])}: {_e(row.get("query", ""))}</h3>'
            f'<p class="meta">{_e(figures)}</p><div class="cols">'
            f'<div><h4>answer</h4><div class="text">{_e(row.get("prediction", ""))}</div></div>'
            f'<div><h4>reference</h4>' + "".join(f'<div class="text">{_e(ref)}</div>' for ref in row.get("references", []))
            + f'</div><div><h4>evidence ({len(evidence)})</h4><div class="evidence">{evidence_html}</div></div>'
            "</div></div>"
        )
    return "".join(parts)


def _format(value: Any, scale: int) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value:.2f}" if scale == 100 else f"{value:.3f}"

