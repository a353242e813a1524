// The cluster as this node sees it, live: members from /api/members.json,
// services from the /api/watch stream (JSON documents one after another),
// check results of this node's own services from /api/checks.json, and
// what this node's HAProxy leaves out or refuses from /api/haproxy.json.
"use strict";

const STATUS = ["Alive", "Tombstone", "Unhealthy", "Unknown", "Draining"];
let checks = {};
let previous = {};

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function age(timestamp) {
  const seconds = Math.max(0, (Date.now() - Date.parse(timestamp)) / 1000);
  if (seconds < 120) return Math.round(seconds) + " s";
  if (seconds < 7200) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

function showServices(byName) {
  const root = document.getElementById("services");
  root.textContent = "";
  for (const name of Object.keys(byName).sort()) {
    const heading = document.createElement("h3");
    heading.textContent = name;
    root.appendChild(heading);
    const table = document.createElement("table");
    table.className = "service";
    table.dataset.name = name;
    const head = table.createTHead().insertRow();
    for (const title of ["ID", "Host", "Status", "Ports", "Image", "Age", "Check"]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const s of byName[name]) {
      const status = STATUS[s.Status] || "Tombstone";
      const row = body.insertRow();
      row.className = status;
      row.dataset.id = s.ID;
      cell(row, s.ID);
      cell(row, s.Hostname);
      cell(row, status, "status");
      cell(row, (s.Ports || []).map(
        p => `${p.IP}:${p.Port}` + (p.ServicePort ? ` → ${p.ServicePort}` : "")
      ).join(", "));
      cell(row, s.Image);
      cell(row, age(s.Created));
      const check = checks[s.ID];
      cell(row, check ? (check.LastError || check.LastResult || check.Status) : "");
      const key = `${s.Hostname}/${s.ID}`;
      if (previous[key] !== status) {
        const item = document.createElement("li");
        item.textContent = `${new Date().toISOString()} ${name} ${key} ${status}`;
        document.getElementById("changes").prepend(item);
        previous[key] = status;
      }
    }
    root.appendChild(table);
  }
}

// Split a stream of concatenated JSON documents: returns [documents, rest].
function split(text) {
  const documents = [];
  let depth = 0, inString = false, escaped = false, start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{") { if (depth++ === 0) start = i; }
    else if (c === "}" && --depth === 0) {
      documents.push(JSON.parse(text.slice(start, i + 1)));
      start = -1;
    }
  }
  return [documents, depth > 0 ? text.slice(start) : ""];
}

async function follow() {
  const connection = document.getElementById("connection");
  for (;;) {
    try {
      const response = await fetch("/api/watch");
      connection.textContent = "following /api/watch";
      connection.className = "up";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let documents;
        [documents, pending] = split(pending + decoder.decode(value, { stream: true }));
        if (documents.length) showServices(documents[documents.length - 1]);
      }
    } catch (e) {
      // The node is restarting or gone: try again shortly.
    }
    connection.textContent = "disconnected; reconnecting…";
    connection.className = "down";
    await new Promise(resolve => setTimeout(resolve, 2000));
  }
}

function showProxy(proxy) {
  const section = document.getElementById("proxy");
  section.hidden = !proxy.Enabled;
  if (!proxy.Enabled) return;
  const problems = [
    ...(proxy.LastError ? [proxy.LastError] : []),
    ...proxy.Conflicts,
    ...proxy.Refused.map(refusal => "left out: " + refusal),
  ];
  const list = document.getElementById("proxy-problems");
  list.textContent = "";
  for (const problem of problems.length ? problems : ["none"]) {
    const item = document.createElement("li");
    item.textContent = problem;
    list.appendChild(item);
  }
}

async function poll() {
  try {
    const members = await (await fetch("/api/members.json")).json();
    document.getElementById("cluster").textContent = members.ClusterName;
    const body = document.querySelector("#members tbody");
    body.textContent = "";
    for (const m of members.Members) {
      const row = body.insertRow();
      cell(row, m.Name);
      cell(row, `${m.Address}:${m.Port}`);
      cell(row, m.State);
      cell(row, m.Incarnation);
    }
    checks = (await (await fetch("/api/checks.json")).json()).Checks;
    showProxy(await (await fetch("/api/haproxy.json")).json());
  } catch (e) {
    // Shown by the stream's state; polled again below.
  }
}

poll();
setInterval(poll, 3000);
follow();
