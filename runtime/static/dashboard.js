// Leadline dashboard: the /api/v1 call API drawn by hand (SVG), no framework, nothing fetched
// from outside this server. The token travels only in the Authorization header: it is read from
// the form or from "#token=..." (a fragment never reaches a server or its logs), then the
// fragment is dropped from the address bar.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const BUDGET_MS = 800;
const STAGES = ["endpointing_ms", "stt_ms", "bot_ms", "tts_ms", "send_ms", "first_audio_ms"];
const TERMINAL = new Set(["completed", "busy", "failed", "no-answer", "canceled"]);
const FEED_LENGTH = 50;
const RECONNECT_MS = 2000;

const state = { token: "", tenant: "default", live: null, active: new Map(), audioUrl: null, refresh: null };

// --- small helpers -------------------------------------------------------------------------

function $(id) {
  return document.getElementById(id);
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  return td;
}

function shortTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = `status ${kind}`;
}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, cache: "no-store" });
  if (!response.ok) throw new Error(`${path} answered ${response.status}`);
  return response;
}

// --- latency distribution per stage --------------------------------------------------------

function drawLatency(analytics) {
  const { bounds_ms: bounds, counts } = analytics.latency_histogram;
  const width = 560, rowHeight = 46, left = 120, columns = bounds.length + 1;
  const column = (width - left - 10) / columns;
  const chart = svg("svg", { width, height: rowHeight * STAGES.length + 36, role: "img" });
  const budgetX = left + column * (bounds.indexOf(BUDGET_MS) + 1);
  STAGES.forEach((stage, row) => {
    const top = row * rowHeight;
    const stageCounts = counts[stage] || [];
    const most = Math.max(1, ...stageCounts);
    const pct = analytics.latency_ms[stage] || {};
    chart.append(svg("text", { x: 0, y: top + 18 }, stage.replace("_ms", "")));
    chart.append(svg("text", { x: 0, y: top + 33 }, pct.p95 == null ? "no turns" : `p50 ${pct.p50} · p95 ${pct.p95}`));
    stageCounts.forEach((count, i) => {
      const height = ((rowHeight - 10) * count) / most;
      const over = i > bounds.indexOf(BUDGET_MS);
      const bar = svg("rect", {
        class: over ? "bar over" : "bar",
        x: left + i * column + 1, y: top + rowHeight - 6 - height, width: column - 2, height,
        "data-stage": stage, "data-count": count,
      });
      bar.append(svg("title", {}, `${i < bounds.length ? "≤ " + bounds[i] : "> " + bounds[bounds.length - 1]} ms: ${count}`));
      chart.append(bar);
    });
    chart.append(svg("line", { class: "axis", x1: left, x2: width, y1: top + rowHeight - 6, y2: top + rowHeight - 6 }));
  });
  const bottom = rowHeight * STAGES.length;
  chart.append(svg("line", { class: "budget", x1: budgetX, x2: budgetX, y1: 0, y2: bottom }));
  chart.append(svg("text", { x: budgetX, y: bottom + 30, "text-anchor": "middle" }, `${BUDGET_MS} ms budget`));
  bounds.forEach((bound, i) => {
    if (i % 2 === 1) chart.append(svg("text", { x: left + (i + 1) * column - 12, y: bottom + 14 }, String(bound)));
  });
  $("latency").replaceChildren(chart);
}

// --- outcome funnel ------------------------------------------------------------------------

function funnelSteps(analytics) {
  const outcomes = analytics.outcomes || {};
  const sum = (...names) => names.reduce((total, name) => total + (outcomes[name] || 0), 0);
  return [
    ["Calls", analytics.calls],
    ["Engaged", sum("partial", "qualified", "booked", "transferred")],
    ["Qualified", sum("qualified", "booked", "transferred")],
    ["Booked", analytics.bookings],
  ];
}

