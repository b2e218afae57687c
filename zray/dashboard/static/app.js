// zray dashboard: plain JavaScript, no build step and no network beyond this server.
// Every value from the cluster is inserted as text (textContent), never as HTML.
"use strict";

const POLL_MS = 1500;
const main = document.getElementById("main");
const statusLine = document.getElementById("status");
let current = null; // {update, timer, key}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path) {
  const response = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) throw new HttpError(401, "Unauthorized: open the dashboard with the URL `zray start --head` printed (it carries the cluster token).");
  let body;
  try { body = await response.json(); } catch (e) { throw new HttpError(response.status, `HTTP ${response.status}`); }
  if (!response.ok || body.result === false) throw new HttpError(response.status, body.msg || `HTTP ${response.status}`);
  return body.data.result;
}

function stateRows(resource, params) {
  const query = new URLSearchParams({ detail: "true", limit: "10000", ...(params || {}) });
  return api(`/api/v0/${resource}?${query}`).then((r) => r.result);
}

const short = (id) => (id ? String(id).slice(0, 12) : "");
const fmtTime = (ms) => (ms ? new Date(ms).toLocaleString() : "");

function fmtBytes(n) {
  if (n === null || n === undefined || n < 0) return "?";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function bar(used, total, text) {
  const fraction = total > 0 ? Math.min(1, Math.max(0, used / total)) : 0;
  const fill = el("span", { class: "fill" });
  // Through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  return el("span", {}, el("span", { class: "bar" }, fill), el("span", { class: "bar-text", text }));
}

function stateCell(state) { return el("td", { class: `state-${state}`, text: state }); }

function table(headers, rows, id) {
  return el("table", { id }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows));
}

function card(label, value, id) {
  return el("div", { class: "card", id }, el("div", { class: "value", text: value }), el("div", { class: "label", text: label }));
}

function note(text, cls) { return el("p", { class: cls || "note", text }); }

// Tables show at most this many rows: rebuilding thousands of rows every poll costs the
// browser seconds, and no one reads them all. The counts above each table stay complete.
const MAX_ROWS = 500;

function capped(rows, what) {
  if (rows.length <= MAX_ROWS) return { rows, notice: null };
  return { rows: rows.slice(0, MAX_ROWS), notice: note(`Showing the first ${MAX_ROWS} of ${rows.length} ${what}.`, "note capped") };
}

// ------------------------------------------------------------------ pages

async function overviewPage() {
  const data = await api("/api/cluster");
  const alive = data.nodes.filter((n) => n.state === "ALIVE");
  const sum = (key) => alive.reduce((a, n) => a + (n[key] || 0), 0);
  const actors = await stateRows("actors").catch(() => []);
  return [
    el("h1", { text: "Cluster overview" }),
    el("p", { class: "note" }, `Session ${data.session_name}, head at ${data.head_address.replace("tcp://", "")}`),
    el("div", { class: "cards" },
      card("nodes alive", `${alive.length}`, "node-count"),
      card("CPUs in use", `${sum("cpus_used")} / ${sum("cpus_total")}`),
      card("object store", `${fmtBytes(sum("store_used"))} / ${fmtBytes(sum("store_capacity"))}`),
      card("actors alive", `${actors.filter((a) => a.state === "ALIVE").length}`),
      card("workers", `${sum("workers")}`)),
    el("h2", { text: "Nodes" }),
    table(["Node", "IP", "State", "CPU (logical)", "CPU (machine)", "Memory (machine)", "Object store", "Workers", "Resources"],
      data.nodes.map((n) => el("tr", { "data-node": n.node_id },
        el("td", { class: "mono", text: short(n.node_id) + (n.is_head ? " (head)" : "") }),
        el("td", { text: n.ip }),
        stateCell(n.state),
        el("td", {}, bar(n.cpus_used, n.cpus_total, `${n.cpus_used} / ${n.cpus_total}`)),
        el("td", {}, n.cpu_percent === null || n.cpu_percent === undefined ? "" : bar(n.cpu_percent, 100, `${n.cpu_percent.toFixed(0)}%`)),
        el("td", {}, n.memory_total ? bar(n.memory_used, n.memory_total, `${fmtBytes(n.memory_used)} / ${fmtBytes(n.memory_total)}`) : ""),
        el("td", {}, bar(n.store_used, n.store_capacity, `${fmtBytes(n.store_used)} / ${fmtBytes(n.store_capacity)}`)),
        el("td", { text: n.workers }),
        el("td", { class: "mono", text: Object.entries(n.resources_total).map(([k, v]) => `${k}: ${v}`).join(", ") }))),
      "nodes"),
  ];
}

