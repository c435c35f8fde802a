"""CSV tables and a self-contained HTML report (inline SVG charts, no network needed) for a comparison."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from fctune.io import write_text_atomic
from fctune.llama_server import parallel_slots
from fctune.suite_specs import capability_tables
from fctune.tool_tokens import sentence as tool_tokens_sentence


def csv_names() -> dict[str, str]:
    """Capability table -> its CSV file name (one per suite, from the registry when the report is written)."""
    return {cap: f"{cap}.csv" for cap in capability_tables()}


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

    # one CSV per capability table, long format (model, metric, value...): what a spreadsheet or pandas reads best
    for cap, fname in csv_names().items():
        table = report["capabilities"].get(cap, {})
        rows = []
        for model, metrics in table.items():
            for name, v in metrics.items():
                ci = v.get("ci") or [None, None]
                rows.append([model, report["models"].get(model, {}).get("role"), name, v.get("value"), ci[0], ci[1],
                             v.get("n"), v.get("ratio_to_llm")])
        dump(fname, ["model", "role", "metric", "value", "ci_low", "ci_high", "n", "ratio_to_llm"], rows)
    rows = []
    for model, j in report["verdicts"].items():
        for cap, c in j["capabilities"].items():
            rows.append([model, j["role"], cap, c["metric"], c.get("slm"), c.get("llm"), c.get("ratio"),
                         *(c.get("ci") or [None, None]), c.get("n"), c.get("status"), c.get("rows_needed")])
        rows.append([model, j["role"], f"VERDICT ({j['aggregate']})", None, None, None, j.get("min_ratio"), None, None,
                     None, j["status"], j.get("rows_needed")])
    dump("llm_comparison.csv", ["model", "role", "capability", "metric", "slm", "llm", "ratio", "ratio_low",
                                "ratio_high", "n_rows", "status", "rows_needed"], rows)
    dump("do_no_harm.csv", ["model", "check", "metric", "base", "base_reading", "finetuned", "base_value",
                            "difference", "ci_low", "ci_high", "n_rows", "status", "max_regression"],
         [[model, name, c["metric"], c.get("base"), c.get("base_reading"), c.get("finetuned"), c.get("base_value"),
           c.get("difference"), *(c.get("ci") or [None, None]), c.get("n"), c["status"], nh["max_regression"]]
          for model, nh in (report.get("do_no_harm") or {}).items() for name, c in nh["checks"].items()])
    dump("vetoes.csv", ["model", "veto", "metric", "value", "op", "threshold", "n", "status"],
         [[model, name, v["metric"], v["value"], v["op"], v["threshold"], v["n"], v["status"]]
          for model, j in report["verdicts"].items() for name, v in j["vetoes"].items()])
    dump("gates.csv", ["model", "role", "gate", "metric", "op", "threshold", "value", "status", "threshold_inside_ci"],
         [[g["model"], g["role"], g["gate"], g["metric"], g["op"], g["threshold"], g["value"], g["status"],
           g.get("threshold_inside_ci")] for g in report["gates"]])
    if report["bfcl"]:
        dump("bfcl.csv", ["model", "category", "accuracy", "accuracy_lenient", "correct", "total", "ci_low", "ci_high"],
             [[m, c, v["accuracy"], v.get("accuracy_lenient"), v["correct"], v["total"], *(v.get("ci") or [None, None])]
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
                           "schema_valid_rate", "json_exact_match_rate", "field_f1", "abstention_accuracy")
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


def chart_ratios(verdicts: dict, bar: float, aggregate: str = "min") -> str | None:
    """Each fine-tuned model's capability ratios to the LLM with their paired intervals, and the bar; with the
    ``mean`` aggregate (the gates file's option) each model's mean ratio too, since that is what is judged."""
    rows = []
    for m, j in verdicts.items():
        if j["role"] != "finetuned":
            continue
        rows += [(f"{m} · {cap}", c["ratio"], c.get("ci"), c.get("status") if aggregate == "min" else "shown")
                 for cap, c in j["capabilities"].items() if c.get("ratio") is not None]
        if aggregate == "mean" and j.get("mean_ratio") is not None:
            rows.append((f"{m} · mean of capabilities", j["mean_ratio"], j.get("mean_ci"), j["status"]))
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.7 + 0.32 * len(rows)))
    ys = list(range(len(rows)))[::-1]
    top = max(1.3, min(3.0, max(r[1] for r in rows) * 1.1))
    for y, (_, v, ci, st) in zip(ys, rows, strict=True):
        lo, hi = (ci or [v, v])[0], (ci or [v, v])[1]
        hi = top if hi is None else min(hi, top)
        color = {"pass": "#2a9d8f", "fail": "#e76f51", "shown": "#aaaaaa"}.get(st, "#e9c46a")
        ax.plot([lo, hi], [y, y], color=color, linewidth=3, solid_capstyle="butt")
        ax.plot([min(v, top)], [y], "o", color="black", markersize=4)
    ax.axvline(bar, color="black", linestyle="--", linewidth=1)
    ax.text(bar, 1.0, f" bar {bar:.0%}", fontsize=8, va="bottom", transform=ax.get_xaxis_transform())
    ax.set_yticks(ys)
    ax.set_yticklabels([r[0] for r in rows])
    ax.set_xlim(0, top)
    ax.set_xlabel("ratio to the LLM (dot) and paired 95% interval (bar): green pass, red fail, yellow inconclusive"
                  + ("; grey: not judged on its own" if aggregate == "mean" else ""))
    ax.set_title("capabilities against the LLM: " + ("each one is judged" if aggregate == "min" else
                                                     "their mean is judged (the gates file's option)"),
                 pad=14)  # room for the bar's label above the axes
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
.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}
.regression{background:#f8d7da;padding:8px;border:1px solid #d08080}"""

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


def _ci_text(ci, pct=True) -> str:
    if not ci:
        return "—"
    f = (lambda x: "unbounded" if x is None else f"{x:.1%}") if pct else (lambda x: f"{x:.3f}")
    return f"[{f(ci[0])}, {f(ci[1])}]"


def _flat(d, prefix="") -> list[tuple[str, str]]:
    """A nested mapping as (dotted key, readable value) rows: reports show tables, never JSON or Python reprs."""
    rows = []
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            rows += _flat(v, key + ".")
        elif isinstance(v, (list, tuple)):
            rows.append((key, ", ".join(_fmt(x) for x in v) if all(not isinstance(x, (dict, list)) for x in v)
                         else f"{len(v)} items"))
        else:
            rows.append((key, _fmt(v)))
    return rows


def _stand_in_notes(report: dict) -> list[str]:
    notes = []
    llm = report["models"].get(report["llm_baseline"]) or {}
    host = str(llm.get("endpoint_host") or "")
    if llm.get("backend") == "local" or llm.get("served_by") or "127.0.0.1" in host or "localhost" in host:
        repaired = tool_tokens_sentence(llm.get("tool_tokens"))
        notes.append(f"The LLM baseline is a local model ({llm.get('model_description') or llm.get('model')}"
                     f"{'; ' + repaired if repaired else ''}), a stand-in for a hosted LLM: the verdict says how the "
                     "SLMs compare with this model, nothing more.")
    slots = parallel_slots(llm.get("served_by"))
    if slots and slots > 1:
        notes.append(f"{report['llm_baseline']} was answered by llama-server decoding {slots} requests side by side: "
                     "its greedy answers depend on which requests shared a batch, so another run can differ by a few "
                     "rows; --max-concurrency 1 gives the same answers every run.")
    fams = {}
    for label, m in report["models"].items():
        if m.get("approach") == "paper" and m.get("role") == "finetuned":
            fams.setdefault(m.get("model"), []).append(label)
            if "+" in str(m.get("family") or ""):
                notes.append(f"{label} stands for {m['family']}: they were given the same base model "
                             f"({m.get('model')}), so it was trained and evaluated once; the Phi/Llama comparison "
                             "needs the real models.")
    for model, labels in fams.items():
        if len(labels) > 1:
            notes.append(f"{', '.join(labels)} are the same base model ({model}): the Phi/Llama comparison is between "
                         "stand-ins, not between Phi-4-mini and Llama-3.1-8B.")
    return notes


def write_html(report: dict, path: Path) -> Path:
    """The report as a decision document: the verdict and why, the capability table, the vetoes, the seed's four
    questions, failure modes, cost; then the details."""
    d = report["decision"]
    verdicts = report["verdicts"]
    bar = d.get("bar")
    judged = ("the paired 95% lower bound of the mean of its capability ratios" if d.get("aggregate") == "mean"
              else "on every capability, the paired 95% lower bound of its ratio")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Phase {report['phase']} decision</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Can a fine-tuned SLM call functions like the LLM? Phase {report['phase']} decision</h1>",
             f"<div class='verdict'>{_e(d['verdict'])}</div><p><b>Why:</b> {_e(d.get('reason', ''))}</p>",
             *(f"<p class='regression'><b>Worse than its base:</b> {_e(t)}</p>" for t in d.get("regressions") or []),
             (f"<p class='note'>In the lenient reading (any recoverable call counts) the same rule gives "
              f"<b>{_e(d['lenient']['verdict'])}</b>: {_e(d['lenient'].get('reason', ''))}. The verdict above is the "
              "strict one.</p>" if d.get("lenient") else ""),
             f"<p>Rule: a model passes when {judged} to the LLM is at least {_fmt(bar, True)}; it fails when an upper "
             "bound is below it or a veto applies; "
             f"otherwise the verdict is INCONCLUSIVE. Aggregate: <b>{_e(d.get('aggregate'))}</b>"
             f"{' (an option: the default is min)' if d.get('aggregate') == 'mean' else ''}; reading: strict (calls "
             f"count only in each model's declared format). LLM baseline: <b>{_e(report['llm_baseline'])}</b>.</p>"]
    notes = _stand_in_notes(report)
    fallbacks = [s for s in report["data_sources"] if "fallback" in s]
    if notes or fallbacks or report["problems"] or report["missing_models"]:
        parts.append("<div class='warn'>")
        parts += [f"<p>{_e(n)}</p>" for n in notes]
        parts += [f"<p>Data source fell back: {_e(s)}</p>" for s in fallbacks]
        parts += [f"<p>{_e(p)}</p>" for p in report["problems"]]
        if report["missing_models"]:
            parts.append("<p>Missing results: " + "; ".join(
                _e(", ".join(f"{k}={v}" for k, v in m.items())) for m in report["missing_models"]) + "</p>")
        parts.append("</div>")

    parts.append("<h2>Capabilities against the LLM</h2>")
    svg = chart_ratios(verdicts, bar, d.get("aggregate") or "min") if bar is not None else None
    if svg:
        parts.append(f"<div class='chart'>{svg}</div>")
    order = sorted(verdicts, key=lambda k: (verdicts[k]["role"] != "finetuned", k))
    rows, classes = [], []
    for model in order:
        j = verdicts[model]
        for cap, c in j["capabilities"].items():
            rows.append([model, j["role"], cap, c["metric"], _fmt(c.get("slm")), _fmt(c.get("llm")),
                         _fmt(c.get("ratio"), True), _ci_text(c.get("ci")), c.get("n"),
                         c.get("status") + (f": {c['missing_why']}" if c.get("missing_why") else ""),
                         c.get("rows_needed") or ""])
            classes.append({"pass": "pass", "fail": "fail"}.get(c.get("status"), "missing"))
        rows.append([model, j["role"], "verdict", j["aggregate"], "", "", _fmt(j.get("min_ratio"), True)
                     if j["aggregate"] == "min" else _fmt(j.get("mean_ratio"), True),
                     _ci_text(j.get("mean_ci")) if j["aggregate"] == "mean" else "", "", j["status"] +
                     (f" — {j['why']}" if j.get("why") else ""), j.get("rows_needed") or ""])
        classes.append({"pass": "pass", "fail": "fail"}.get(j["status"], "missing"))
    parts.append(_table(["model", "role", "capability", "metric", "its score", "LLM's score", "ratio",
                         "paired 95% interval", "rows", "status", "rows that would decide"], rows, classes))

    parts.append("<h2>Vetoes (calls that must not happen)</h2>")
    rows, classes = [], []
    for model in order:
        for name, v in verdicts[model]["vetoes"].items():
            rows.append([model, name, v["metric"], _fmt(v["value"], True), _ci_text(v.get("ci")),
                         f"{v['op']} {v['threshold']:.0%}", v["n"], v["status"]])
            classes.append({"ok": "pass", "veto": "fail"}.get(v["status"], "missing"))
    parts.append(_table(["model", "veto", "metric", "value", "95% interval", "rule", "rows", "status"], rows, classes))

    harm = report.get("do_no_harm") or {}
    if harm:
        limit = next(iter(harm.values()))["max_regression"]
        parts.append("<h2>Against its own base (do no harm)</h2><p>Each fine-tuned model (strict reading) against "
                     "its base model's best reading on the same rows (strict or lenient, over every result of the "
                     f"base). A loss whose paired 95% interval lies entirely below −{limit:.0%} is a regression"
                     f"{' and, in phase 2, a veto' if report['phase'] == 2 else ' (a veto in phase 2)'}.</p>")
        rows, classes = [], []
        for model, nh in harm.items():
            if not nh["bases"]:
                rows.append([model, "—", "", "no result of its base model", "", "", "", "", "", "missing"])
                classes.append("missing")
            for name, c in nh["checks"].items():
                rows.append([model, name, c["metric"], f"{c.get('base', '—')} ({c.get('base_reading', '')})",
                             _fmt(c.get("finetuned")), _fmt(c.get("base_value")),
                             "—" if c.get("difference") is None else f"{c['difference'] * 100:+.1f} points",
                             f"[{c['ci'][0] * 100:+.1f}, {c['ci'][1] * 100:+.1f}]" if c.get("ci") else "—",
                             c.get("n"), c["status"]])
                classes.append({"ok": "pass", "regression": "fail"}.get(c["status"], "missing"))
        parts.append(_table(["model", "check", "metric", "base (reading)", "fine-tuned", "base", "difference",
                             "paired 95% interval", "rows", "status"], rows, classes))

    parts.append("<h2>The four questions</h2><ol>")
    for q in report["questions"]:
        parts.append(f"<li><b>{_e(q['question'])}</b><br>{_e(q['answer'])}</li>")
    parts.append("</ol>")

    # what went wrong, with the model's own words: a reader checks a verdict by reading a few failed rows, not by
    # trusting a rate (only judged models and the LLM: base models' failures are not what is being decided)
    parts.append("<h2>Failure modes</h2>")
    for model, suites in report["failure_analysis"].items():
        if model not in verdicts and model != report["llm_baseline"]:
            continue
        for suite, fa in suites.items():
            if not fa["reasons"]:
                continue
            parts.append(f"<h3>{_e(model)} — {_e(suite)}: {fa['n_failed']}/{fa['n']} failed"
                         f"{', ' + str(fa['n_errors']) + ' backend errors' if fa['n_errors'] else ''}</h3>")
            parts.append(_table(["reason", "rows", "example ids"],
                                [[r["reason"], r["count"], ", ".join(r["ids"][:5])] for r in fa["reasons"]]))
            for r in fa["reasons"][:3]:
                for ex in r["examples"][:2]:
                    parts.append(f"<p><b>{_e(r['reason'])}</b> {_e(ex['id'])}: {_e(ex.get('detail') or '')}</p>"
                                 f"<pre>{_e(ex['output'])}</pre>")

    if report.get("served"):
        parts.append("<h2>Served against in-process</h2><p>Each fine-tuned model that was exported and served "
                     "(llama.cpp, real <code>tool_calls</code>) and evaluated again through the OpenAI backend — "
                     "the path a deployment takes. A difference whose paired 95% interval excludes 0 is flagged: "
                     "the served model is not the measured one.</p>")
        rows, classes = [], []
        for label, r in report["served"].items():
            for m in r.get("metrics", []) + r.get("bfcl", []):
                rows.append([label, m.get("name") or f"BFCL {m.get('category')}", _fmt(m.get("in_process")),
                             _fmt(m.get("served")), f"{_fmt(m.get('difference'))} {_ci_text(m.get('ci'), pct=False)}",
                             "DIFFERS" if m.get("differs") else "same within interval", m.get("n")])
                classes.append("fail" if m.get("differs") else "")
        parts.append(_table(["model", "metric", "in-process", "served", "difference [95%]", "", "rows"], rows,
                            classes))
    # cost last among the decision sections: it only matters for a model that passes; its prices are assumptions
    # stated in gates.yaml, shown with their basis on each row
    parts.append("<h2>Cost</h2>")
    parts.append(_table(["model", "prompt tokens", "completion tokens", "$ per 1M tokens", "basis"],
                        [[m, c["prompt_tokens"], c["completion_tokens"], f"{c['cost_per_1m_tokens_usd']:.2f}",
                          c["basis"]]
                         for m, c in report["cost"].items()]))
    if report.get("roi"):
        parts.append(f"<p><b>{_e(report['roi'])}</b></p>")

    # below this line: what the decision was made from, for whoever needs to audit it
    parts.append("<h1>Details</h1>")
    parts.append("<h2>Strict and lenient readings</h2><p>Strict: a call counts only in the model's declared call "
                 "format (as a leaderboard decoder reads it); lenient: any recoverable call. The verdict uses strict "
                 "for every model alike.</p>")
    rows = [[m, ", ".join(r["call_format"]), suite, v["metric"], _fmt(v["strict"]), _fmt(v["lenient"])]
            for m, r in report["readings"].items() for suite, v in r.items() if suite != "call_format"]
    parts.append(_table(["model", "declared call format", "suite", "metric", "strict", "lenient"], rows))

    parts.append("<h2>Models</h2>")
    parts.append(_table(["label", "approach", "role", "family", "backend", "model", "adapter version", "suites"],
                        [[k, v["approach"], v["role"], v["family"], v["backend"],
                          v.get("model_description") or v["model"], v["adapter_version_id"], ", ".join(v["suites"])]
                         for k, v in report["models"].items()]))

    parts.append("<h2>Absolute gates</h2>")
    rows, classes = [], []
    for g in report["gates"]:
        rows.append([g["model"], g["role"], g["gate"], f"{g['op']} {g['threshold']}", _fmt(g["value"]),
                     _ci_text(g["ci"], pct=False), g["status"],
                     "threshold inside CI" if g.get("threshold_inside_ci") else ""])
        classes.append(g["status"])
    parts.append(_table(["model", "role", "gate", "rule", "value", "95% CI", "status", ""], rows, classes))

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
                rows.append([model, name, _fmt(v.get("value")), _ci_text(v.get("ci"), pct=False), v.get("n"),
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
        parts.append(_table(["model", "non-live AST (strict)", "non-live AST (lenient)", "live AST",
                             "irrelevance (no call made)"],
                            [[m, _fmt(b["non_live_ast"]), _fmt(b.get("non_live_ast_lenient")), _fmt(b["live_ast"]),
                              ", ".join(f"{k} {_fmt(v)}" for k, v in (b["hallucination"] or {}).items())]
                             for m, b in report["bfcl"].items()]))
        parts.append(_table(["model", "category", "accuracy (strict)", "lenient", "correct/total", "95% CI",
                             "cut at the budget"],
                            [[m, c, _fmt(v["accuracy"]), _fmt(v.get("accuracy_lenient")),
                              f"{v['correct']}/{v['total']}",
                              _ci_text(v.get("ci"), pct=False), v.get("n_truncated") or 0]
                             for m, b in report["bfcl"].items() for c, v in b["categories"].items()]))

    fl = report["fledgling"]
    if fl.get("gates") or fl.get("tracks"):
        parts.append("<h2>Fledgling approach</h2>")
        for g in fl.get("gates", []):
            base = (g.get("base_model") or {}).get("label", "")
            parts.append(f"<p><b>Gate decision</b> ({_e(base)}): {_e(g.get('decision'))}: {_e(g.get('reason'))}</p>")
            parts.append(_table(["number", "value"], _flat(g.get("numbers"))))
        rows = [[m, t, _fmt(v.get("valid_json_rate")), _fmt(v.get("schema_valid_rate")),
                 _fmt(v.get("exact_match_rate")),
                 _fmt(v.get("field_f1"))] for m, tr in fl.get("tracks", {}).items() for t, v in tr.items()]
        parts.append(_table(["model", "track", "valid JSON", "schema valid", "exact", "field F1"], rows))

    # where the rows came from (a fallback to offline data says so here too) and which code scored them
    parts.append("<h2>Provenance</h2>")
    run = report["run"]
    parts.append(_table(["what", "value"], [("data sources", "; ".join(report["data_sources"]) or "—"),
                                            ("git commit", _fmt(run.get("git_commit")))]
                        + _flat(run.get("versions"), "version: ")))
    parts.append(f"<script>{READY_JS}</script></body></html>")
    write_text_atomic(path, "\n".join(parts))
    return path
