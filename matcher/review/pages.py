"""The review pages as HTML: the queue, one entity, the decision log. Every value is escaped;
styles and script are the package's own assets (no CDN), so the pages work offline."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd

from matcher.review.state import ReviewState

ASSETS = "/review/assets"
PAGE_SIZE = 50
FLAGS = {"weak": "weakly held", "near": "near miss", "large": "large", "same_source": "same source", "reviewed": "reviewed"}


def _e(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _entity_link(match_id: str) -> str:
    return f'<a href="/review/entities/{quote(str(match_id), safe=":~")}">{_e(match_id)}</a>'


def _layout(title: str, body: str, state: ReviewState, who: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · matcher review</title><link rel="stylesheet" href="{ASSETS}/review.css">
<script src="{ASSETS}/review.js" defer></script></head>
<body><header><h1>matcher review</h1>
<nav><a href="/review">Queue</a><a href="/review/decisions">Decisions</a></nav>
<span class="muted" title="{_e(state.folder.location)}">{_e(state.folder.root.name)} · threshold {state.threshold:.3g}</span>
<label class="who">Reviewer <input id="who" type="text" value="{_e(who)}" autocomplete="name"></label></header>
<main><div id="message" class="message" hidden></div>{body}</main></body></html>"""


def _chips(row: dict[str, Any]) -> str:
    chips = []
    if row["weak"]:
        chips.append(("weak", f"weakest link {row['weakest_link']:.2f}"))
    if row["near"]:
        chips.append(("near", f"near miss {row['near_miss']:.2f}"))
    if row["large"]:
        chips.append(("large", f"{row['size']} records"))
    if row["same_source"]:
        chips.append(("same_source", f"2+ from {row['same_source']}"))
    if row["reviewed"]:
        chips.append(("reviewed", "reviewed"))
    return "".join(f'<span class="chip {k}">{_e(t)}</span>' for k, t in chips)


def filter_queue(queue: pd.DataFrame, state: ReviewState, *, q: str = "", show: str = "open", flag: str = "any") -> pd.DataFrame:
    """The queue rows a filter keeps: ``show`` open / reviewed / all, ``flag`` any or one of :data:`FLAGS`,
    ``q`` a match_id, a record id or a source's primary key (the part after ``source:``)."""
    if show == "open":
        queue = queue[~queue["reviewed"]]
    elif show == "reviewed":
        queue = queue[queue["reviewed"]]
    if flag == "same_source":
        queue = queue[queue["same_source"].notna()]
    elif flag in ("weak", "near", "large"):
        queue = queue[queue[flag].astype(bool)]
    q = q.strip()
    if q:
        ids = state.current.index
        hits = ids[(ids == q) | ids.str.endswith(":" + q)]
        wanted = {q, *state.current.loc[hits]}
        queue = queue[queue["match_id"].isin(wanted)]
    return queue


def _options(values: list[tuple[str, str]], chosen: str) -> str:
    return "".join(f'<option value="{v}"{" selected" if v == chosen else ""}>{_e(t)}</option>' for v, t in values)