async function jobsPage() {
  const jobs = await stateRows("jobs");
  return [
    el("h1", { text: "Jobs" }),
    table(["Job", "Submission", "Entrypoint", "Status", "Driver", "Started", "Ended"],
      jobs.map((j) => el("tr", {},
        el("td", { class: "mono", text: j.job_id || "" }),
        el("td", { class: "mono", text: j.submission_id || "" }),
        el("td", { class: "mono", text: j.entrypoint || "" }),
        stateCell(j.status),
        el("td", { text: j.driver_info ? `pid ${j.driver_info.pid} on ${j.driver_info.node_ip_address}` : "" }),
        el("td", { text: fmtTime(j.start_time) }),
        el("td", { text: fmtTime(j.end_time) }))),
      "jobs"),
  ];
}

function deathMessage(actor) {
  const cause = actor.death_cause || {};
  const context = cause.creation_task_failure_context || cause.actor_died_error_context;
  return context ? context.error_message || "" : "";
}

async function actorsPage(arg) {
  if (arg) return actorDetail(arg);
  const actors = await stateRows("actors");
  const counts = {};
  for (const a of actors) counts[a.state] = (counts[a.state] || 0) + 1;
  // Failed and live ones first: those are the ones a person looks for.
  const order = { DEAD: 0, RESTARTING: 1, PENDING_CREATION: 2, ALIVE: 3 };
  const shown = capped([...actors].sort((a, b) => (order[a.state] ?? 4) - (order[b.state] ?? 4)), "actors");
  return [
    el("h1", { text: "Actors" }),
    el("div", { class: "cards" }, Object.entries(counts).map(([state, n]) => card(state, n))),
    shown.notice,
    table(["Actor", "Class", "Name", "State", "PID", "Node", "Restarts", "Error"],
      shown.rows.map((a) => {
        const message = deathMessage(a);
        const firstLine = message.split("\n").filter((l) => l.trim()).pop() || "";
        return el("tr", { "data-actor": a.actor_id },
          el("td", { class: "mono" }, el("a", { href: `#/actors/${a.actor_id}`, text: short(a.actor_id) })),
          el("td", { text: a.class_name }),
          el("td", { text: a.name }),
          stateCell(a.state),
          el("td", { text: a.pid || "" }),
          el("td", { class: "mono", text: short(a.node_id) }),
          el("td", { text: a.num_restarts }),
          el("td", {}, message ? el("a", { class: "error traceback-link", href: `#/actors/${a.actor_id}`, text: firstLine.slice(0, 120) || "traceback" }) : ""));
      }),
      "actors"),
  ];
}

function fieldsTable(row, skip) {
  return table(["Field", "Value"], Object.entries(row).filter(([k]) => !skip.includes(k)).map(([k, v]) =>
    el("tr", {}, el("td", { text: k }), el("td", { class: "mono", text: typeof v === "object" && v !== null ? JSON.stringify(v) : String(v) }))));
}

async function actorDetail(actorId) {
  const rows = await stateRows("actors", { filter_keys: "actor_id", filter_predicates: "=", filter_values: actorId });
  if (!rows.length) return [el("h1", { text: `Actor ${actorId}` }), note("No such actor.", "error")];
  const actor = rows[0];
  const message = deathMessage(actor);
  return [
    el("h1", {}, `Actor ${actor.class_name} `, el("span", { class: `state-${actor.state}`, id: "actor-state", text: actor.state })),
    el("p", {}, el("a", { href: "#/actors", text: "All actors" })),
    message ? [el("h2", { text: "Error" }), el("pre", { id: "traceback", text: message })] : null,
    el("h2", { text: "Fields" }),
    fieldsTable(actor, ["death_cause"]),
  ];
}

// Tasks: a page of the table at a time, by task id as the state API orders them; the head
// filters and limits, so a cluster with 10,000 tasks sends the browser 100 rows per poll.
const TASK_COLUMNS = ["task_id", "name", "state", "type", "job_id", "actor_id", "node_id", "worker_pid"];
const TASKS_PER_PAGE = 100;
const TASK_STATES = ["PENDING_ARGS_AVAIL", "PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER", "RUNNING", "FINISHED", "FAILED"];
const taskView = { offset: 0, state: "" };

