"use strict";
// The streamseg live page: shows the newest overlay frame, sends clicks, boxes and commands.
// window.streamsegLive exposes the page's state (displayed frame, selected object) for tests.

const view = document.getElementById("view");
const context = view.getContext("2d");
const rubber = document.getElementById("rubber");
const live = { seq: 0, shown: 0, frame: null, selected: null, over: false, state: null };
window.streamsegLive = live;

const DRAG_PX = 6;
const STATE_MS = 500;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function setStatus(kind, text) {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  status.textContent = text;
}

// ----- frames: one request at a time, so only the newest frame is ever fetched --------------
async function frameLoop() {
  let failures = 0;
  while (!live.over) {
    let response;
    try {
      response = await fetch(`/frame?after=${live.seq}&shown=${live.shown}`, { cache: "no-store" });
    } catch (error) {
      failures += 1;
      setStatus("failed", "lost the connection to the streamseg live server");
      if (failures > 5) { live.over = true; break; }
      await sleep(1000);
      continue;
    }
    failures = 0;
    if (response.status === 410) { live.over = true; break; }
    if (response.status !== 200) continue;
    const seq = Number(response.headers.get("X-Seq"));
    const frame = Number(response.headers.get("X-Frame"));
    await drawFrame(await response.blob(), seq, frame);
    await new Promise((resolve) => requestAnimationFrame(resolve));
    live.shown = seq;
  }
  await refreshState();
}

async function drawFrame(blob, seq, frame) {
  const bitmap = await createImageBitmap(blob);
  if (view.width !== bitmap.width || view.height !== bitmap.height) {
    view.width = bitmap.width;
    view.height = bitmap.height;
    view.style.maxWidth = `calc((100vh - 7em) * ${bitmap.width / bitmap.height})`;  // fit the window
  }
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  // the picture and what it is change together: no script can see one without the other
  live.seq = seq;
  live.frame = frame;
  view.dataset.seq = String(seq);
  view.dataset.frame = String(frame);
}

// ----- state: status, stats, objects --------------------------------------------------------
async function refreshState() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    showState(await response.json());
  } catch (error) {
    setStatus("failed", "lost the connection to the streamseg live server");
  }
}

async function stateLoop() {
  while (!live.over) {
    await refreshState();
    await sleep(STATE_MS);
  }
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}

function showState(state) {
  live.state = state;
  document.getElementById("source").textContent = `${state.source} (${state.width}×${state.height})`;
  if (state.status === "running" && state.notice) setStatus("error", state.notice);
  else setStatus(state.status, state.status === "running" ? state.message : `${state.status}: ${state.message}`);
  const stats = state.stats;
  document.getElementById("fps").textContent = stats.fps.toFixed(1);
  document.getElementById("latency").textContent = `${ms(stats.latency_p50_ms)} / ${ms(stats.latency_p95_ms)}`;
  document.getElementById("display").textContent = `${ms(stats.display_p50_ms)} / ${ms(stats.display_p95_ms)}`;
  document.getElementById("dropped").textContent = String(stats.dropped);
  document.getElementById("frames").textContent = `${stats.processed} / ${stats.captured}`;
  showObjects(state.objects);
}

function showObjects(objects) {
  const list = document.getElementById("objects");
  const rows = objects.map((o) => ({ id: o.id, color: o.color, text: o.visible ? `${o.area} px` : "not visible" }));
  if (live.selected !== null && !objects.some((o) => o.id === live.selected)) {
    rows.push({ id: live.selected, color: null, text: "new: click on it" });
  }
  list.replaceChildren(...rows.map(objectRow));
}

function objectRow(row) {
  const item = document.createElement("li");
  item.dataset.obj = String(row.id);
  item.className = row.id === live.selected ? "selected" : "";
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = row.color ? `rgb(${row.color.join(",")})` : "transparent";
  item.append(swatch, `object ${row.id}: ${row.text}`);
  item.addEventListener("click", () => { live.selected = row.id; showObjects(live.state ? live.state.objects : []); });
  return item;
}

// ----- actions ------------------------------------------------------------------------------
async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const reply = await response.json();
  if (!response.ok) {
    setStatus("error", reply.error || `request failed (${response.status})`);
    return null;
  }
  if (typeof reply.obj === "number") live.selected = reply.obj;
  refreshState();
  return reply;
}

function framePoint(event) {
  const rect = view.getBoundingClientRect();
  return {
    x: Math.min(Math.max((event.clientX - rect.left) * view.width / rect.width, 0), view.width - 1),
    y: Math.min(Math.max((event.clientY - rect.top) * view.height / rect.height, 0), view.height - 1),
    cssX: event.clientX - rect.left,
    cssY: event.clientY - rect.top,
  };
}

let drag = null;

view.addEventListener("contextmenu", (event) => event.preventDefault());
view.addEventListener("mousedown", (event) => {
  event.preventDefault();
  drag = { start: framePoint(event), button: event.button, shift: event.shiftKey };
});
window.addEventListener("mousemove", (event) => {
  if (!drag || drag.button !== 0) return;
  const here = framePoint(event);
  if (Math.hypot(here.cssX - drag.start.cssX, here.cssY - drag.start.cssY) < DRAG_PX) return;
  Object.assign(rubber.style, {
    left: `${Math.min(here.cssX, drag.start.cssX)}px`,
    top: `${Math.min(here.cssY, drag.start.cssY)}px`,
    width: `${Math.abs(here.cssX - drag.start.cssX)}px`,
    height: `${Math.abs(here.cssY - drag.start.cssY)}px`,
  });
  rubber.hidden = false;
});
window.addEventListener("mouseup", (event) => {
  if (!drag) return;
  const start = drag.start;
  const end = framePoint(event);
  const negative = drag.button === 2 || drag.shift;
  const isBox = drag.button === 0 && Math.hypot(end.cssX - start.cssX, end.cssY - start.cssY) >= DRAG_PX;
  drag = null;
  rubber.hidden = true;
  if (isBox) {
    post("/api/box", { obj: live.selected, box: [start.x, start.y, end.x, end.y] });
  } else {
    post("/api/click", { obj: live.selected, x: start.x, y: start.y, positive: !negative });
  }
});

document.getElementById("new").addEventListener("click", () => post("/api/objects"));
document.getElementById("remove").addEventListener("click", async () => {
  if (live.selected === null) { setStatus("error", "select an object to remove"); return; }
  const removed = live.selected;
  live.selected = null;
  const tracked = live.state && live.state.objects.some((o) => o.id === removed);
  if (tracked) await post("/api/remove", { obj: removed });
  else refreshState();
});
document.getElementById("reset").addEventListener("click", async () => {
  live.selected = null;
  await post("/api/reset");
});

frameLoop();
stateLoop();