def queue_page(state: ReviewState, who: str, *, q: str = "", show: str = "open", flag: str = "any", page: int = 1) -> str:
    full = state.queue()
    rows = filter_queue(full, state, q=q, show=show, flag=flag)
    start = (max(page, 1) - 1) * PAGE_SIZE
    shown = rows.iloc[start:start + PAGE_SIZE]
    body = [f"""<h2>Entities to review <span class="muted">({len(rows):,} of {len(full):,}; {len(state.decisions):,} decisions logged)</span></h2>
<form class="filters" method="get" action="/review">
<label>Search<input type="search" name="q" value="{_e(q)}" placeholder="match_id, record id or key"></label>
<label>Show<select name="show">{_options([("open", "to review"), ("reviewed", "reviewed"), ("all", "all")], show)}</select></label>
<label>Flag<select name="flag">{_options([("any", "any"), *[(k, v) for k, v in FLAGS.items() if k != "reviewed"]], flag)}</select></label>
<button type="submit">Filter</button></form>
<table id="queue"><thead><tr><th>match_id</th><th class="num">records</th><th>sources</th><th class="num">weakest link</th>
<th class="num">near miss</th><th>why it is here</th><th class="num">uncertainty</th></tr></thead><tbody>"""]
    for row in shown.to_dict("records"):
        near = "" if pd.isna(row["near_miss"]) else f'{row["near_miss"]:.3f} → {_entity_link(row["near_match_id"])}'
        weakest = "" if pd.isna(row["weakest_link"]) else f"{row['weakest_link']:.3f}"
        width = int(min(row["uncertainty"], 1.0) * 80)
        body.append(
            f'<tr><td>{_entity_link(row["match_id"])}</td><td class="num">{row["size"]}</td><td>{_e(row["sources"])}</td>'
            f'<td class="num">{weakest}</td><td class="num">{near}</td><td>{_chips(row)}</td>'
            f'<td class="num"><span class="bar" style="width:{width}px"></span> {row["uncertainty"]:.2f}</td></tr>'
        )
    body.append("</tbody></table>")
    if len(rows) > start + PAGE_SIZE:
        more = urlencode({"q": q, "show": show, "flag": flag, "page": page + 1})
        body.append(f'<p class="pager"><a href="/review?{more}">next {PAGE_SIZE} →</a></p>')
    return _layout("Queue", "".join(body), state, who)


def _waterfall(comparisons: list[dict[str, Any]]) -> str:
    parts = []
    for c in comparisons:
        kind = "plus" if c["weight"] > 0 else "minus" if c["weight"] < 0 else "none"
        width = max(2, min(int(abs(c["weight"]) * 6), 90))
        parts.append(f'<span class="{kind}" style="width:{width}px" title="{_e(c["name"])} (level {_e(c["level"])}): '
                     f'{c["weight"]:+.2f} bits"></span>')
    return f'<div class="waterfall">{"".join(parts)}</div>'


def _same(a: Any, b: Any) -> bool:
    return a is None or b is None or str(a).strip().lower() == str(b).strip().lower()


