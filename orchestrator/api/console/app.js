// orch's console: pages over orch serve's API (/v1), with the session
// cookie the login page set. Plain script, no build step, nothing from
// another host; every value from the API goes into the page as text.
"use strict";

const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let csrf = "";
let generation = 0; // bumped by each page: its timers and polls stop

// api calls the API; a change carries the session's CSRF token.
async function api(path, opts = {}) {
  const o = { credentials: "same-origin", headers: { Accept: "application/json" }, method: opts.method || "GET" };
  if (opts.body !== undefined) {
    o.headers["Content-Type"] = "application/json";
    o.body = JSON.stringify(opts.body);
  }
  if (o.method !== "GET") o.headers["X-Orch-CSRF"] = csrf;
  const r = await fetch(path, o);
  if (r.status === 401) {
    location.href = "/login";
    throw new Error("logged out");
  }
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

// h builds an element: attributes (on* are listeners) and children (text
// or nodes). Text is always text.
function h(tag, attrs, ...children) {
  const ns = ["svg", "g", "rect", "line", "text", "polyline", "path", "title", "circle"].includes(tag) ? "http://www.w3.org/2000/svg" : null;
  const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function say(text) { statusLine.textContent = text; }

function show(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function when(t) {
  if (!t) return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
  return d.toLocaleTimeString([], { hour12: false });
}

function table(caption, head, rows) {
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))
      : h("tr", {}, h("td", { colspan: head.length }, "none"))));
}

function statusBadge(s) {
  return h("span", { class: "badge " + s, "data-status": s }, s);
}

// every runs fn now and each ms while its page is shown.
function every(ms, fn) {
  const g = generation;
  const tick = async () => {
    if (g !== generation) return;
    try { await fn(); } catch (e) { say(e.message); }
    if (g === generation) setTimeout(tick, ms);
  };
  tick();
}

// --- Deployments --------------------------------------------------------

async function deploymentsPage() {
  document.title = "orch: deployments";
  const section = h("section", { "aria-labelledby": "h-deps" }, h("h1", { id: "h-deps" }, "Deployments"));
  show(section);
  every(3000, async () => {
    const [deps, pols] = await Promise.all([api("/v1/deployments"), api("/v1/policies")]);
    const count = {};
    for (const p of pols) count[p.deployment] = (count[p.deployment] || 0) + 1;
    const rows = deps.map((d) => [
      h("a", { href: "#/d/" + encodeURIComponent(d.id) }, d.id),
      d.broken ? h("span", { class: "badge failed" }, "broken") : h("span", { class: "badge succeeded" }, "ok"),
      String(count[d.id] || 0),
      d.blueprint || "",
      when(d.created_at),
    ]);
    const broken = deps.filter((d) => d.broken).map((d) =>
      h("div", { class: "diagnostics" }, h("h2", {}, d.id + ": its policies do not run"), h("pre", {}, d.broken)));
    section.replaceChildren(h("h1", { id: "h-deps" }, "Deployments"),
      table("Every deployment of this orch serve", ["Deployment", "Status", "Policies", "Blueprint", "Created"], rows), ...broken);
  });
}

// --- A deployment ---------------------------------------------------------

