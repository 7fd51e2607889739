// eventbus dashboard: the live parts. Plain JavaScript, no dependencies; every page works
// without it, less the live updates.
"use strict";

const root = document.body.dataset.root || "";
const HISTORY_SECONDS = 600;

function showDown(problem) {
  for (const el of document.querySelectorAll('[data-field="down"]')) {
    el.hidden = !problem;
    el.textContent = problem ? `The daemon is not answering: ${problem}. Retrying…` : "";
  }
}

function drawChart(history) {
  const svg = document.querySelector("[data-chart]");
  if (!svg || history.length === 0) return;
  const now = history[history.length - 1][0];
  const top = Math.max(1, ...history.map((s) => Math.max(s[1], s[2])));
  for (const [index, name] of [[1, "waiting"], [2, "running"]]) {
    const points = history.map((s) => {
      const x = 600 - ((now - s[0]) / HISTORY_SECONDS) * 600;
      const y = 78 - (s[index] / top) * 74;
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    svg.querySelector(`[data-line="${name}"]`).setAttribute("points", points.join(" "));
  }
}

function followCounts() {
  const holder = document.getElementById("history");
  if (!holder) return;
  let history = JSON.parse(holder.textContent || "[]");
  drawChart(history);
  let last = null;
  const source = new EventSource(`${root}/live/counts`);
  source.addEventListener("down", (e) => showDown(JSON.parse(e.data).problem));
  source.addEventListener("counts", (e) => {
    const counts = JSON.parse(e.data);
    const now = Date.now() / 1000;
    showDown(null);
    for (const el of document.querySelectorAll("[data-count]")) {
      el.textContent = counts[el.dataset.count];
    }
    const health = document.querySelector('[data-field="health"]');
    if (health) {
      health.textContent = counts.healthy ? "healthy" : "unhealthy";
      health.className = `state ${counts.healthy ? "ok" : "bad"}`;
    }
    const problems = document.querySelector('[data-field="problems"]');
    if (problems) {
      problems.replaceChildren(...counts.problems.map((p) => {
        const li = document.createElement("li");
        li.textContent = p;
        return li;
      }));
    }
    for (const [name, row] of Object.entries(counts.listeners)) {
      const tr = document.querySelector(`tr[data-listener="${CSS.escape(name)}"]`);
      if (!tr) continue;
      for (const [field, value] of Object.entries(row)) {
        const td = tr.querySelector(`[data-field="${field}"]`);
        if (td) td.textContent = value;
      }
      const rate = tr.querySelector('[data-field="rate"]');
      if (rate && last && last.listeners[name]) {
        const done = row.succeeded + row.failed;
        const before = last.listeners[name].succeeded + last.listeners[name].failed;
        rate.textContent = ((done - before) / Math.max(0.001, now - last.at)).toFixed(1);
      }
    }
    last = { ...counts, at: now };
    for (const sample of counts.history) {
      if (history.length === 0 || sample[0] > history[history.length - 1][0]) history.push(sample);
    }
    history = history.filter((s) => now - s[0] <= HISTORY_SECONDS);
    drawChart(history);
  });
}

function describe(record) {
  if (record.type === "emitted") return [record.deliveries ? `${record.deliveries} deliveries` : "unrouted", ""];
  if (record.type === "scheduled") return [`due ${record.due}`, ""];
  if (record.type === "fired") return [`schedule ${record.schedule}`, record.outcome];
  if (record.type === "skipped") return [record.message, ""];
  return [record.listener || "", record.error || ""];
}

function followTail() {
  const table = document.querySelector("[data-tail]");
  if (!table) return;
  const body = table.querySelector("tbody");
  const source = new EventSource(table.dataset.tail);
  source.addEventListener("down", (e) => showDown(JSON.parse(e.data).problem));
  source.addEventListener("ready", () => {
    showDown(null);
    table.dataset.following = "yes";
  });
  source.addEventListener("record", (e) => {
    const record = JSON.parse(e.data);
    const [who, error] = describe(record);
    const took = record.latency == null ? "" : `${(record.latency * 1000).toFixed(1)} ms`;
    const cells = [new Date(record.timestamp).toLocaleTimeString(), record.type, record.event || "",
      who, record.delivery ? `#${record.delivery}` : "", record.attempt || "", took, error];
    const tr = document.createElement("tr");
    tr.dataset.type = record.type;
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.prepend(tr);
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  });
}

function selectAll() {
  for (const box of document.querySelectorAll("[data-select-all]")) {
    box.addEventListener("change", () => {
      for (const other of box.closest("table").querySelectorAll('input[name="delivery"]')) {
        other.checked = box.checked;
      }
    });
  }
}

followCounts();
followTail();
selectAll();