def entity_page(state: ReviewState, match_id: str, who: str, done: str | None = None) -> str:
    e = state.entity(match_id)
    columns, golden = e["columns"], e["golden"]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = [f'<tr class="golden"><td></td><td>golden record</td>{"".join(f"<td>{_e(golden.get(c))}</td>" for c in columns)}</tr>']
    for r in e["records"]:
        cells = "".join(
            f'<td class="{"" if _same(r.get(c), golden.get(c)) else "diff"}">{_e(r.get(c))}</td>' for c in columns)
        rows.append(f'<tr data-record="{_e(r["id"])}"><td><input class="pick" type="checkbox" value="{_e(r["id"])}" '
                    f'aria-label="move {_e(r["id"])}"></td><td>{_e(r["id"])}</td>{cells}</tr>')
    names = "".join(f"<th>{_e(c)}</th>" for c in state.comparisons)

    def link_row(link: dict[str, Any], extra: str) -> str:
        weights = "".join(f'<td class="num">{c["weight"]:+.1f}</td>' for c in link["comparisons"])
        return (f'<tr><td>{_e(link["id_l"])}</td><td>{_e(link["id_r"])}</td><td class="num">{link["match_probability"]:.4f}</td>'
                f'<td class="num">{link["match_weight"]:+.2f}</td><td>{_waterfall(link["comparisons"])}</td>{weights}<td>{extra}</td></tr>')

    def label_buttons(link: dict[str, Any]) -> str:
        ends = f'data-left="{_e(link["id_l"])}" data-right="{_e(link["id_r"])}"'
        return (f'<button class="small" data-do="match" {ends}>match</button> '
                f'<button class="small danger" data-do="not_match" {ends}>not a match</button>')

    links = "".join(link_row(link, label_buttons(link)) for link in e["links"]) or '<tr><td colspan="99" class="muted">no scored pair inside this entity</td></tr>'
    candidates = "".join(
        link_row(c, f'{_entity_link(c["other_match_id"])} <button class="small" data-do="merge" data-other="{_e(c["other_match_id"])}">merge</button> '
                 + label_buttons(c))
        for c in e["candidates"]
    ) or '<tr><td colspan="99" class="muted">no scored pair to another entity</td></tr>'
    notice = f'<div class="message done">Decision {_e(done)} recorded.</div>' if done else ""
    status = '<span class="chip reviewed">reviewed</span>' if e["reviewed"] else ""
    body = f"""{notice}<section data-match-id="{_e(match_id)}" data-version="{_e(e['version'])}">
<h2>Entity {_e(match_id)} <span class="muted">({len(e['records'])} records)</span> {status}</h2>
<div class="actions"><input type="text" name="why" placeholder="why (kept in the decision log)">
<button class="primary" data-do="confirm">Confirm entity</button>
<button data-do="split">Split: move ticked records out</button>
<input type="text" name="other" placeholder="other match_id"><button data-do="merge">Merge</button></div>
<h3>Records</h3><table id="records"><thead><tr><th></th><th>record id</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<h3>Links inside the entity{_shown_of(len(e["links"]), e["links_total"])}</h3>
<table id="links"><thead><tr><th>record</th><th>record</th><th class="num">probability</th><th class="num">weight</th><th>waterfall</th>{names}<th></th></tr></thead>
<tbody>{links}</tbody></table>
<h3>Closest records in other entities</h3>
<table id="candidates"><thead><tr><th>record</th><th>record</th><th class="num">probability</th><th class="num">weight</th><th>waterfall</th>{names}<th>entity</th></tr></thead>
<tbody>{candidates}</tbody></table>
<h3>Decisions about these records</h3>{_decision_table(e['decisions'])}</section>"""
    return _layout(f"Entity {match_id}", body, state, who)


def _shown_of(shown: int, total: int) -> str:
    return f' <span class="muted">(the {shown:,} weakest of {total:,})</span>' if total > shown else ""


def _decision_table(decisions: list[dict[str, Any]]) -> str:
    if not decisions:
        return '<p class="muted">none yet</p>'
    rows = []
    for d in decisions:
        what = {"split": f"moved {len(d.get('moved', []))} record(s) to {d.get('new_match_id')}",
                "merge": f"retired {d.get('retired_match_id')} into {d.get('match_id')}",
                "confirm": f"{len(d.get('records', []))} records", "undo": f"undid {d.get('undoes')}"}.get(
            d["action"], " ~ ".join(d.get("records", [])))
        undo = "" if d.get("undone") or d["action"] == "undo" else f'<button class="small" data-do="undo" data-decision="{_e(d["decision_id"])}">undo</button>'
        rows.append(f'<tr class="{"undone" if d.get("undone") else ""}"><td>{_e(d["decision_id"])}</td><td>{_e(d["action"])}</td>'
                    f'<td>{_e(what)}</td><td>{_e(d["who"])}</td><td>{_e(d["when"])}</td><td>{_e(d.get("why"))}</td><td>{undo}</td></tr>')
    return ('<table id="decisions"><thead><tr><th>decision</th><th>action</th><th>what</th><th>who</th><th>when</th><th>why</th>'
            f'<th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def decisions_page(state: ReviewState, who: str) -> str:
    undone = {d.undoes for d in state.decisions if d.action == "undo"}
    decisions = [{**d.as_json(), "undone": d.decision_id in undone} for d in reversed(state.decisions)]
    body = (f'<h2>Decision log <span class="muted">({len(decisions):,}; {_e(state.log.path)})</span></h2>'
            f"{_decision_table(decisions)}")
    return _layout("Decisions", body, state, who)


def message_page(state: ReviewState, who: str, title: str, text: str) -> str:
    return _layout(title, f"<h2>{_e(title)}</h2><p>{_e(text)}</p>", state, who)