function drawFunnel(analytics) {
  const steps = funnelSteps(analytics);
  const width = 520, rowHeight = 30, left = 90;
  const chart = svg("svg", { width, height: rowHeight * steps.length, role: "img" });
  const most = Math.max(1, steps[0][1]);
  steps.forEach(([name, count], row) => {
    const barWidth = Math.max(2, ((width - left - 60) * count) / most);
    chart.append(svg("text", { x: 0, y: row * rowHeight + 19 }, name));
    chart.append(svg("rect", { class: "step", x: left, y: row * rowHeight + 4, width: barWidth, height: rowHeight - 8, "data-count": count }));
    chart.append(svg("text", { x: left + barWidth + 6, y: row * rowHeight + 19 }, String(count)));
  });
  $("funnel").replaceChildren(chart);
}

// --- calls and one call --------------------------------------------------------------------

function drawCalls(calls) {
  const body = $("calls").tBodies[0];
  body.replaceChildren();
  for (const call of calls) {
    const row = body.insertRow();
    row.dataset.sid = call.call_sid;
    cell(row, call.call_sid);
    cell(row, shortTime(call.started_at));
    cell(row, call.duration_s == null ? "" : `${Math.round(call.duration_s)} s`);
    cell(row, call.outcome);
    row.addEventListener("click", () => showCall(call.call_sid));
  }
}

function drawTimeline(detail) {
  const items = detail.timeline;
  const end = Math.max(1, detail.call.duration_s || 0, ...items.map((t) => t.end_s ?? t.start_s));
  const width = 1100, left = 60, lanes = { caller: 12, bot: 42, silence: 72 };
  const x = (s) => left + ((width - left - 10) * s) / end;
  const chart = svg("svg", { width, height: 120, role: "img", id: "timeline-chart" });
  for (const [name, y] of Object.entries(lanes)) chart.append(svg("text", { x: 0, y: y + 14 }, name === "silence" ? "events" : name));
  for (const item of items) {
    const lane = item.kind in lanes ? item.kind : "silence";
    let shape;
    if (item.end_s == null) {
      shape = svg("line", { class: `mark ${item.kind}`, x1: x(item.start_s), x2: x(item.start_s), y1: lanes.caller, y2: lanes.silence + 22 });
    } else {
      const speech = item.kind === "caller" || item.kind === "bot";
      shape = svg("rect", {
        class: speech ? `speech ${item.kind}` : item.kind,
        x: x(item.start_s), y: lanes[lane], height: 20, width: Math.max(1, x(item.end_s) - x(item.start_s)),
      });
    }
    shape.dataset.kind = item.kind;
    shape.append(svg("title", {}, `${item.kind} ${item.start_s.toFixed(1)} s ${item.label}`));
    chart.append(shape);
  }
  for (let s = 0; s <= end; s += end > 120 ? 30 : 5) chart.append(svg("text", { x: x(s) - 4, y: 112 }, `${s}s`));
  const playhead = svg("line", { class: "playhead", x1: left, x2: left, y1: 5, y2: 98 });
  chart.append(playhead);
  $("timeline").replaceChildren(chart);
  $("player").ontimeupdate = (event) => {
    const at = x(Math.min(end, event.target.currentTime));
    playhead.setAttribute("x1", at);
    playhead.setAttribute("x2", at);
  };
}

function drawTranscript(transcript) {
  $("transcript").replaceChildren(
    ...transcript.map((line) => {
      const item = document.createElement("li");
      item.className = line.speaker;
      item.textContent = `${line.start_s.toFixed(1)} s ${line.speaker}: ${line.text}`;
      return item;
    }),
  );
}

async function loadRecording(sid, recording) {
  const player = $("player");
  if (state.audioUrl) URL.revokeObjectURL(state.audioUrl);
  state.audioUrl = null;
  player.removeAttribute("src");
  if (!recording) return;
  // An <audio src> request cannot carry the bearer header, so the file comes through fetch.
  const blob = await (await api(`/api/v1/calls/${encodeURIComponent(sid)}/recording`)).blob();
  state.audioUrl = URL.createObjectURL(blob);
  player.src = state.audioUrl;
}

