"""One self-contained HTML report per run: metrics table and charts, viewable offline.

``RUN/report.html`` is written at the end of ``matcher run`` and ``matcher evaluate``. It holds

* the metrics table (counts, threshold, pairwise and cluster accuracy, confusion counts,
  blocking recall, column importances, timings) from ``metrics.json`` / ``summary.json``;
* Splink's **match weights** chart (per comparison level) and **m/u parameters** chart,
  built from the saved model;
* a **precision-recall curve** over the scored pairs ranked by match weight, with the run's
  threshold marked (only when a ``truth_column`` is configured); recall is end to end (its
  denominator counts true pairs that blocking never proposed), so the curve ends at
  ``blocking_recall``;
* a few **explained pairs** as Splink waterfall charts: the strongest match, the weakest
  non-match and the pairs closest to the threshold. Record values are left out by default
  (``show_values=False``): the report shows comparison levels and weights, never names or
  emails, so it can be shared like a log.

Charts are Vega-Lite specs; the vega, vega-lite and vega-embed scripts shipped inside the
splink wheel are inlined, so the file needs no network.
"""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path
from typing import Any, Iterable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from matcher.model.artifact import TrainedModel
from matcher.model.splink_adapter import chart_libraries, waterfall_chart

log = logging.getLogger(__name__)

EXPLAINED_PAIRS = 4


def _script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element."""
    return json.dumps(value, default=float).replace("<", r"\u003c").replace(">", r"\u003e").replace("&", r"\u0026")


def precision_recall_points(pairs: DataFrame, truth: str, true_pairs: int) -> list[dict[str, float]]:
    """Precision and end-to-end recall when every pair with at least each match weight is a match.

    Pairs are grouped by match weight rounded to 0.1 (a few hundred points at most); a pair is
    true when both records share the ``truth`` value.
    """
    is_true = F.coalesce(F.col(f"{truth}_l") == F.col(f"{truth}_r"), F.lit(False))
    buckets = (
        pairs.groupBy(F.round("match_weight", 1).alias("match_weight"))
        .agg(F.sum(is_true.cast("int")).alias("tp"), F.sum((~is_true).cast("int")).alias("fp"))
        .orderBy(F.desc("match_weight"))
        .collect()
    )
    points, tp, fp = [], 0, 0
    for bucket in buckets:
        tp, fp = tp + bucket["tp"], fp + bucket["fp"]
        points.append({
            "match_weight": float(bucket["match_weight"]),
            # clamped: EM on small data can drive a weight below -1024 bits, past what a float holds
            "match_probability": 1.0 / (1.0 + 2.0 ** min(-float(bucket["match_weight"]), 1000.0)),
            "precision": tp / (tp + fp),
            "recall": tp / true_pairs if true_pairs else 0.0,
        })
    return points


def precision_recall_chart(points: list[dict[str, float]], chosen: dict[str, float]) -> dict[str, Any]:
    """A Vega-Lite precision-recall curve with the run's threshold as a labelled point."""
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": 420,
        "height": 320,
        "title": "Precision-recall over match-weight thresholds (recall includes blocking losses)",
        "layer": [
            {
                "data": {"values": points},
                "mark": {"type": "line", "point": True, "interpolate": "step-after"},
                "encoding": {
                    "x": {"field": "recall", "type": "quantitative", "scale": {"domain": [0, 1]}},
                    "y": {"field": "precision", "type": "quantitative", "scale": {"zero": False}},
                    "tooltip": [{"field": f, "type": "quantitative", "format": ".4f"}
                                for f in ("match_weight", "match_probability", "precision", "recall")],
                },
            },
            {
                "data": {"values": [chosen]},
                "mark": {"type": "point", "shape": "diamond", "size": 220, "filled": True, "color": "#d62728"},
                "encoding": {"x": {"field": "recall", "type": "quantitative"},
                             "y": {"field": "precision", "type": "quantitative"}},
            },
            {
                "data": {"values": [chosen]},
                "mark": {"type": "text", "align": "left", "dx": 10, "dy": -10, "color": "#d62728"},
                "encoding": {"x": {"field": "recall", "type": "quantitative"},
                             "y": {"field": "precision", "type": "quantitative"},
                             "text": {"field": "label"}},
            },
        ],
    }


