// sidecar's console: the cluster as the node serving this page sees it,
// kept live for an operator who leaves it open.
//
// Sources: /api/watch?by_service=false (the whole catalog, pushed on every
// change), and every POLL_MS /api/members.json, /api/checks.json (this
// node's own checks), /api/haproxy.json and /api/health.  Any of them
// changing redraws the open tab; ages tick every second without a redraw.
// Problems (from /api/health and from what the page sees) stay on top.
"use strict";

const STATUS = ["Alive", "Tombstone", "Unhealthy", "Unknown", "Draining"];
const LIVE = ["Alive", "Unhealthy", "Unknown", "Draining"];
// Polled every second, or every half of the shortest check interval
// (not under MIN_POLL_MS), so a check result shows within one interval.
const POLL_MS = 1000;
const MIN_POLL_MS = 250;
const RECONNECT_MS = 2000;
// The catalog, pushed on every change (index.html asks for it first).
const WATCH = "/api/watch?by_service=false";
// A filtered list this short shows every service's instances unasked.
const EXPAND_UP_TO = 25;
// The page's first draw of the Services tab is this many rows (more than
// a screen holds); all of them follow in the next frame.
const FIRST_ROWS = 60;
const MAX_EVENTS = 500;
const MAX_PROBLEMS = 10;
// The Hosts tab is a grid up to this many hosts and services.
const MATRIX_HOSTS = 30;
const MATRIX_SERVICES = 60;

const data = {
  state: null,      // /api/watch?by_service=false's newest document
  members: null,    // /api/members.json
  checks: {},       // /api/checks.json's Checks, by service ID
  proxy: null,      // /api/haproxy.json
  health: null,     // /api/health's body (an error body when not 200)
  healthCode: null,
  polledAt: null,
};
// What the page has seen, to tell changes from the snapshot it loaded.
const seen = {
  instances: null,  // "host/id" -> status; null until the first document
  members: null,    // name -> {member, since, forgotten}; null until first poll
};
const events = [];
const view = {
  tab: "services",
  filter: [],
  onlyProblems: false,
  expanded: new Set(),
  more: false,
};
// Read by tests/test_ui.py and bench/ui.py.
const stats = window.sidecarConsole = {
  firstDocument: null, // ms from navigation start to the catalog received
  firstRender: null,   // ms from navigation start to the catalog on screen
  firstRenderMs: null, // how long that render took (a screenful of Services)
  wholeRender: null,   // ms from navigation start to every row drawn
  lastRenderMs: null,
  renders: 0,
};

// -- formatting ---------------------------------------------------------

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, c => ESCAPES[c]);
}

function ago(milliseconds) {
  const s = Math.max(0, milliseconds / 1000);
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}

// A time that the ticker keeps saying "how long ago" of.
function when(iso, prefix = "") {
  if (!iso) return "";
  const t = Date.parse(iso);
  // Go's zero time (year 1) means never.
  if (Number.isNaN(t) || t <= 0) return "";
  return `<time data-t="${t}" data-prefix="${esc(prefix)}" title="${esc(new Date(t).toISOString())}">`
    + `${esc(prefix)}${ago(Date.now() - t)}</time>`;
}

function tick() {
  const now = Date.now();
  for (const node of document.querySelectorAll("time[data-t]")) {
    node.textContent = node.dataset.prefix + ago(now - Number(node.dataset.t));
  }
  const fresh = document.getElementById("freshness");
  if (data.polledAt) fresh.textContent = `polled ${ago(now - data.polledAt)} ago`;
}

// HH:MM:SS, local time.
function clock(time) {
  return new Date(time).toTimeString().slice(0, 8);
}

function portText(p) {
  return `${p.IP}:${p.Port}` + (p.ServicePort ? ` → ${p.ServicePort}` : "");
}

