"""CSV tables and a self-contained HTML report (inline SVG charts, no network needed) for a comparison."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from fctune.io import write_text_atomic

CSV_NAMES = {"single_turn": "single_turn.csv", "multi_turn": "multi_turn.csv", "domain_diverse": "domain_diverse.csv",
             "structured_json": "structured_json.csv", "json_quality": "json_quality.csv"}


def _fmt(v, pct=False):
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.1%}" if pct else f"{v:.3f}"
    return str(v)


def write_csvs(report: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def dump(name, header, rows):
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        write_text_atomic(folder / name, buf.getvalue())
        written.append(str(folder / name))

    for cap, fname in CSV_NAMES.items():
        table = report["capabilities"].get(cap, {})
        rows = []
        for model, metrics in table.items():
            for name, v in metrics.items():
                ci = v.get("ci") or [None, None]
                rows.append([model, report["models"].get(model, {}).get("role"), name, v.get("value"), ci[0], ci[1],
                             v.get("n"), v.get("ratio_to_llm")])
        dump(fname, ["model", "role", "metric", "value", "ci_low", "ci_high", "n", "ratio_to_llm"], rows)
    rows = []
    for model, r in report["relative_to_llm"].items():
        for path, p in r["per_metric"].items():
            rows.append([model, path, p.get("slm"), p.get("llm"), p.get("ratio"),
                         *(p.get("ratio_range") or [None, None]), p.get("why")])
        n_all = len(r["per_metric"])
        partial = f"over {r.get('metrics_used', 0)} of {n_all} metrics" if r.get("metrics_used", 0) < n_all else None
        rows.append([model, "AGGREGATE", None, None, r["score"], *(r.get("score_range") or [None, None]), partial])
    dump("llm_comparison.csv", ["model", "metric", "slm", "llm", "ratio", "ratio_low", "ratio_high", "note"], rows)
    dump("gates.csv", ["model", "role", "gate", "metric", "op", "threshold", "value", "status", "threshold_inside_ci"],
         [[g["model"], g["role"], g["gate"], g["metric"], g["op"], g["threshold"], g["value"], g["status"],
           g.get("threshold_inside_ci")] for g in report["gates"]])
    if report["bfcl"]:
        dump("bfcl.csv", ["model", "category", "accuracy", "correct", "total", "ci_low", "ci_high"],
             [[m, c, v["accuracy"], v["correct"], v["total"], *(v.get("ci") or [None, None])]
              for m, b in report["bfcl"].items() for c, v in b["categories"].items()])
    return written


# -- charts (matplotlib -> inline SVG) -----------------------------------------------------------------------
def _svg(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 9, "svg.fonttype": "none"})
    return plt


def chart_capability(cap: str, table: dict) -> str | None:
    plt = _plt()
    metrics = [m for m in ("args_exact_match_rate", "args_field_f1", "name_match_rate", "valid_json_rate",
                           "schema_valid_rate", "json_exact_match_rate", "field_f1")
               if any(m in row for row in table.values())]
    if not metrics:
        return None
    models = list(table)
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(metrics) * max(1, len(models)) / 2.5), 3.2))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        vals, lo, hi = [], [], []
        for m in metrics:
            v = table[model].get(m) or {}
            val = v.get("value") or 0.0
            ci = v.get("ci") or [val, val]
            vals.append(val)
            lo.append(max(0.0, val - ci[0]))
            hi.append(max(0.0, ci[1] - val))
        xs = [k + i * width for k in range(len(metrics))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=2, label=model)
    ax.set_xticks([k + width * (len(models) - 1) / 2 for k in range(len(metrics))])
    ax.set_xticklabels([m.replace("_rate", "").replace("args_", "") for m in metrics], rotation=15)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{cap}: metrics with 95% bootstrap intervals")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig)


def chart_heatmap(per_domain: dict) -> str | None:
    if not per_domain:
        return None
    plt = _plt()
    models = list(per_domain)
    domains = sorted({d for row in per_domain.values() for d in row})
    data = [[per_domain[m].get(d, float("nan")) for d in domains] for m in models]
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(domains), 0.8 + 0.45 * len(models)))
    im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(domains)))
    ax.set_xticklabels(domains, rotation=35, ha="right")
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white" if v < 0.6 else "black", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title("field F1 per domain (domain-diversity suite)")
    return _svg(fig)


def chart_ratios(rel: dict, threshold: float) -> str | None:
    def name(m, r):
        used, n_all = r.get("metrics_used", 0), len(r["per_metric"])
        return m if used >= n_all else f"{m} ({used}/{n_all} metrics)"

    rows = [(name(m, r), r["score"], r.get("score_range")) for m, r in rel.items() if r.get("score") is not None]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.45 * len(rows)))
    ys = range(len(rows))
    vals = [r[1] for r in rows]
    err_lo = [max(0, v - (r[2] or [v, v])[0]) for v, r in zip(vals, rows)]
    err_hi = [max(0, (r[2] or [v, v])[1] - v) for v, r in zip(vals, rows)]
    ax.barh(list(ys), vals, xerr=[err_lo, err_hi], capsize=3,
            color=["#2a9d8f" if v >= threshold else "#e76f51" for v in vals])
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
    ax.text(threshold, -0.02, f" {threshold:.0%} of LLM", fontsize=8, va="top", transform=ax.get_xaxis_transform())
    ax.set_yticks(list(ys))
    ax.set_yticklabels([r[0] for r in rows])
    ax.set_xlabel("score relative to the LLM baseline (1.0 = equal)")
    ax.set_xlim(0, max(1.2, max(vals) * 1.1))
    ax.set_title("ratio to the LLM (mean of the relative metrics)")
    return _svg(fig)


def chart_bfcl(bfcl: dict) -> str | None:
    if not bfcl:
        return None
    plt = _plt()
    cats = sorted({c for b in bfcl.values() for c in b["categories"]})
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(cats)), 3.2))
    width = 0.8 / len(bfcl)
    for i, (model, b) in enumerate(bfcl.items()):
        vals = [(b["categories"].get(c) or {}).get("accuracy") or 0.0 for c in cats]
        ax.bar([k + i * width for k in range(len(cats))], vals, width, label=model)
    ax.set_xticks([k + width * (len(bfcl) - 1) / 2 for k in range(len(cats))])
    ax.set_xticklabels(cats, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title("BFCL accuracy per category")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig)


# -- HTML ----------------------------------------------------------------------------------------------------
CSS = """body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f4f4f4}.pass{background:#d8f3dc}.fail{background:#fde2e4}.missing{background:#eee}
.verdict{font-size:20px;font-weight:bold;padding:10px;border:2px solid #333;display:inline-block}
.chart{margin:10px 0}.note{color:#8a5a00}pre{white-space:pre-wrap;background:#f8f8f8;padding:6px;font-size:12px}
.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}"""

# Marks each chart that the browser laid out with a non-zero size (checked by the report test).
READY_JS = """window.addEventListener('load',function(){var n=0;document.querySelectorAll('.chart svg').forEach(
function(s){var b=s.getBoundingClientRect();if(b.width>50&&b.height>50&&s.querySelectorAll('path,rect,use').length>3){
n++;s.parentNode.setAttribute('data-rendered','1');}});document.body.setAttribute('data-charts-rendered',n);});"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(header, rows, classes=None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    return "".join(out) + "</table>"


def write_html(report: dict, path: Path) -> Path:
    d = report["decision"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Phase {report['phase']} comparison</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Can a fine-tuned SLM call functions like the LLM? Phase {report['phase']} comparison</h1>",
             f"<div class='verdict'>{_e(d['verdict'])}</div><p>{_e(d.get('reason', ''))}</p>"]
    for n in d.get("notes") or []:
        parts.append(f"<p class='note'>⚠ {_e(n)}</p>")
    parts.append(f"<pre>{_e(_json(d.get('numbers')))}</pre>")
    parts.append(f"<p>LLM baseline: <b>{_e(report['llm_baseline'])}</b></p>")
    fallbacks = [s for s in report["data_sources"] if "fallback" in s]
    if fallbacks or report["problems"] or report["missing_models"]:
        parts.append("<div class='warn'>")
        for s in fallbacks:
            parts.append(f"<p>Data source fell back: {_e(s)}</p>")
        for p in report["problems"]:
            parts.append(f"<p>{_e(p)}</p>")
        if report["missing_models"]:
            parts.append("<p>Missing results: " + "; ".join(_e(m) for m in report["missing_models"]) + "</p>")
        parts.append("</div>")

    parts.append("<h2>Models</h2>")
    parts.append(_table(["label", "approach", "role", "family", "backend", "model", "adapter version", "suites"],
                        [[k, v["approach"], v["role"], v["family"], v["backend"],
                          v.get("model_description") or v["model"], v["adapter_version_id"], ", ".join(v["suites"])]
                         for k, v in report["models"].items()]))

    parts.append("<h2>Decision gates</h2>")
    rows, classes = [], []
    for g in report["gates"]:
        rows.append([g["model"], g["role"], g["gate"], f"{g['op']} {g['threshold']}", _fmt(g["value"]),
                     g["ci"] and f"[{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]", g["status"],
                     "threshold inside CI" if g.get("threshold_inside_ci") else ""])
        classes.append(g["status"])
    parts.append(_table(["model", "role", "gate", "rule", "value", "95% CI", "status", ""], rows, classes))

    parts.append("<h2>Ratio to the LLM baseline</h2>")
    svg = chart_ratios(report["relative_to_llm"], 0.9)
    if svg:
        parts.append(f"<div class='chart'>{svg}</div>")
    rows = []
    for m, r in report["relative_to_llm"].items():
        for path_, p in r["per_metric"].items():
            rows.append([m, path_, _fmt(p.get("slm")), _fmt(p.get("llm")), _fmt(p.get("ratio"), True),
                         p.get("why") or ""])
    parts.append(_table(["model", "metric", "SLM", "LLM", "% of LLM", "note"], rows))

    for cap, table in report["capabilities"].items():
        if not table:
            continue
        parts.append(f"<h2>{_e(cap.replace('_', ' '))}</h2>")
        svg = chart_capability(cap, table)
        if svg:
            parts.append(f"<div class='chart'>{svg}</div>")
        rows = []
        for model, metrics in table.items():
            for name, v in metrics.items():
                ci = v.get("ci")
                rows.append([model, name, _fmt(v.get("value")), ci and f"[{ci[0]:.3f}, {ci[1]:.3f}]", v.get("n"),
                             _fmt(v.get("ratio_to_llm"), True)])
        parts.append(_table(["model", "metric", "value", "95% CI", "n", "% of LLM"], rows))
        if cap == "domain_diverse":
            svg = chart_heatmap(report["per_domain_field_f1"])
            if svg:
                parts.append(f"<div class='chart'>{svg}</div>")

    if report["bfcl"]:
        parts.append("<h2>BFCL (external benchmark)</h2>")
        svg = chart_bfcl(report["bfcl"])
        if svg:
            parts.append(f"<div class='chart'>{svg}</div>")
        parts.append(_table(["model", "non-live AST", "live AST", "hallucination (irrelevance)"],
                            [[m, _fmt(b["non_live_ast"]), _fmt(b["live_ast"]), _e(b["hallucination"])]
                             for m, b in report["bfcl"].items()]))
        parts.append(_table(["model", "category", "accuracy", "correct/total", "95% CI"],
                            [[m, c, _fmt(v["accuracy"]), f"{v['correct']}/{v['total']}", v.get("ci")]
                             for m, b in report["bfcl"].items() for c, v in b["categories"].items()]))

    fl = report["fledgling"]
    if fl.get("gates") or fl.get("tracks"):
        parts.append("<h2>Fledgling approach</h2>")
        for g in fl.get("gates", []):
            base = (g.get("base_model") or {}).get("label", "")
            parts.append(f"<p><b>Gate decision</b> ({_e(base)}): {_e(g.get('decision'))}: {_e(g.get('reason'))}</p>")
            parts.append(f"<pre>{_e(_json(g.get('numbers')))}</pre>")
        rows = [[m, t, _fmt(v.get("valid_json_rate")), _fmt(v.get("schema_valid_rate")), _fmt(v.get("exact_match_rate")),
                 _fmt(v.get("field_f1"))] for m, tr in fl.get("tracks", {}).items() for t, v in tr.items()]
        parts.append(_table(["model", "track", "valid JSON", "schema valid", "exact", "field F1"], rows))

    parts.append("<h2>Failure analysis</h2>")
    for model, suites in report["failure_analysis"].items():
        for suite, fa in suites.items():
            if not fa["reasons"]:
                continue
            parts.append(f"<h3>{_e(model)} — {_e(suite)}: {fa['n_failed']}/{fa['n']} failed"
                         f"{', ' + str(fa['n_errors']) + ' backend errors' if fa['n_errors'] else ''}</h3>")
            parts.append(_table(["reason", "count", "example ids"],
                                [[r["reason"], r["count"], ", ".join(r["ids"][:5])] for r in fa["reasons"]]))
            for r in fa["reasons"][:3]:
                for ex in r["examples"][:1]:
                    parts.append(f"<p><b>{_e(r['reason'])}</b> {_e(ex['id'])}: {_e(ex.get('detail') or '')}</p>"
                                 f"<pre>{_e(ex['output'])}</pre>")

    parts.append("<h2>Cost</h2>")
    parts.append(_table(["model", "prompt tokens", "completion tokens", "$ per 1M tokens", "basis"],
                        [[m, c["prompt_tokens"], c["completion_tokens"], f"{c['cost_per_1m_tokens_usd']:.2f}", c["basis"]]
                         for m, c in report["cost"].items()]))
    if report.get("roi"):
        parts.append(f"<p><b>{_e(report['roi'])}</b></p>")
    parts.append("<h2>Provenance</h2>")
    parts.append(f"<pre>{_e(_json({'data_sources': report['data_sources'], 'git_commit': report['run'].get('git_commit'), 'versions': report['run'].get('versions')}))}</pre>")
    parts.append(f"<script>{READY_JS}</script></body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path


def _json(obj) -> str:
    import json

    return json.dumps(obj, indent=1, ensure_ascii=False, default=str)