def explained_pairs(pairs: DataFrame, threshold_weight: float, n: int = EXPLAINED_PAIRS) -> list[dict[str, Any]]:
    """A few instructive scored pairs: the strongest, the weakest and those nearest the threshold.

    They are picked on the pairs' ids and weights alone (Parquet reads those columns only), and
    read whole in one more pass: one wide read of the pairs, not one per pick.
    """
    key = ["record_id_l", "record_id_r"]
    scores = pairs.select(*key, "match_weight")
    picks = [
        scores.orderBy(F.desc("match_weight"), *key).limit(1),
        scores.orderBy(F.asc("match_weight"), *key).limit(1),
        scores.orderBy(F.abs(F.col("match_weight") - threshold_weight), *key).limit(max(n - 2, 0)),
    ]
    chosen = list(dict.fromkeys((row[0], row[1]) for pick in picks for row in pick.collect()))[:n]
    if not chosen:
        return []
    lefts, rights = zip(*chosen)
    found = pairs.where(F.col(key[0]).isin(list(set(lefts))) & F.col(key[1]).isin(list(set(rights)))).collect()
    whole = {(row[key[0]], row[key[1]]): row.asDict() for row in found}
    return [whole[k] for k in chosen if k in whole]  # a recomputed (not read) frame may have moved on


def _flatten(metrics: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in metrics.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        elif not isinstance(value, list):
            yield f"{prefix}{key}", value


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value))


def _table(rows: Iterable[tuple[str, Any]], header: tuple[str, str] = ("metric", "value")) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_format(v)}</td></tr>" for k, v in rows)
    return f"<table><thead><tr><th>{header[0]}</th><th>{header[1]}</th></tr></thead><tbody>{body}</tbody></table>"