function taskControls(data, shown) {
  const select = el("select", { id: "task-state" },
    el("option", { value: "", text: "every state" }),
    TASK_STATES.map((s) => el("option", { value: s, text: s })));
  select.value = taskView.state;
  select.addEventListener("change", () => { taskView.state = select.value; taskView.offset = 0; show(); });
  const move = (label, id, offset, enabled) => {
    const button = el("button", { id, text: label });
    button.disabled = !enabled;
    button.addEventListener("click", () => { taskView.offset = offset; show(); });
    return button;
  };
  const first = data.offset + 1;
  const last = data.offset + shown;
  const reachable = Math.min(data.num_filtered, 10000);
  return el("div", { class: "controls" },
    select,
    move("Previous", "tasks-previous", Math.max(0, data.offset - TASKS_PER_PAGE), data.offset > 0),
    move("Next", "tasks-next", data.offset + TASKS_PER_PAGE, last < reachable && data.offset + 2 * TASKS_PER_PAGE <= 10000),
    el("span", { id: "task-range", class: "note", text: shown ? `${first}-${last} of ${data.num_filtered}` : `none of ${data.num_filtered}` }));
}

async function tasksPage(arg) {
  if (arg) return taskDetail(arg);
  let data;
  try {
    const query = new URLSearchParams({ offset: taskView.offset, limit: TASKS_PER_PAGE, ...(taskView.state ? { state: taskView.state } : {}) });
    data = await api(`/api/tasks?${query}`);
  } catch (e) {
    if (e.status === 501) return [el("h1", { text: "Tasks" }), note(`This cluster keeps no task table: ${e.message}`)];
    throw e;
  }
  const tasks = data.result;
  const unseen = data.total - data.num_after_truncation;
  return [
    el("h1", { text: "Tasks" }),
    taskControls(data, tasks.length),
    unseen > 0 ? note(`${unseen} more task attempts are not listed: the head keeps the latest ones, and a query looks at the latest 10,000.`, "note capped") : null,
    table([...TASK_COLUMNS, "Error"], tasks.map((t) => el("tr", {},
      TASK_COLUMNS.map((c) => (c === "state" ? stateCell(t.state) : c === "task_id"
        ? el("td", { class: "mono" }, el("a", { href: `#/tasks/${t.task_id}`, text: t.task_id }))
        : el("td", { class: c.endsWith("_id") ? "mono" : "", text: t[c] ?? "" }))),
      el("td", {}, t.error_type ? el("a", { class: "error traceback-link", href: `#/tasks/${t.task_id}`, text: t.error_type }) : ""))),
    "tasks"),
  ];
}

async function taskDetail(taskId) {
  const tasks = await stateRows("tasks", { filter_keys: "task_id", filter_predicates: "=", filter_values: taskId });
  if (!tasks.length) return [el("h1", { text: `Task ${taskId}` }), note("No such task.", "error")];
  const task = tasks[tasks.length - 1]; // its latest attempt
  return [
    el("h1", {}, `Task ${task.name || taskId} `, el("span", { class: `state-${task.state}`, text: task.state || "" })),
    el("p", {}, el("a", { href: "#/tasks", text: "All tasks" })),
    task.error_message ? [el("h2", { text: "Error" }), el("pre", { id: "traceback", text: task.error_message })] : null,
    el("h2", { text: "Fields" }),
    fieldsTable(task, ["error_message"]),
  ];
}

async function placementGroupsPage() {
  const groups = await stateRows("placement_groups");
  return [
    el("h1", { text: "Placement groups" }),
    table(["Placement group", "Name", "State", "Bundles", "Detached"],
      groups.map((g) => el("tr", {},
        el("td", { class: "mono", text: g.placement_group_id }),
        el("td", { text: g.name }),
        stateCell(g.state),
        el("td", { class: "mono", text: (g.bundles || []).map((b) => `${JSON.stringify(b.unit_resources)}@${short(b.node_id) || "-"}`).join("  ") }),
        el("td", { text: g.is_detached ? "yes" : "no" }))),
      "placement-groups"),
  ];
}