async function showCall(sid) {
  for (const row of $("calls").tBodies[0].rows) row.classList.toggle("selected", row.dataset.sid === sid);
  const detail = await (await api(`/api/v1/calls/${encodeURIComponent(sid)}`)).json();
  $("call-panel").hidden = false;
  $("call-sid").textContent = sid;
  drawTimeline(detail);
  drawTranscript(detail.transcript);
  await loadRecording(sid, detail.recording);
}

// --- live feed -----------------------------------------------------------------------------

function drawActive() {
  const body = $("active").tBodies[0];
  body.replaceChildren();
  for (const call of state.active.values()) {
    const row = body.insertRow();
    row.dataset.sid = call.call_sid;
    cell(row, call.call_sid);
    cell(row, call.from_number);
    cell(row, shortTime(call.started_at));
    cell(row, call.state);
  }
  $("active-count").textContent = String(state.active.size);
}

function addFeed(name, data) {
  const item = document.createElement("li");
  item.dataset.type = name;
  item.textContent = `${new Date().toLocaleTimeString()} ${data.call_sid || ""} ${name}${data.kind ? ": " + data.kind : ""}`;
  const feed = $("feed");
  feed.prepend(item);
  while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
}

function onLive(name, data) {
  if (name === "snapshot") {
    state.active = new Map(data.active_calls.map((call) => [call.call_sid, call]));
    drawActive();
    return;
  }
  if (name === "call") {
    if (data.ended_at || TERMINAL.has(data.state)) {
      state.active.delete(data.call_sid);
      scheduleRefresh();
    } else {
      state.active.set(data.call_sid, data);
    }
    drawActive();
  }
  addFeed(name, data);
}

function parseSse(block) {
  let name = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) name = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (data) onLive(name, JSON.parse(data));
}

async function followLive(controller) {
  const path = `/api/v1/live?tenant=${encodeURIComponent(state.tenant)}`;
  const response = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` }, signal: controller.signal });
  if (!response.ok) throw new Error(`live feed answered ${response.status}`);
  setStatus("live", "live");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      parseSse(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

async function connectLive() {
  if (state.live) state.live.abort();
  const controller = new AbortController();
  state.live = controller;
  while (!controller.signal.aborted) {
    try {
      await followLive(controller);
    } catch (error) {
      if (controller.signal.aborted) return;
      setStatus(`live feed lost: ${error.message}; retrying`, "error");
    }
    await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

// --- start ---------------------------------------------------------------------------------

function scheduleRefresh() {
  clearTimeout(state.refresh);
  state.refresh = setTimeout(() => refresh().catch((error) => setStatus(error.message, "error")), 1000);
}

async function refresh() {
  const tenant = encodeURIComponent(state.tenant);
  const [analytics, page] = await Promise.all([
    api(`/api/v1/analytics?tenant=${tenant}`).then((r) => r.json()),
    api(`/api/v1/calls?tenant=${tenant}&limit=25`).then((r) => r.json()),
  ]);
  drawLatency(analytics);
  drawFunnel(analytics);
  drawCalls(page.calls);
}

async function start() {
  sessionStorage.setItem("leadline.token", state.token);
  sessionStorage.setItem("leadline.tenant", state.tenant);
  setStatus("loading");
  try {
    await refresh();
  } catch (error) {
    setStatus(error.message, "error");
    return;
  }
  connectLive();
}

function init() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  state.token = fragment.get("token") || sessionStorage.getItem("leadline.token") || "";
  state.tenant = fragment.get("tenant") || sessionStorage.getItem("leadline.tenant") || "default";
  $("tenant").value = state.tenant;
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    state.token = $("token").value;
    state.tenant = $("tenant").value;
    start();
  });
  if (state.token) start();
}

init();