function version(image) {
  const at = String(image || "").lastIndexOf(":");
  return at > String(image).lastIndexOf("/") ? image.slice(at + 1) : image || "";
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// -- the model: everything the tabs show, from the sources --------------

function build() {
  const state = data.state || { Servers: {} };
  const proxyOn = Boolean(data.proxy && data.proxy.Enabled);
  // Every address:port HAProxy routes to, by service name.
  const routes = new Map();
  for (const f of proxyOn ? data.proxy.Frontends || [] : []) {
    const set = routes.get(f.Service) || new Set();
    for (const server of f.Servers || []) set.add(server.split(" ")[1]);
    routes.set(f.Service, set);
  }
  const services = new Map();
  const hosts = new Map();
  const claims = new Map(); // ServicePort -> Set of names
  for (const [hostName, server] of Object.entries(state.Servers || {})) {
    const host = { name: hostName, instances: [], live: 0, bad: 0, updated: server.LastUpdated };
    hosts.set(hostName, host);
    for (const s of Object.values(server.Services || {})) {
      const status = STATUS[s.Status] || "Unknown";
      let service = services.get(s.Name);
      if (!service) {
        service = {
          name: s.Name, instances: [], counts: {}, live: 0, routable: 0,
          ports: new Set(), versions: new Set(), hosts: new Set(),
          changed: null, conflicts: new Set(),
        };
        services.set(s.Name, service);
      }
      const routed = routes.get(s.Name);
      const instance = {
        s, status, host: hostName, service,
        routed: Boolean(routed) && status === "Alive" && (s.Ports || []).some(p => p.ServicePort
          && (routed.has(`${p.IP}:${p.Port}`) || routed.has(`${hostName}:${p.Port}`))),
      };
      service.instances.push(instance);
      host.instances.push(instance);
      service.counts[status] = (service.counts[status] || 0) + 1;
      if (!service.changed || s.Updated > service.changed) service.changed = s.Updated;
      if (status === "Tombstone") continue;
      service.live += 1;
      host.live += 1;
      if (status !== "Alive") host.bad += 1;
      if (instance.routed) service.routable += 1;
      service.hosts.add(hostName);
      service.versions.add(version(s.Image));
      for (const p of s.Ports || []) {
        if (!p.ServicePort) continue;
        service.ports.add(p.ServicePort);
        const names = claims.get(p.ServicePort) || new Set();
        names.add(s.Name);
        claims.set(p.ServicePort, names);
      }
    }
  }
  for (const [port, names] of claims) {
    if (names.size < 2) continue;
    for (const name of names) {
      for (const other of names) if (other !== name) services.get(name).conflicts.add(`${other} (${port})`);
    }
  }
  for (const service of services.values()) {
    service.instances.sort((a, b) => (a.host + a.s.ID).localeCompare(b.host + b.s.ID));
    const alive = service.counts.Alive || 0;
    service.severity = service.live === 0 ? "gone"
      : alive === 0 || (proxyOn && service.routable === 0 && service.ports.size) ? "bad"
      : alive < service.live || service.conflicts.size || (proxyOn && service.ports.size && service.routable < alive) ? "warn"
      : "ok";
  }
  const members = memberRows(hosts);
  const model = { state, proxyOn, services, hosts, claims, members };
  model.problems = problems(model);
  return model;
}

// Members as gossip reports them, plus those it has forgotten whose
// services the catalog still holds, and hosts the catalog has that
// were never members in this page's sight.
function memberRows(hosts) {
  const rows = new Map();
  for (const [name, known] of seen.members || []) {
    if (known.forgotten && !hosts.has(name)) continue;
    rows.set(name, { name, ...known });
  }
  for (const name of hosts.keys()) {
    if (!rows.has(name)) rows.set(name, { name, member: null, since: null, forgotten: null });
  }
  for (const row of rows.values()) {
    row.state = row.member ? row.member.State : "unknown";
    row.host = hosts.get(row.name) || null;
  }
  return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
}

function problems(model) {
  const list = [];
  const health = data.health || {};
  if (data.healthCode && data.healthCode !== 200) {
    list.push({ level: "bad", kind: "node", subject: data.state?.Hostname || "this node",
      message: health.message || `/api/health answered ${data.healthCode}` });
  }
  for (const p of Array.isArray(health.Problems) ? health.Problems : []) {
    list.push({ level: "bad", kind: p.Kind, subject: p.Subject, message: p.Message, since: p.Since });
  }
  // health.Warnings are among health.Problems too (kind gossip-unencrypted).
  const reported = new Set(list.map(p => p.subject));
  const add = problem => { if (!reported.has(problem.subject)) list.push(problem); };
  for (const m of model.members) {
    const services = m.host ? m.host.live : 0;
    const holding = services ? `; the catalog still holds ${plural(services, "live instance")} of it` : "";
    if (m.forgotten) {
      add({ level: "bad", kind: "member", subject: m.name, tab: "members",
        message: `${m.state}, and forgotten by gossip${holding}`, since: m.since });
    } else if (m.state === "failed" || m.state === "suspect") {
      add({ level: m.state === "failed" ? "bad" : "warn", kind: "member", subject: m.name, tab: "members",
        message: `${m.state}${holding}`, since: m.since });
    } else if (!m.member && services) {
      add({ level: "warn", kind: "member", subject: m.name, tab: "members",
        message: `not a member this node knows, yet the catalog holds ${plural(services, "live instance")} of it` });
    }
  }
  for (const s of model.services.values()) {
    if (s.severity !== "bad") continue;
    const alive = s.counts.Alive || 0;
    const message = alive === 0
      ? `0 of ${plural(s.live, "instance")} alive (${countsText(s.counts)})`
      : `0 routable through this node's HAProxy, though ${alive} alive`;
    add({ level: "bad", kind: "service", subject: s.name, message, tab: "services" });
  }
  for (const [port, names] of model.claims) {
    if (names.size > 1) {
      add({ level: "bad", kind: "conflict", subject: `ServicePort ${port}`, tab: "services",
        filter: String(port), message: `claimed by ${[...names].sort().join(" and ")}` });
    }
  }
  const proxy = model.proxyOn ? data.proxy : null;
  if (proxy && proxy.LastError) {
    add({ level: "bad", kind: "haproxy", subject: "HAProxy", tab: "haproxy", message: proxy.LastError });
  }
  if (proxy && proxy.Managed && proxy.Running === false) {
    add({ level: "bad", kind: "haproxy", subject: "HAProxy process", tab: "haproxy", message: "not running" });
  }
  if (proxy && (proxy.Refused || []).length) {
    add({ level: "warn", kind: "haproxy", subject: "HAProxy refused", tab: "haproxy",
      message: `${plural(proxy.Refused.length, "record")} left out: ${proxy.Refused[0]}`
        + (proxy.Refused.length > 1 ? " …" : "") });
  }
  const rank = { bad: 0, warn: 1 };
  return list.sort((a, b) => rank[a.level] - rank[b.level]);
}

function countsText(counts) {
  return LIVE.filter(s => counts[s]).map(s => `${counts[s]} ${s.toLowerCase()}`).join(", ") || "none";
}

// -- filtering ------------------------------------------------------------

function matches(...texts) {
  if (!view.filter.length) return true;
  const haystack = texts.join(" ").toLowerCase();
  return view.filter.every(word => haystack.includes(word));
}

function instanceText(i) {
  return [i.s.ID, i.host, i.s.Image, i.status, ...(i.s.Ports || []).map(portText)].join(" ");
}

// The services to show, each with the instances to show.
function shownServices(model) {
  const shown = [];
  for (const name of [...model.services.keys()].sort()) {
    const service = model.services.get(name);
    if (view.onlyProblems && service.severity === "ok") continue;
    if (service.severity === "gone" && !view.filter.length && view.onlyProblems) continue;
    const all = matches(name, [...service.ports].join(" "));
    const instances = all ? service.instances : service.instances.filter(i => matches(name, instanceText(i)));
    if (all || instances.length) shown.push({ service, instances });
  }
  return shown;
}

// -- rendering ------------------------------------------------------------

function statusPill(status) {
  return `<span class="pill ${status}">${status}</span>`;
}

function statusBar(counts) {
  const total = LIVE.reduce((n, s) => n + (counts[s] || 0), 0);
  if (!total) return `<span class="dim">no live instance</span>`;
  return `<span class="bar">` + LIVE.filter(s => counts[s]).map(s =>
    `<i class="${s}" style="width:${(100 * counts[s]) / total}%"></i>`).join("") + `</span>`;
}

function countPills(counts) {
  return LIVE.filter(s => counts[s]).map(s =>
    `<span class="n ${s}" title="${s}">${counts[s]} ${s.toLowerCase()}</span>`).join(" ")
    + (counts.Tombstone ? ` <span class="n Tombstone" title="tombstones">${counts.Tombstone} gone</span>` : "");
}

function checkCell(i, local) {
  if (!local) return `<td class="check remote" title="checked by ${esc(i.host)}'s node">—</td>`;
  const c = data.checks[i.s.ID];
  if (!c) return `<td class="check"><span class="result"></span></td>`;
  const result = c.LastError || c.LastResult || c.Status;
  const held = c.Suppressed ? ` <span class="held" title="flap damping holds it Unhealthy">held</span>` : "";
  return `<td class="check ${c.LastError ? "failing" : ""}" title="${esc(c.Check.Type)} ${esc(c.Check.Rendered || c.Check.Args)}">`
    + `<span class="result" title="${esc(result)}">${esc(result)}</span>${held}`
    + (c.LastChecked ? ` <span class="dim">${when(c.LastChecked)}</span>` : "") + `</td>`;
}

function drainButton(i, local) {
  if (i.status === "Tombstone") return "";
  const undrain = i.status === "Draining";
  const title = local ? (undrain ? "publish it with its checked status again" : "take it out of every proxy")
    : `runs on ${i.host}: its node, not this one, drains it`;
  return `<button class="drain${local ? "" : " remote"}" data-id="${esc(i.s.ID)}" data-host="${esc(i.host)}"`
    + ` data-action="${undrain ? "undrain" : "drain"}" title="${esc(title)}">${undrain ? "Undrain" : "Drain"}</button>`;
}

function instanceRows(instances, model) {
  const here = model.state.Hostname;
  const rows = instances.map(i => {
    const local = i.host === here;
    // HAProxy routes Alive instances only: another not routed is no news.
    const routed = !model.proxyOn || !i.s.Ports?.some(p => p.ServicePort) ? `<span class="dim">—</span>`
      : i.routed ? `<span class="yes" title="HAProxy routes to it">routed</span>`
      : i.status === "Alive" ? `<span class="no" title="see the HAProxy tab's Refused">not routed</span>`
      : `<span class="dim">not routed</span>`;
    return `<tr class="instance ${i.status}" data-id="${esc(i.s.ID)}" data-host="${esc(i.host)}">`
      + `<td class="mono">${esc(i.s.ID)}</td>`
      + `<td>${esc(i.host)}${local ? ` <span class="here">this node</span>` : ""}</td>`
      + `<td class="status">${i.status}</td>`
      + checkCell(i, local)
      + `<td class="mono">${esc((i.s.Ports || []).map(portText).join(", "))}</td>`
      + `<td class="mono" title="${esc(i.s.Image)}">${esc(version(i.s.Image))}</td>`
      + `<td>${when(i.s.Created)}</td><td>${when(i.s.Updated)}</td>`
      + `<td>${routed}</td><td class="act">${drainButton(i, local)}</td></tr>`;
  });
  const cols = ["id", "host", "status", "check", "ports", "version", "age", "age", "routed", "act"];
  return `<table class="instances"><colgroup>${cols.map(c => `<col class="c-${c}">`).join("")}</colgroup><thead><tr><th>ID</th><th>Host</th><th>Status</th><th>Check</th>`
    + `<th>Ports (IP:Port → ServicePort)</th><th>Version</th><th>Created</th><th>Updated</th>`
    + `<th>HAProxy</th><th></th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

// Rows are blocks, not a table: the browser skips laying out those off
// screen (content-visibility), so a thousand cost little more than fifty.
function renderServices(model, most = Infinity) {
  const all = shownServices(model);
  if (!all.length) return empty(model.services.size ? "No service matches." : "The catalog is empty.");
  const open = all.length <= EXPAND_UP_TO;
  const rows = all.slice(0, most).map(({ service: s, instances }) => {
    const expanded = open || view.expanded.has(s.name);
    const alive = s.counts.Alive || 0;
    const routable = !model.proxyOn || !s.ports.size ? `<span class="dim">—</span>`
      : `<b class="${s.routable ? "" : "zero"}">${s.routable}</b><span class="dim"> / ${alive} alive</span>`;
    const conflicts = s.conflicts.size
      ? ` <span class="conflict" title="another service claims the same ServicePort">conflict: ${esc([...s.conflicts].join(", "))}</span>` : "";
    return `<div class="svc sev-${s.severity}" data-name="${esc(s.name)}"><div class="row">`
      + `<span class="twisty">${open ? "" : expanded ? "▾" : "▸"}</span>`
      + `<span class="name">${esc(s.name)}</span>`
      + `<span class="counts">${statusBar(s.counts)} ${countPills(s.counts)}</span>`
      + `<span class="routable">${routable}</span>`
      + `<span class="mono ports" title="${esc([...s.conflicts].join(", "))}">${[...s.ports].sort((a, b) => a - b).join(", ") || `<span class="dim">none</span>`}${conflicts}</span>`
      + `<span class="mono">${esc([...s.versions].join(", "))}</span>`
      + `<span class="num">${s.hosts.size}</span><span>${when(s.changed)}</span></div>`
      + (expanded ? `<div class="detail">${instanceRows(instances, model)}</div>` : "") + `</div>`;
  });
  return `<div class="services"><div class="row head"><span></span><span>Service</span><span>Instances</span>`
    + `<span title="instances this node's HAProxy routes to">Routable here</span><span>ServicePort</span>`
    + `<span>Versions</span><span class="num">Hosts</span><span>Changed</span></div>${rows.join("")}</div>`;
}

function memberPill(row) {
  if (!row.member) return `<span class="pill member-none">not a member</span>`;
  return `<span class="pill member-${esc(row.state)}">${esc(row.state)}</span>`
    + (row.forgotten ? ` <span class="pill member-forgotten">forgotten</span>` : "");
}

// How long a member has been in its state ("for 3 min"), from the
// node's Since; a forgotten member keeps the one it had last.
function since(row) {
  return row.since ? when(row.since, "for ") : "";
}

// Hosts by services: a grid while it fits on a screen, else one card per
// host with a chip per instance (the same grid, sparse).
function renderHosts(model) {
  const shown = [];
  const byName = new Map(model.members.map(m => [m.name, m]));
  for (const name of [...new Set([...model.hosts.keys(), ...byName.keys()])].sort()) {
    const host = model.hosts.get(name) || { instances: [], live: 0, bad: 0 };
    const member = byName.get(name) || { name, member: null, state: "unknown" };
    const whole = matches(name);
    const instances = host.instances.filter(i => i.status !== "Tombstone"
      && (whole || matches(i.service.name, instanceText(i))));
    const bad = ["failed", "suspect"].includes(member.state) || member.forgotten || host.bad;
    if (view.onlyProblems && !bad) continue;
    if (!whole && !instances.length) continue;
    instances.sort((a, b) => a.service.name.localeCompare(b.service.name));
    shown.push({ name, host, member, instances, bad });
  }
  if (!shown.length) return empty("No host matches.");
  const names = [...new Set(shown.flatMap(h => h.instances.map(i => i.service.name)))].sort();
  if (shown.length <= MATRIX_HOSTS && names.length <= MATRIX_SERVICES) return matrix(shown, names, model);
  return `<p class="dim">${shown.length} hosts × ${names.length} services: filter to at most`
    + ` ${MATRIX_HOSTS} hosts and ${MATRIX_SERVICES} services to see them as a grid.</p>`
    + `<div class="hosts">${shown.map(h => hostCard(h, model)).join("")}</div>`;
}

function hostTitle(h, model) {
  return `<b>${esc(h.name)}</b>${h.name === model.state.Hostname ? ` <span class="here">this node</span>` : ""} ${memberPill(h.member)}`;
}

function instanceMark(i, className) {
  return `<span class="${className} ${i.status}" data-filter="${esc(i.s.ID)}"`
    + ` title="${esc(`${i.service.name} ${i.s.ID} on ${i.host}: ${i.status}`)}">`;
}

function hostCard(h, model) {
  const chips = h.instances.map(i => `${instanceMark(i, "chip")}${esc(i.service.name)}</span>`);
  return `<div class="host${h.bad ? " sev-bad" : ""}" data-host="${esc(h.name)}"><div class="hhead">`
    + `${hostTitle(h, model)}<span class="dim">${plural(h.host.live, "instance")}`
    + `${h.host.bad ? `, <b class="zero">${h.host.bad} not alive</b>` : ""}</span>`
    + `<span class="dim right">${h.host.updated ? when(h.host.updated, "record ") + " ago" : ""}</span></div>`
    + `<div class="chips">${chips.join("") || `<span class="dim">no live instance</span>`}</div></div>`;
}

function matrix(shown, names, model) {
  const head = shown.map(h => `<th class="${h.bad ? "sev-bad" : ""}" data-host="${esc(h.name)}">${hostTitle(h, model)}`
    + `<div class="dim small">${plural(h.host.live, "instance")}${h.host.updated ? `, ${when(h.host.updated, "record ")} ago` : ""}</div></th>`);
  const rows = names.map(name => `<tr data-name="${esc(name)}"><th class="name">${esc(name)}</th>`
    + shown.map(h => `<td>${h.instances.filter(i => i.service.name === name)
      .map(i => `${instanceMark(i, "cell")}${i.status}</span>`).join("")}</td>`).join("") + `</tr>`);
  return `<table class="grid matrix"><thead><tr><th></th>${head.join("")}</tr></thead>`
    + `<tbody>${rows.join("")}</tbody></table>`;
}

function renderMembers(model) {
  const rows = model.members.filter(m => matches(m.name, m.state, m.member ? m.member.Address : ""))
    .filter(m => !view.onlyProblems || m.state !== "alive" || m.forgotten)
    .map(m => {
      const member = m.member || {};
      const skew = typeof member.ClockSkew === "number" ? `${member.ClockSkew.toFixed(3)} s` : "—";
      return `<tr data-name="${esc(m.name)}" class="member-row ${esc(m.state)}">`
        + `<td class="name">${esc(m.name)}${m.name === model.state.Hostname ? ` <span class="here">this node</span>` : ""}</td>`
        + `<td class="state">${memberPill(m)}</td><td class="since">${m.member ? since(m) : ""}</td>`
        + `<td class="mono">${m.member ? esc(`${member.Address}:${member.Port}`) : ""}</td>`
        + `<td class="num">${m.host ? m.host.live : 0}</td><td>${m.host ? when(m.host.updated) : ""}</td>`
        + `<td class="num">${esc(member.Incarnation ?? "")}</td><td class="num">${skew}</td></tr>`;
    });
  if (!rows.length) return empty(data.members ? "No member matches." : "Waiting for /api/members.json…");
  return `<table class="grid members"><thead><tr><th>Name</th><th>State</th><th>For</th><th>Address</th>`
    + `<th>Live instances</th><th>Last record</th><th>Incarnation</th><th>Clock skew</th></tr></thead>`
    + `<tbody>${rows.join("")}</tbody></table>`;
}

function list(id, title, items, className = "") {
  return `<h3>${esc(title)} <span class="count">${items.length}</span></h3>`
    + `<ul id="${id}" class="plain ${className}">`
    + (items.length ? items.map(item => `<li>${esc(item)}</li>`).join("") : `<li class="dim">none</li>`) + `</ul>`;
}

function renderHAProxy(model) {
  const p = data.proxy;
  if (!p) return empty("Waiting for /api/haproxy.json…");
  if (!p.Enabled) return empty("HAProxy is not enabled on this node (haproxy.enabled).");
  const facts = [
    ["Running", p.Managed ? (p.Running ? "yes" : "NO") : "not managed by this node"],
    ["Up to date", p.UpToDate ? "yes" : "no"],
    ["Updates", p.Updates], ["Reloads", p.Reloads], ["Runtime changes", p.RuntimeChanges],
    ["Config file", p.ConfigFile], ["Last error", p.LastError || "none"],
  ].map(([k, v]) => `<dt>${esc(k)}</dt><dd class="${k === "Last error" && p.LastError ? "zero" : ""}">${esc(v)}</dd>`);
  const frontends = (p.Frontends || []).filter(f => matches(f.Service, f.Name, String(f.ServicePort)))
    .map(f => `<tr class="${f.Servers.length ? "" : "sev-bad"}"><td class="name">${esc(f.Service)}</td>`
      + `<td class="mono">${f.ServicePort}</td><td>${esc(f.Mode)}</td><td class="num">${f.Servers.length}</td>`
      + `<td class="mono small">${esc(f.Servers.join(", "))}</td></tr>`);
  return `<div class="columns"><dl class="facts">${facts.join("")}</dl><div>`
    + list("proxy-problems", "Conflicts", p.Conflicts || [], "bad")
    + list("proxy-refused", "Refused (not routed)", p.Refused || [], "warn")
    + list("proxy-draining", "Servers draining", p.ServersDraining || [])
    + list("proxy-kept", "Backends kept (hosts out of sight)", p.KeptBackends || [])
    + `</div></div><h3>Frontends <span class="count">${frontends.length}</span></h3>`
    + `<table class="grid"><thead><tr><th>Service</th><th>ServicePort</th><th>Mode</th><th>Servers</th>`
    + `<th>Server addresses</th></tr></thead><tbody>${frontends.join("")}</tbody></table>`;
}

function renderEvents() {
  const shown = events.filter(e => matches(e.subject, e.text));
  const head = `<p class="dim">Changes this page has seen since it loaded at ${clock(stats.loadedAt)}`
    + ` (instances stamped with their record's Updated time, members with when the node saw them change, a member gossip forgot when this page saw it go); newest first.</p>`;
  if (!shown.length) return head + empty("No change seen yet.");
  return head + `<ol id="changes" class="events">` + shown.map(e =>
    `<li class="${esc(e.level)}"><span class="stamp" title="${esc(e.at)}">${clock(e.at)}</span>`
    + `<b>${esc(e.subject)}</b> ${esc(e.text)}</li>`).join("") + `</ol>`;
}

function empty(text) {
  return `<p class="empty">${esc(text)}</p>`;
}

function renderProblems(model) {
  const root = document.getElementById("problems");
  const all = model.problems;
  if (!all.length) {
    root.className = "clear";
    root.innerHTML = data.state ? `<span class="ok-mark">✓</span> No problems: every service has an alive instance, every member is alive.` : "";
    return;
  }
  root.className = all.some(p => p.level === "bad") ? "bad" : "warn";
  const lines = view.more ? all.map(p => problemLine(p)) : grouped(all);
  const shown = view.more ? lines : lines.slice(0, MAX_PROBLEMS);
  root.innerHTML = `<h2>${plural(all.length, "problem")}</h2><ul>${shown.join("")}</ul>`
    + (view.more || lines.length > shown.length || lines.length < all.length
      ? `<button class="link" id="more-problems">${view.more ? "group them" : `list all ${all.length}`}</button>` : "");
}

function problemLine(p) {
  return `<li class="problem ${p.level}" data-tab="${esc(p.tab || "")}" data-filter="${esc(p.filter || p.subject || "")}">`
    + `<span class="kind">${esc(p.kind)}</span> <b class="subject">${esc(p.subject)}</b> `
    + `<span class="message">${esc(p.message)}</span>`
    + (p.since ? ` <span class="dim">${when(p.since, "since ")} ago</span>` : "") + `</li>`;
}

// Many problems of one kind make one line naming the first few, so that
// a hundred unhealthy services do not push everything else away.
function grouped(all) {
  const groups = new Map();
  for (const p of all) {
    const key = `${p.level} ${p.kind}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(p);
  }
  return [...groups.values()].flatMap(group => {
    if (group.length <= 3) return group.map(problemLine);
    const p = group[0];
    const names = group.slice(0, 6).map(q => esc(q.subject)).join(", ");
    return [`<li class="problem ${p.level} group" data-tab="${esc(p.tab || "")}" data-filter="" data-only="1">`
      + `<span class="kind">${esc(p.kind)}</span> <b class="subject">${group.length} ${esc(p.kind)}s</b> `
      + `<span class="message">${names}${group.length > 6 ? ", …" : ""} (first: ${esc(p.message)})</span></li>`];
  });
}

const TABS = { services: renderServices, hosts: renderHosts, members: renderMembers, haproxy: renderHAProxy, events: renderEvents };

function render() {
  const started = performance.now();
  const model = build();
  document.getElementById("cluster").textContent = model.state.ClusterName || data.members?.ClusterName || "…";
  document.getElementById("node").textContent = model.state.Hostname || data.health?.Hostname || "…";
  document.title = `sidecar · ${model.state.ClusterName || ""} · ${model.state.Hostname || ""}`;
  renderProblems(model);
  const live = [...model.services.values()].filter(s => s.live);
  const badServices = live.filter(s => s.severity === "bad").length;
  const badMembers = model.members.filter(m => ["failed", "suspect"].includes(m.state) || m.forgotten).length;
  setCount("services", live.length, badServices);
  setCount("hosts", model.hosts.size, [...model.hosts.values()].filter(h => h.bad).length);
  setCount("members", model.members.filter(m => m.state === "alive").length + " alive", badMembers);
  setCount("haproxy", model.proxyOn ? (data.proxy.Frontends || []).length : "off",
    model.proxyOn ? (data.proxy.Conflicts || []).length + (data.proxy.LastError ? 1 : 0) : 0);
  setCount("events", events.length, 0);
  for (const button of document.querySelectorAll("#tabs button[data-tab]")) {
    button.classList.toggle("active", button.dataset.tab === view.tab);
  }
  // The catalog's first draw is a screenful of services, so that it is
  // on screen sooner; all of them come in the next frame.
  const first = stats.firstRender === null && Boolean(data.state);
  document.getElementById("view").innerHTML = data.state || !["services", "hosts"].includes(view.tab)
    ? TABS[view.tab](model, first ? FIRST_ROWS : Infinity) : empty("Waiting for the catalog from /api/watch…");
  stats.lastRenderMs = performance.now() - started;
  stats.renders += 1;
  if (first) {
    stats.firstRender = performance.now();
    stats.firstRenderMs = stats.lastRenderMs;
    requestAnimationFrame(redraw);
  } else if (stats.wholeRender === null && data.state) {
    stats.wholeRender = performance.now();
  }
}

function setCount(tab, text, bad) {
  const node = document.getElementById(`count-${tab}`);
  node.textContent = bad ? `${text} · ${bad} ✗` : String(text);
  node.classList.toggle("bad", Boolean(bad));
}

let pending = false;

// One redraw for however many sources changed in one turn.
function redraw() {
  if (pending) return;
  pending = true;
  setTimeout(() => { pending = false; render(); }, 0);
}

// -- what changed ---------------------------------------------------------

function note(level, subject, text, at) {
  events.unshift({ level, subject, text, at: at || new Date().toISOString() });
  if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
}

function noticeInstances(state) {
  const now = new Map();
  for (const [host, server] of Object.entries(state.Servers || {})) {
    for (const s of Object.values(server.Services || {})) {
      const status = STATUS[s.Status] || "Unknown";
      const key = `${host}/${s.ID}`;
      now.set(key, status);
      if (seen.instances === null) continue;
      const before = seen.instances.get(key);
      if (before === undefined) note(status === "Alive" ? "ok" : "warn", `${s.Name} ${key}`, `new, ${status}`, s.Updated);
      else if (before !== status) {
        note(status === "Alive" ? "ok" : status === "Draining" || status === "Tombstone" ? "warn" : "bad",
          `${s.Name} ${key}`, `${before} → ${status}`, s.Updated);
      }
    }
  }
  if (seen.instances !== null) {
    for (const key of seen.instances.keys()) if (!now.has(key)) note("warn", key, "removed from the catalog");
  }
  seen.instances = now;
}

function noticeMembers(members) {
  const first = seen.members === null;
  const known = seen.members || new Map();
  const stamp = new Date().toISOString();
  const present = new Set();
  for (const m of members.Members || []) {
    present.add(m.Name);
    const before = known.get(m.Name);
    if (!before) {
      known.set(m.Name, { member: m, since: m.Since, forgotten: null });
      if (!first) note(m.State === "alive" ? "ok" : "warn", m.Name, `joined, ${m.State}`, m.Since);
      continue;
    }
    const was = before.forgotten ? "forgotten" : before.member.State;
    before.since = m.Since;
    if (was !== m.State) {
      note(m.State === "alive" ? "ok" : m.State === "left" ? "warn" : "bad", m.Name, `${was} → ${m.State}`, m.Since);
    }
    before.member = m;
    before.forgotten = null;
  }
  for (const [name, before] of known) {
    if (!present.has(name) && !before.forgotten) {
      before.forgotten = stamp;
      note("warn", name, `forgotten by gossip (was ${before.member.State})`);
    }
  }
  seen.members = known;
}

// -- sources --------------------------------------------------------------

const QUOTE = 34, BACKSLASH = 92, OPEN = 123, CLOSE = 125;

// A stream of concatenated JSON documents, cut into chunks anywhere:
// each character is looked at once, however many chunks a document
// spans (a megabyte's catalog comes in dozens).
class Documents {
  constructor() {
    this.parts = [];    // the unfinished document's text so far
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }

  // The documents that this chunk of text completes.
  push(chunk) {
    const documents = [];
    let { depth, inString, escaped } = this;
    let start = depth > 0 ? 0 : -1;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (inString) {
        if (escaped) escaped = false;
        else if (c === BACKSLASH) escaped = true;
        else if (c === QUOTE) inString = false;
      } else if (c === QUOTE) inString = true;
      else if (c === OPEN) { if (depth++ === 0) start = i; }
      else if (c === CLOSE && --depth === 0) {
        this.parts.push(chunk.slice(start, i + 1));
        documents.push(JSON.parse(this.parts.join("")));
        this.parts = [];
        start = -1;
      }
    }
    if (depth > 0) this.parts.push(chunk.slice(start));
    Object.assign(this, { depth, inString, escaped });
    return documents;
  }
}

function connection(up, text) {
  const node = document.getElementById("connection");
  node.textContent = text;
  node.className = up ? "up" : "down";
}

async function follow() {
  // index.html asked for the catalog before this script loaded.
  let asked = window.sidecarCatalog;
  delete window.sidecarCatalog;
  for (;;) {
    try {
      const request = asked || fetch(WATCH, { cache: "no-store" });
      asked = null;
      const response = await request;
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      connection(true, "live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const stream = new Documents();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const documents = stream.push(decoder.decode(value, { stream: true }));
        if (documents.length) {
          if (stats.firstDocument === null) stats.firstDocument = performance.now();
          data.state = documents[documents.length - 1];
          noticeInstances(data.state);
          redraw();
        }
      }
    } catch (e) {
      // The node is restarting or gone: said below, and tried again.
    }
    connection(false, "disconnected from the node; reconnecting…");
    await new Promise(resolve => setTimeout(resolve, RECONNECT_MS));
  }
}

const lastText = {};

// GET path; true when its body differs from the last one (parsed into
// data[key] by take).
async function fetchChanged(path, key, take) {
  const response = await fetch(path, { cache: "no-store" });
  const text = await response.text();
  const changed = lastText[key] !== `${response.status} ${text}`;
  lastText[key] = `${response.status} ${text}`;
  if (changed) take(JSON.parse(text), response.status);
  return changed;
}

async function poll() {
  const results = await Promise.allSettled([
    fetchChanged("/api/members.json", "members", body => { data.members = body; noticeMembers(body); }),
    fetchChanged("/api/checks.json", "checks", body => { data.checks = body.Checks || {}; }),
    fetchChanged("/api/haproxy.json", "proxy", body => { data.proxy = body; }),
    fetchChanged("/api/health", "health", (body, code) => { data.health = body; data.healthCode = code; }),
  ]);
  if (results.some(r => r.status === "fulfilled")) data.polledAt = Date.now();
  if (results.some(r => r.status === "fulfilled" && r.value)) redraw();
  const intervals = Object.values(data.checks).map(c => c.Interval * 500).filter(ms => ms > 0);
  setTimeout(poll, Math.max(MIN_POLL_MS, Math.min(POLL_MS, ...intervals)));
}

// -- actions --------------------------------------------------------------

function notice(level, text) {
  const node = document.getElementById("notice");
  node.hidden = false;
  node.className = level;
  node.innerHTML = `<span class="text">${esc(text)}</span> <button class="link" id="notice-close" title="dismiss">✕</button>`;
}

async function drain(button) {
  const { id, host, action } = button.dataset;
  const here = data.state?.Hostname;
  button.disabled = true;
  button.textContent = action === "drain" ? "Draining…" : "Undraining…";
  try {
    const response = await fetch(`/api/services/${encodeURIComponent(id)}/drain`, {
      method: action === "drain" ? "POST" : "DELETE",
      headers: { "Content-Type": "application/json" },
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      notice("ok", body.Message || `${id}: ${action}ed`);
    } else {
      const said = body.message || `HTTP ${response.status}`;
      notice("bad", host && host !== here
        ? `Cannot ${action} ${id} here: it runs on ${host}, and only ${host}'s node can ${action} it `
          + `(${action === "drain" ? "POST" : "DELETE"} /api/services/${id}/drain on ${host}'s API). This node (${here}) answered: ${said}`
        : `Cannot ${action} ${id}: ${said}`);
    }
  } catch (e) {
    notice("bad", `Cannot ${action} ${id}: the request failed (${e.message})`);
  }
  redraw();
}