// topology lays the nodes out in columns, each after what it depends on
// (its host, its relationships' targets), with its instances and their
// state written in the box, and draws the relationships by kind (the line
// style and a label, so no colour is needed).
function topology(d) {
  const insts = Object.values(d.instances || {});
  const nodes = new Set(Object.keys(d.properties || {}));
  for (const i of insts) nodes.add(i.node);
  const edges = new Map(); // "from\0to" -> kinds
  const byID = Object.fromEntries(insts.map((i) => [i.id, i]));
  const edge = (from, to, kind) => {
    if (!to || from === to) return;
    const k = from + "\0" + to;
    if (!edges.has(k)) edges.set(k, new Set());
    edges.get(k).add(kind);
  };
  for (const i of insts) {
    if (i.host && byID[i.host]) edge(i.node, byID[i.host].node, "contained in");
    for (const l of i.relationships || []) {
      const kind = /ContainedIn$/.test(l.type || "") ? "contained in" : (l.type || "").replace(/^.*\./, "");
      if (byID[l.target]) edge(i.node, byID[l.target].node, kind);
    }
  }
  const out = {};
  for (const k of edges.keys()) {
    const [from, to] = k.split("\0");
    (out[from] = out[from] || []).push(to);
  }
  const depth = {};
  const depthOf = (n, seen = new Set()) => {
    if (depth[n] !== undefined) return depth[n];
    if (seen.has(n)) return 0;
    seen.add(n);
    let dd = 0;
    for (const t of out[n] || []) dd = Math.max(dd, depthOf(t, seen) + 1);
    return (depth[n] = dd);
  };
  const names = [...nodes].sort();
  names.forEach((n) => depthOf(n));
  const cols = {};
  for (const n of names) (cols[depth[n]] = cols[depth[n]] || []).push(n);
  const W = 230, GAP = 130, LINE = 20;
  const pos = {};
  let height = 0;
  for (const [c, list] of Object.entries(cols)) {
    let y = 10;
    for (const n of list) {
      const own = insts.filter((i) => i.node === n).sort((a, b) => (a.index || 0) - (b.index || 0));
      const hgt = 34 + LINE * Math.max(own.length, 1);
      pos[n] = { x: 10 + Number(c) * (W + GAP), y, h: hgt, own };
      y += hgt + 24;
    }
    height = Math.max(height, y);
  }
  const width = 20 + (Object.keys(cols).length) * (W + GAP) - GAP;
  const svg = h("svg", { viewBox: `0 0 ${width} ${height}`, class: "topology", role: "img", "aria-labelledby": "topo-title" },
    h("title", { id: "topo-title" }, `Topology of ${d.id}: ${names.length} nodes, ${insts.length} instances`));
  for (const [k, kinds] of edges) {
    const [from, to] = k.split("\0");
    const a = pos[from], b = pos[to];
    const x1 = a.x, y1 = a.y + 17, x2 = b.x + W, y2 = b.y + 17;
    const label = [...kinds].join(", ");
    const style = kinds.has("contained in") ? "contained" : /connect/i.test(label) ? "connected" : "depends";
    svg.append(h("g", { class: "edge " + style, "data-from": from, "data-to": to },
      h("line", { x1, y1, x2, y2 }),
      h("path", { d: `M${x2} ${y2} l8 -4 v8 z`, class: "arrow" }),
      h("text", { x: x2 + 12, y: y2 - 6 }, label)));
  }
  for (const n of names) {
    const p = pos[n];
    const g = h("g", { class: "node", tabindex: "0", role: "group", "data-node": n,
      "aria-label": `node ${n}: ${p.own.length} instance${p.own.length === 1 ? "" : "s"}` },
    h("rect", { x: p.x, y: p.y, width: W, height: p.h, rx: 4 }),
    h("text", { x: p.x + 8, y: p.y + 20, class: "name" }, n));
    p.own.forEach((i, k) => g.append(h("text", { x: p.x + 12, y: p.y + 40 + k * LINE, class: "instance " + i.state, "data-instance": i.id },
      `${i.id}: ${i.state || "(no state)"}`)));
    if (!p.own.length) g.append(h("text", { x: p.x + 12, y: p.y + 40, class: "instance" }, "no instances"));
    svg.append(g);
  }
  return h("figure", {}, svg, h("figcaption", {}, "Lines: solid, contained in; dashed, connected to; dotted, depends on. Each instance with its state."));
}

function workflowForm(dep, w) {
  const fields = (w.parameters || []).map((p) => {
    p.required = p.default === undefined; // no default: it must be given
    const id = `wf-${w.name}-${p.name}`;
    const type = /number/.test(p.type) ? "number" : /bool/.test(p.type) ? "checkbox" : "text";
    const input = h("input", { id, name: p.name, type, step: type === "number" ? "any" : undefined,
      placeholder: p.default !== undefined ? (typeof p.default === "string" ? p.default : JSON.stringify(p.default)) : (p.required ? "required" : ""),
      required: p.required && type !== "checkbox" });
    return h("div", { class: "field" }, h("label", { for: id }, `${p.name} (${p.type}${p.required ? ", required" : ""})`), input,
      p.description ? h("small", {}, p.description) : null);
  });
  const dry = h("input", { type: "checkbox", id: `wf-${w.name}-dry`, name: "__dry" });
  const form = h("form", { class: "workflow", "data-workflow": w.name, "aria-label": "run workflow " + w.name },
    h("h3", {}, w.name, " ", h("small", {}, w.uses)), ...fields,
    h("div", { class: "field inline" }, dry, h("label", { for: `wf-${w.name}-dry` }, "dry run (plan only, change nothing)")),
    h("button", { type: "submit" }, "Run " + w.name));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const params = {};
    for (const p of w.parameters || []) {
      const el = form.elements[p.name];
      if (el.type === "checkbox") { if (el.checked) params[p.name] = "true"; } else if (el.value !== "") params[p.name] = el.value;
    }
    try {
      const x = await api("/v1/executions", { method: "POST", body: { Deployment: dep, Workflow: w.name, Parameters: params, DryRun: dry.checked } });
      location.hash = "#/x/" + encodeURIComponent(x.id);
    } catch (e) { say("Could not run " + w.name + ": " + e.message); }
  });
  return form;
}

