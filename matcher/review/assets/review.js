// matcher review: sends the steward's decisions as JSON and follows the entity they lead to.
"use strict";

const whoInput = () => document.querySelector("#who");

function reviewer() {
  const input = whoInput();
  return input ? input.value.trim() : "";
}

function rememberReviewer() {
  const input = whoInput();
  if (!input) return;
  const saved = window.localStorage.getItem("matcherReviewer");
  if (saved) input.value = saved;
  input.addEventListener("change", () => window.localStorage.setItem("matcherReviewer", input.value.trim()));
}

function show(kind, text) {
  const box = document.querySelector("#message");
  box.className = "message " + kind;
  box.textContent = text;
  box.hidden = false;
}

async function send(url, body) {
  if (!body.who) { show("error", "Type your name (top right) first: every decision records who made it."); return; }
  const response = await fetch(url, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), credentials: "same-origin",
  });
  const answer = await response.json();
  if (!response.ok) { show("error", answer.error || ("failed: HTTP " + response.status)); return; }
  window.location.assign("/review/entities/" + encodeURIComponent(answer.goto).replace(/%3A/g, ":") + "?done=" + encodeURIComponent(answer.decision.decision_id));
}

function entity() {
  const page = document.querySelector("[data-match-id]");
  return page ? {match_id: page.dataset.matchId, version: page.dataset.version} : {};
}

function why() {
  const input = document.querySelector("input[name=why]");
  return input ? input.value.trim() : "";
}

function decide(action, extra) {
  return send("/review/api/decisions", Object.assign({action: action, who: reviewer(), why: why()}, entity(), extra || {}));
}

function selected() {
  return Array.from(document.querySelectorAll("input.pick:checked")).map((box) => box.value);
}

document.addEventListener("DOMContentLoaded", () => {
  rememberReviewer();
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-do]");
    if (!button) return;
    event.preventDefault();
    const what = button.dataset.do;
    if (what === "confirm") decide("confirm");
    else if (what === "split") {
      const moved = selected();
      if (!moved.length) { show("error", "Tick the records to move out of this entity first."); return; }
      decide("split", {moved: moved});
    } else if (what === "merge") {
      const other = button.dataset.other || document.querySelector("input[name=other]").value.trim();
      if (!other) { show("error", "Name the entity to merge with (its match_id)."); return; }
      decide("merge", {other_match_id: other});
    } else if (what === "match" || what === "not_match") {
      decide(what, {records: [button.dataset.left, button.dataset.right]});
    } else if (what === "undo") {
      send("/review/api/decisions/" + encodeURIComponent(button.dataset.decision) + "/undo", {who: reviewer(), why: why()});
    }
  });
});