def _headline(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    rows = [(label, metrics[key]) for key, label in (
        ("rows_in", "rows in"), ("rows_out", "rows out"), ("n_pairs", "pairs scored"), ("n_clusters", "clusters"),
        ("threshold_match_probability", "threshold (match probability)"),
        ("threshold_match_weight", "threshold (match weight)"), ("blocking_recall", "blocking recall"),
    ) if key in metrics]
    for group in ("pairwise", "clusters"):
        for key in ("precision", "recall", "f1", "auprc", "tp", "fp", "fn"):
            if key in metrics.get(group, {}):
                rows.append((f"{group} {key}", metrics[group][key]))
    return rows


def _rows_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_format(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def model_setup_section(metadata: dict[str, Any]) -> str:
    """What training decided from the data: rules, EM sessions, lambda, threshold, and its warnings (HTML)."""
    parts: list[str] = []
    setup = metadata.get("setup") or {}
    if setup.get("automatic"):
        parts.append(f"<p>Chosen from the data: {html.escape(', '.join(setup['automatic']))}.</p>")
    blocking = setup.get("blocking") or {}
    if blocking.get("chosen"):
        rows = [{**r, "rule": json.dumps(r.get("rule"))} for r in blocking["chosen"]]
        parts.append("<h3>Blocking rules</h3>" + _rows_table(rows, ["rule", "pairs", "recall", "new_pairs", "adds_recall"]))
        facts = {k: v for k, v in blocking.items() if not isinstance(v, (list, dict))}
        parts.append(_table(facts.items(), ("blocking", "value")))
    sessions = metadata.get("em_sessions") or []
    if sessions:
        rows = [{"blocking rule": s.get("blocking_rule"), "pairs": s.get("pairs"), "iterations": s.get("iterations"),
                 "estimated": ", ".join(s.get("estimated", []))} for s in sessions]
        parts.append("<h3>EM sessions</h3>" + _rows_table(rows, ["blocking rule", "pairs", "iterations", "estimated"]))
    lam = metadata.get("lambda")
    if isinstance(lam, dict):
        parts.append("<h3>λ (probability two random records match)</h3>"
                     + _table(((k, v) for k, v in lam.items() if not isinstance(v, (list, dict))), ("estimate", "value")))
    threshold = metadata.get("estimated_threshold")
    if threshold:
        parts.append("<h3>Estimated threshold</h3>" + _table(threshold.items(), ("threshold", "value")))
    warnings = model_checks(metadata)
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        parts.append(f"<h3>Model checks</h3><ul>{items}</ul>")
    return f"<h2>Model setup</h2>{''.join(parts)}" if parts else ""


def model_checks(metadata: dict[str, Any]) -> list[str]:
    """One line per finding of training's model checks (EM safeguards, training rules set aside by the automatic setup)."""
    lines = []
    for session in metadata.get("em_sessions") or []:
        checks = session.get("checks") or {}
        for finding in checks.get("findings", []):
            lines.append(f"EM blocked on {session.get('blocking_rule')}: {finding.get('comparison') or 'whole session'}: "
                         f"{finding.get('problem')} ({finding.get('detail')})")
        if checks.get("findings"):
            lines.append(f"EM blocked on {session.get('blocking_rule')}: recovery: {checks.get('recovery')}")
    training = (metadata.get("setup") or {}).get("training") or {}
    for rule, reason in (training.get("rejected") or {}).items():
        lines.append(f"training rule {rule} not used for EM: {reason}")
    for relaxed in training.get("relaxed") or []:
        lines.append(f"no sound EM session for {relaxed.get('comparison')}: used {relaxed.get('rule')} anyway")
    return lines


def render_report(
    metrics: dict[str, Any],
    splink_model: dict[str, Any],
    *,
    pairs: DataFrame | None = None,
    truth: str | None = None,
    show_values: bool = False,
    metadata: dict[str, Any] | None = None,
) -> str:
    """The report as one HTML document (no external resources); ``metadata`` is the model's."""
    settings = TrainedModel(splink_model).settings()
    charts: list[tuple[str, str, dict[str, Any]]] = [
        ("match-weights", "Match weights per comparison level", settings.match_weights_chart().chart_dict),
        ("m-u-parameters", "m and u probabilities", settings.m_u_parameters_chart().chart_dict),
    ]
    threshold = metrics.get("threshold_match_weight", 0.0)
    if pairs is not None and truth and "pairwise" in metrics and f"{truth}_l" in pairs.columns:
        points = precision_recall_points(pairs, truth, metrics.get("true_pairs", 0))
        chosen = {"precision": metrics["pairwise"]["precision"], "recall": metrics["pairwise"]["recall"],
                  "label": f"threshold: weight {threshold:.2f}"}
        if points:
            charts.append(("precision-recall", "Precision-recall curve", precision_recall_chart(points, chosen)))
    if pairs is not None:
        for i, pair in enumerate(explained_pairs(pairs, threshold)):
            verdict = "match" if pair["match_weight"] >= threshold else "non-match"
            title = (f"Explained pair {i + 1}: records {pair['record_id_l']} and {pair['record_id_r']}, "
                     f"match weight {pair['match_weight']:.2f}, probability {pair['match_probability']:.4f} ({verdict})")
            charts.append((f"waterfall-{i + 1}", title, waterfall_chart(pair, settings, hide_values=not show_values)))

    # the libraries hold no "</script"; escaping any other "</" would corrupt their regex literals
    escaped = (re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE) for source in chart_libraries().values())
    libraries = "".join(f"<script>{source}</script>\n" for source in escaped)
    sections = "".join(
        f'<section><h2>{html.escape(title)}</h2><div class="chart" id="{name}"></div></section>\n'
        for name, title, _ in charts
    )
    specs = _script_json({name: spec for name, _, spec in charts})
    importances = metrics.get("column_importances") or {}
    name = html.escape(str(metrics.get("config", "run")))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>matcher report: {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
td {{ font-variant-numeric: tabular-nums; }}
section {{ margin-bottom: 2em; }}
</style>
{libraries}</head><body>
<h1>matcher report: {name}</h1>
<h2>Metrics</h2>
{_table(_headline(metrics))}
{_table(importances.items(), ("column", "importance")) if importances else ""}
<details><summary>All metrics</summary>{_table(_flatten({k: v for k, v in metrics.items() if k != "outputs"}))}</details>
{model_setup_section(metadata or {})}
{sections}
<script>
const specs = {specs};
for (const [id, spec] of Object.entries(specs)) {{
  vegaEmbed('#' + id, spec, {{actions: false}}).catch(err => {{
    document.getElementById(id).textContent = 'chart error: ' + err;
  }});
}}
</script>
</body></html>
"""


def write_run_report(folder, config, spark) -> Path:
    """Write ``report.html`` into a run folder that holds a model and a completed match run."""
    metrics_file = folder.metrics if folder.metrics.exists() else folder.summary
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    model = TrainedModel.load(folder.model)
    pairs = spark.read.parquet(str(folder.pairs))  # a completed match run always wrote them
    document = render_report(metrics, model.splink_model, pairs=pairs, truth=config.truth_column, metadata=model.metadata)
    target = Path(folder.report)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(document, encoding="utf-8")
    tmp.replace(target)
    log.info("report written to %s", target)
    return target