async function deploymentPage(id) {
  document.title = "orch: " + id;
  const [d, wfs] = await Promise.all([api("/v1/deployments/" + encodeURIComponent(id)), api(`/v1/deployments/${encodeURIComponent(id)}/workflows`)]);
  const execs = h("div", {});
  const pols = h("div", {});
  const topo = h("div", {});
  show(h("h1", {}, "Deployment ", d.id),
    d.broken ? h("div", { class: "diagnostics", role: "alert" }, h("h2", {}, "Its policies do not run"), h("pre", {}, d.broken)) : null,
    h("section", { "aria-labelledby": "h-topo" }, h("h2", { id: "h-topo" }, "Topology"), topo),
    h("section", { "aria-labelledby": "h-io" }, h("h2", { id: "h-io" }, "Inputs and outputs"),
      table("Inputs", ["Input", "Value", ""], (d.input_list || []).map((i) => [i.name, i.sensitive ? "(sensitive)" : JSON.stringify(i.value), i.default ? "default" : ""])),
      table("Outputs", ["Output", "Value"], Object.entries(d.outputs || {}).map(([k, v]) => [k, JSON.stringify(v)]))),
    h("section", { "aria-labelledby": "h-pol" }, h("h2", { id: "h-pol" }, "Policies"), pols),
    h("section", { "aria-labelledby": "h-wf" }, h("h2", { id: "h-wf" }, "Workflows"), ...wfs.map((w) => workflowForm(d.id, w))),
    h("section", { "aria-labelledby": "h-x" }, h("h2", { id: "h-x" }, "Executions"), execs));
  every(3000, async () => {
    const [dd, xs, ps] = await Promise.all([api("/v1/deployments/" + encodeURIComponent(id)),
      api("/v1/executions?deployment=" + encodeURIComponent(id)), api("/v1/policies?deployment=" + encodeURIComponent(id))]);
    topo.replaceChildren(topology(dd), table("Instances", ["Instance", "Node", "State", "Contained in"],
      Object.values(dd.instances || {}).sort((a, b) => a.id.localeCompare(b.id)).map((i) => [i.id, i.node, i.state || "", i.host || ""])));
    xs.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
    execs.replaceChildren(table("Executions, newest first", ["Execution", "Workflow", "Status", "Created"],
      xs.slice(0, 50).map((x) => [h("a", { href: "#/x/" + encodeURIComponent(x.id) }, x.id), x.workflow, statusBadge(x.status), when(x.created_at)])));
    pols.replaceChildren(table("Policies", ["Policy", "Type", "State"], ps.map((p) => [
      h("a", { href: `#/p/${encodeURIComponent(p.deployment)}/${encodeURIComponent(p.name)}` }, p.name), p.type,
      p.paused ? "paused" : p.missing_since ? "data missing" : p.error ? "error: " + p.error : "evaluating"])));
  });
}

// --- An execution ---------------------------------------------------------

async function executionPage(id) {
  document.title = "orch: execution " + id;
  const g = generation;
  const list = h("ol", { class: "events", "aria-live": "polite" });
  const head = h("div", {});
  const buttons = h("div", { class: "actions" },
    h("button", { type: "button", onclick: async () => { try { await api(`/v1/executions/${id}/cancel`, { method: "POST" }); } catch (e) { say(e.message); } } }, "Cancel"),
    h("button", { type: "button", onclick: async () => { try { await api(`/v1/executions/${id}/resume`, { method: "POST" }); poll(); } catch (e) { say(e.message); } } }, "Resume"));
  show(h("h1", {}, "Execution ", id), head, buttons, h("h2", {}, "Events"), list);
  let after = 0;
  let polling = false;
  const render = (x) => head.replaceChildren(h("p", {}, h("a", { href: "#/d/" + encodeURIComponent(x.deployment) }, x.deployment), ": ",
    x.workflow, " ", statusBadge(x.status), x.dry_run ? " (dry run)" : "", x.error ? h("span", { class: "error" }, " " + x.error) : ""));
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      while (g === generation) {
        const page = await api(`/v1/executions/${encodeURIComponent(id)}/events?after=${after}&wait=20s`);
        render(page.execution);
        for (const ev of page.events) {
          after = Math.max(after, ev.seq || 0);
          list.append(h("li", { class: "event " + ev.level, "data-type": ev.type },
            h("time", {}, when(ev.time)), " ", h("span", { class: "level" }, ev.level), " ",
            [ev.node, ev.instance, ev.operation, ev.step].filter(Boolean).join(" "), " ", ev.message));
        }
        if (page.events.length === 0 && ["succeeded", "failed", "cancelled"].includes(page.execution.status)) break;
      }
    } catch (e) { say(e.message); } finally { polling = false; }
  };
  poll();
}