function jump(tab, filter) {
  const box = document.getElementById("filter");
  box.value = filter;
  setFilter(filter);
  if (tab) view.tab = tab;
  saveView();
  render();
}

function setFilter(text) {
  view.filter = text.toLowerCase().split(/\s+/).filter(Boolean);
}

function saveView() {
  const q = document.getElementById("filter").value;
  history.replaceState(null, "", `#${view.tab}${q ? `?q=${encodeURIComponent(q)}` : ""}`);
}

function loadView() {
  const [tab, query] = location.hash.slice(1).split("?q=");
  if (TABS[tab]) view.tab = tab;
  const q = query ? decodeURIComponent(query) : "";
  document.getElementById("filter").value = q;
  setFilter(q);
}

function wire() {
  window.addEventListener("hashchange", () => { loadView(); render(); });
  document.getElementById("tabs").addEventListener("click", e => {
    const button = e.target.closest("button[data-tab]");
    if (!button) return;
    view.tab = button.dataset.tab;
    saveView();
    render();
  });
  let typing = null;
  document.getElementById("filter").addEventListener("input", e => {
    clearTimeout(typing);
    typing = setTimeout(() => { setFilter(e.target.value); saveView(); render(); }, 120);
  });
  // "/" goes to the filter, Escape clears it, as in most consoles.
  document.addEventListener("keydown", e => {
    const box = document.getElementById("filter");
    if (e.key === "/" && document.activeElement !== box) {
      e.preventDefault();
      box.focus();
    } else if (e.key === "Escape" && document.activeElement === box) {
      box.value = "";
      setFilter("");
      saveView();
      render();
    }
  });
  document.getElementById("only-problems").addEventListener("change", e => {
    view.onlyProblems = e.target.checked;
    render();
  });
  document.body.addEventListener("click", e => {
    const target = e.target;
    const button = target.closest("button.drain");
    if (button) return void drain(button);
    if (target.id === "notice-close") return void (document.getElementById("notice").hidden = true);
    if (target.id === "more-problems") { view.more = !view.more; return void render(); }
    const problem = target.closest("li.problem");
    if (problem) {
      if (problem.dataset.only) {
        view.onlyProblems = document.getElementById("only-problems").checked = true;
      }
      return void jump(problem.dataset.tab, problem.dataset.filter);
    }
    const mark = target.closest("#view [data-filter]");
    if (mark) return void jump("services", mark.dataset.filter);
    const row = target.closest(".svc > .row");
    if (row) {
      const name = row.parentNode.dataset.name;
      if (view.expanded.has(name)) view.expanded.delete(name);
      else view.expanded.add(name);
      render();
    }
  });
}

stats.loadedAt = Date.now();
follow();
poll();
loadView();
wire();
render();
setInterval(tick, 1000);