async function objectsPage() {
  const m = await api("/api/memory");
  const refs = [...m.references].sort((a, b) => b.size - a.size);
  const shown = capped(refs, "references (the largest)");
  return [
    el("h1", { text: "Objects and memory" }),
    el("div", { class: "cards" },
      card("object store used", `${fmtBytes(m.store_used)} / ${fmtBytes(m.store_capacity)}`),
      card("objects in memory", m.objects_in_memory),
      card("spilled", `${fmtBytes(m.spilled_bytes)} (${m.spilled_objects})`),
      card("references", refs.length, "reference-count")),
    m.nodes_unanswered ? note(`${m.nodes_unanswered} node(s) did not answer in time.`, "error") : null,
    shown.notice,
    table(["Node", "PID", "Type", "Object", "Size", "Reference type", "Owner", "Borrowers", "Copies"],
      shown.rows.map((r) => el("tr", {},
        el("td", { text: r.node }), el("td", { text: r.pid }), el("td", { text: r.kind }),
        el("td", { class: "mono", text: r.object_id }),
        el("td", { text: fmtBytes(r.size) }),
        el("td", { text: r.reasons.join(", ") || "-" }),
        el("td", { text: r.owner }), el("td", { text: r.borrowers }), el("td", { text: r.copies }))),
      "objects"),
  ];
}

// Logs: the file list, and the chosen file's tail, extended by each poll from its offset.
const tail = { file: null, offset: null, pre: null };

async function logsPage(arg) {
  const files = await api("/api/logs");
  let pre = null;
  if (arg) {
    if (tail.file !== arg || !tail.pre) {
      tail.file = arg; tail.offset = null; tail.pre = el("pre", { class: "log", id: "log-text" });
    }
    pre = tail.pre;
    const chunk = await api(`/api/logs/read?${new URLSearchParams({ file: arg, ...(tail.offset === null ? {} : { offset: tail.offset }) })}`);
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const kept = pre.scrollTop; // re-attaching the element below resets it
    if (chunk.offset < (tail.offset || 0)) pre.textContent = "";
    if (chunk.text) pre.append(document.createTextNode(chunk.text));
    tail.offset = chunk.offset;
    requestAnimationFrame(() => { pre.scrollTop = atBottom ? pre.scrollHeight : kept; });
  }
  return [
    el("h1", { text: "Logs" }),
    el("div", { class: "layout" },
      el("div", { class: "files", id: "log-files" }, files.map((f) =>
        el("a", { href: `#/logs/${f.id}`, class: f.id === arg ? "active" : "", "data-file": f.id, text: `${f.node_ip} ${short(f.node_id)} ${f.name} (${fmtBytes(f.size)})` }))),
      el("div", { class: "viewer" }, arg ? [el("p", { class: "note", text: `${arg} (live)` }), pre] : note("Choose a file; it is followed live."))),
  ];
}

const PAGES = {
  overview: overviewPage, jobs: jobsPage, actors: actorsPage, tasks: tasksPage,
  "placement-groups": placementGroupsPage, objects: objectsPage, logs: logsPage,
};

// ------------------------------------------------------------------ routing and polling

function route() {
  const [page, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const name = PAGES[page] ? page : "overview";
  return { name, arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}

async function refresh(key) {
  const { name, arg } = route();
  try {
    const content = await PAGES[name](arg);
    if (!current || current.key !== key) return; // the user moved on meanwhile
    const scroll = window.scrollY;
    main.replaceChildren(...[content].flat(3).filter((c) => c));
    window.scrollTo(0, scroll);
    statusLine.textContent = `updated ${new Date().toLocaleTimeString()}`;
    statusLine.className = "status";
  } catch (e) {
    if (!current || current.key !== key) return;
    if (e.status === 401) main.replaceChildren(el("h1", { text: "401: Unauthorized" }), note(e.message, "error"));
    statusLine.textContent = `not updated: ${e.message}`;
    statusLine.className = "status stale";
  }
}

function show() {
  if (current) clearTimeout(current.timer);
  const key = location.hash + ":" + Date.now();
  current = { key, timer: null };
  const { name } = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  main.replaceChildren(note("Loading..."));
  const loop = async () => {
    await refresh(key);
    if (current && current.key === key) current.timer = setTimeout(loop, POLL_MS);
  };
  loop();
}

window.addEventListener("hashchange", show);
show();
