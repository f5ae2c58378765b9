// The rmicro dashboard. Everything shown goes through textContent (never innerHTML), so a
// name or a value from the registry is text, whatever it holds; the page's Content Security
// Policy refuses inline scripts as well.
"use strict";

const $ = (id) => document.getElementById(id);
let services = [];
let selected = null;
let tail = null;

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

// A type's shape as the registry describes it: `Student {name string, grade int32}`.
function shape(v, depth = 0) {
  if (!v) return "-";
  if (!v.values || v.values.length === 0 || depth > 3) return v.type;
  return v.type + " {" + v.values.map((f) => f.name + " " + shape(f, depth + 1)).join(", ") + "}";
}

async function json(url, init) {
  const rsp = await fetch(url, init);
  const text = await rsp.text();
  let body;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  return { ok: rsp.ok, status: rsp.status, body };
}

// The services, one entry per name (versions merged).
async function refresh() {
  const { ok, body } = await json("/api/services");
  if (!ok) return;
  services = body;
  const byName = new Map();
  for (const s of services) {
    const n = byName.get(s.name) || { name: s.name, nodes: 0 };
    n.nodes += (s.nodes || []).length;
    byName.set(s.name, n);
  }
  const list = $("services");
  list.replaceChildren();
  for (const s of [...byName.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    const li = el("li", null, { "data-service": s.name });
    li.append(el("span", s.name), el("span", s.nodes + (s.nodes === 1 ? " node" : " nodes"), { class: "count" }));
    if (s.name === selected) li.classList.add("selected");
    li.addEventListener("click", () => select(s.name));
    list.append(li);
  }
  $("no-services").hidden = byName.size > 0;
  if (selected && !byName.has(selected)) {
    selected = null;
  }
  renderDetail();
}

function select(name) {
  selected = name;
  for (const li of $("services").children) {
    li.classList.toggle("selected", li.dataset.service === name);
  }
  renderDetail();
  probe();
}

function records() {
  return services.filter((s) => s.name === selected);
}

function renderDetail() {
  const recs = records();
  $("detail").hidden = recs.length === 0;
  $("pick").hidden = recs.length > 0;
  if (recs.length === 0) return;
  $("detail-name").textContent = selected + " (" + recs.map((r) => r.version).join(", ") + ")";
  const body = $("nodes").tBodies[0];
  const known = new Map([...body.rows].map((r) => [r.dataset.node, r]));
  body.replaceChildren();
  for (const r of recs) {
    for (const n of r.nodes || []) {
      const old = known.get(n.id);
      const row = el("tr", null, { "data-node": n.id });
      const md = Object.entries(n.metadata || {}).map(([k, v]) => k + "=" + v).join(", ");
      row.append(
        el("td", n.id), el("td", n.address),
        old ? old.cells[2].cloneNode(true) : el("td", "…", { class: "health" }),
        old ? old.cells[3].cloneNode(true) : el("td", "-"),
        old ? old.cells[4].cloneNode(true) : el("td", "-"),
        el("td", md),
      );
      body.append(row);
    }
  }
  const select = $("endpoint");
  const current = select.value;
  select.replaceChildren();
  for (const r of recs) {
    for (const e of r.endpoints || []) {
      if (e.metadata && e.metadata.subscriber === "true") continue;
      const o = el("option", e.name, { value: e.name });
      o.dataset.request = shape(e.request);
      o.dataset.response = shape(e.response);
      select.append(o);
    }
  }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
  showShape();
}

function showShape() {
  const o = $("endpoint").selectedOptions[0];
  $("shape").textContent = o ? o.dataset.request + " → " + o.dataset.response : "";
}

// Health and a few metrics of the selected service's nodes.
async function probe() {
  if (!selected) return;
  const name = selected;
  const [health, metrics] = await Promise.all([
    json("/api/health/" + encodeURIComponent(name)),
    json("/api/metrics/" + encodeURIComponent(name)),
  ]);
  if (name !== selected) return;
  for (const row of $("nodes").tBodies[0].rows) {
    const h = (health.ok ? health.body : []).find((x) => x.node === row.dataset.node);
    if (h) {
      row.cells[2].textContent = h.ready ? "ready" : "not ready: " + h.detail;
      row.cells[2].className = h.ready ? "ready" : "down";
      row.cells[2].title = h.detail;
    }
    const m = (metrics.ok ? metrics.body : []).find((x) => x.node === row.dataset.node);
    if (m) {
      row.cells[3].textContent = m.requests === null ? "-" : String(m.requests);
      row.cells[4].textContent = m.in_flight === null ? "-" : String(m.in_flight);
    }
  }
}

async function call(ev) {
  ev.preventDefault();
  const out = $("call-result");
  const endpoint = $("endpoint").value;
  if (!selected || !endpoint) return;
  out.textContent = "calling " + selected + " " + endpoint + " …";
  out.className = "";
  const { ok, status, body } = await json(
    "/api/call/" + encodeURIComponent(selected) + "/" + encodeURIComponent(endpoint),
    { method: "POST", headers: { "Content-Type": "application/json" }, body: $("request").value },
  );
  out.textContent = (ok ? "" : "HTTP " + status + "\n") + (typeof body === "string" ? body : JSON.stringify(body, null, 2));
  out.className = ok ? "ok" : "error";
}

function startTail(ev) {
  ev.preventDefault();
  const topic = $("topic").value.trim();
  if (!topic) return;
  if (tail) tail.close();
  $("messages").replaceChildren();
  tail = new EventSource("/api/tail/" + encodeURIComponent(topic));
  tail.onmessage = (m) => {
    const list = $("messages");
    list.append(el("li", m.data));
    while (list.children.length > 200) list.firstChild.remove();
  };
}

function watch() {
  const events = new EventSource("/events");
  events.onopen = () => { $("live").textContent = "live"; $("live").className = "badge up"; };
  events.onerror = () => { $("live").textContent = "reconnecting"; $("live").className = "badge"; };
  events.onmessage = (m) => {
    let c;
    try { c = JSON.parse(m.data); } catch (_) { return; }
    if (c.info) { $("registry").textContent = c.info; return; }
    const list = $("changes");
    const nodes = (c.service.nodes || []).map((n) => n.address).join(", ");
    list.prepend(el("li", new Date().toLocaleTimeString() + "  " + c.action + "  " + c.service.name + "  " + nodes));
    while (list.children.length > 100) list.lastChild.remove();
    refresh();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("call-form").addEventListener("submit", call);
  $("tail-form").addEventListener("submit", startTail);
  $("endpoint").addEventListener("change", showShape);
  watch();
  refresh();
  // The registry's watch says what changed; a slow poll catches what a registry does not
  // announce (a TTL that ran out), and the selected service's health and metrics.
  setInterval(refresh, 5000);
  setInterval(probe, 3000);
});