// --- A policy -------------------------------------------------------------

function decisionWords(d) {
  let what;
  if (d.fired && d.error) what = `fired, but ${d.workflow} could not be queued: ${d.error}`;
  else if (d.fired && d.execution) what = `fired: queued ${d.workflow} as execution ${d.execution}`;
  else if (d.fired && d.workflow) what = `fired: ${d.workflow} recorded (dry run)`;
  else if (d.fired) what = "held (no trigger names this condition)";
  else if (d.reason === "cooldown") what = `held back by the cooldown, ${Math.round(d.cooldown_left || 0)}s left`;
  else if (d.reason === "paused") what = "held back: the policy is paused";
  else if (d.reason === "grace") what = `held back by the start-up grace, ${Math.round(d.grace_left || 0)}s left`;
  else if (d.reason === "execution-queued") what = `held back: ${d.workflow} already waits to run as execution ${d.execution}`;
  else if (d.reason === "missing-data") what = "data missing: holding, nothing runs";
  else what = "held back: " + d.reason;
  if (d.missing) what += "; data missing: " + d.missing;
  return what;
}

function decisionKind(d) {
  if (d.fired) return "fired";
  if (d.reason === "missing-data" || d.missing) return "missing";
  return "held";
}

// chart draws each window value of the history against the policy's
// numeric parameters (its thresholds), with the decisions marked under
// the time axis: F fired, h held back, m data missing (shape and letter,
// not colour alone).
function chart(p) {
  const W = 720, H = 260, L = 50, R = 150, T = 10, B = 40;
  const hist = p.history || [];
  const labels = [...new Set(hist.flatMap((pt) => Object.keys(pt.v || {})))];
  const params = Object.entries(p.parameters || {});
  const times = hist.map((pt) => pt.t).concat((p.decisions || []).map((d) => d.time));
  const t1 = Math.max(p.time || 0, ...times), t0 = Math.min(t1 - 60, ...times);
  const vals = hist.flatMap((pt) => Object.values(pt.v || {})).concat(params.map(([, v]) => v));
  let v0 = Math.min(0, ...vals), v1 = Math.max(1, ...vals);
  if (v1 === v0) v1 = v0 + 1;
  const x = (t) => L + (W - L - R) * (t - t0) / Math.max(t1 - t0, 1);
  const y = (v) => T + (H - T - B) * (1 - (v - v0) / (v1 - v0));
  const svg = h("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": "chart-title" },
    h("title", { id: "chart-title" }, `${p.name}: ${labels.join(", ") || "no values yet"} over the last ${Math.round(t1 - t0)}s`),
    h("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
    h("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }),
    h("text", { x: L - 4, y: y(v1) + 4, "text-anchor": "end" }, String(+v1.toFixed(2))),
    h("text", { x: L - 4, y: y(v0) + 4, "text-anchor": "end" }, String(+v0.toFixed(2))),
    h("text", { x: L, y: H - 4 }, when(t0)), h("text", { x: W - R, y: H - 4, "text-anchor": "end" }, when(t1)));
  params.forEach(([k, v]) => svg.append(h("g", { class: "threshold", "data-parameter": k },
    h("line", { x1: L, y1: y(v), x2: W - R, y2: y(v) }), h("text", { x: W - R + 4, y: y(v) + 4 }, `${k} = ${v}`))));
  labels.forEach((lab, i) => {
    const pts = hist.filter((pt) => pt.v && pt.v[lab] !== undefined).map((pt) => `${x(pt.t).toFixed(1)},${y(pt.v[lab]).toFixed(1)}`);
    const last = hist.filter((pt) => pt.v && pt.v[lab] !== undefined).slice(-1)[0];
    svg.append(h("g", { class: "series s" + (i % 4), "data-series": lab, "data-points": pts.length },
      h("polyline", { points: pts.join(" ") }),
      last ? h("text", { x: W - R + 4, y: y(last.v[lab]) + 4 + 12 * (i + 1) }, `${lab}: ${+last.v[lab].toFixed(3)}`) : null));
  });
  for (const d of p.decisions || []) {
    const k = decisionKind(d);
    svg.append(h("g", { class: "mark " + k, "data-kind": k },
      h("title", {}, `${when(d.time)} ${d.condition}: ${decisionWords(d)}`),
      h("text", { x: x(d.time), y: H - B + 16, "text-anchor": "middle" }, k === "fired" ? "F" : k === "missing" ? "m" : "h")));
  }
  return h("figure", {}, svg, h("figcaption", {}, "Under the axis: F fired, h held back, m data missing."));
}

async function policyPage(dep, name) {
  document.title = `orch: policy ${name}`;
  const body = h("div", {});
  const reason = h("input", { id: "pause-reason", name: "reason", type: "text" });
  const dur = h("input", { id: "pause-for", name: "for", type: "text", placeholder: "30m (empty: until resumed)" });
  const pauseForm = h("form", { class: "pause", "aria-label": "pause the policy" },
    h("div", { class: "field" }, h("label", { for: "pause-for" }, "Pause for"), dur),
    h("div", { class: "field" }, h("label", { for: "pause-reason" }, "Reason"), reason),
    h("button", { type: "submit" }, "Pause"),
    h("button", { type: "button", id: "resume", onclick: async () => {
      try { await api(`/v1/policies/${encodeURIComponent(dep)}/resume`, { method: "POST", body: { policy: name } }); say("resumed"); } catch (e) { say(e.message); }
    } }, "Resume"));
  pauseForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const now = Date.now() / 1000;
    const pause = { by: "console", reason: reason.value, since: now };
    if (dur.value) {
      const m = /^(\d+(?:\.\d+)?)(s|m|h)$/.exec(dur.value.trim());
      if (!m) { say("Pause for: a number with s, m or h, such as 30m"); return; }
      pause.until = now + Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2]];
    }
    try { await api(`/v1/policies/${encodeURIComponent(dep)}/pause`, { method: "POST", body: { policy: name, pause } }); say("paused"); } catch (e) { say(e.message); }
  });
  show(h("h1", {}, "Policy ", name, " ", h("small", {}, "of ", h("a", { href: "#/d/" + encodeURIComponent(dep) }, dep))), body,
    h("section", { "aria-labelledby": "h-pause" }, h("h2", { id: "h-pause" }, "Pause"), pauseForm));
  every(2000, async () => {
    const ps = await api("/v1/policies?deployment=" + encodeURIComponent(dep));
    const p = ps.find((q) => q.name === name);
    if (!p) { body.replaceChildren(h("p", {}, "No such policy.")); return; }
    const state = p.paused ? `paused${p.paused.reason ? " (" + p.paused.reason + ")" : ""}${p.paused.until ? " until " + when(p.paused.until) : ""}`
      : p.missing_since ? "data missing since " + when(p.missing_since) : "evaluating";
    body.replaceChildren(
      h("p", { class: "state", "data-state": p.paused ? "paused" : p.missing_since ? "missing" : "evaluating" }, p.type, ": ", state),
      chart(p),
      table("Conditions now", ["Condition", "Known", "Holds", "Values", "Cooldown left"], (p.conditions || []).map((c) => [
        c.name, c.known ? "yes" : "no (data missing)", c.holds ? "yes" : "no",
        Object.entries(c.values || {}).map(([k, v]) => `${k} = ${+v.toFixed(3)}`).join(", "), c.cooldown_left ? Math.round(c.cooldown_left) + "s" : ""])),
      h("h2", {}, "Decisions, latest last"),
      h("ol", { class: "decisions" }, (p.decisions || []).map((d) => h("li", { "data-kind": decisionKind(d), "data-reason": d.reason || "" },
        h("time", {}, when(d.time)), ` ${d.condition}: ${decisionWords(d)}`))));
  });
}

// --- Routing --------------------------------------------------------------

async function route() {
  generation++;
  say("");
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "d" && parts[1]) await deploymentPage(parts[1]);
    else if (parts[0] === "x" && parts[1]) await executionPage(parts[1]);
    else if (parts[0] === "p" && parts[1] && parts[2]) await policyPage(parts[1], parts[2]);
    else await deploymentsPage();
  } catch (e) {
    show(h("h1", {}, "Not shown"), h("p", { class: "error" }, e.message));
  }
  main.focus();
}

document.getElementById("logout").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await api("/logout", { method: "POST" }); } catch (e) { /* logged out either way */ }
  location.href = "/login";
});

(async () => {
  try { csrf = (await api("/console/session")).csrf; } catch (e) { say(e.message); }
  window.addEventListener("hashchange", route);
  route();
})();
