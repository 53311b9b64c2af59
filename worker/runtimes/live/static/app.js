"use strict";
// The streamseg live page. Two modes, told by /api/state's "camera":
// - server source: shows the newest overlay frame (GET /frame, one request at a time);
// - browser camera: shows this computer's camera (getUserMedia) live, sends frames to the
//   server over a WebSocket (one in flight: newest-frame-only) and draws the masks it sends
//   back over the live video.
// Clicks, boxes and commands carry the frame they were made on. window.streamsegLive exposes
// the page's state (displayed frame, selected object, camera latencies) for tests.

const view = document.getElementById("view");
const context = view.getContext("2d");
const video = document.getElementById("camera");
const rubber = document.getElementById("rubber");
const live = {
  seq: 0, shown: 0, frame: null, selected: null, over: false, state: null, camera: false,
  sent: 0, acked: 0, results: 0, latencies: [], lastResult: null,
};
window.streamsegLive = live;

const DRAG_PX = 6;
const STATE_MS = 500;
const LATENCY_WINDOW = 90;  // camera mode: results kept for the page's own p50 / p95
const JPEG_QUALITY = 0.8;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function setStatus(kind, text) {
  const status = document.getElementById("status");
  status.className = `status ${kind}`;
  status.textContent = text;
}

// ----- server source: one frame request at a time, so only the newest is ever fetched -------
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
    if (response.status !== 200) { if (response.status !== 204) await sleep(500); continue; }
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
  fitView(bitmap.width, bitmap.height);
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  // the picture and what it is change together: no script can see one without the other
  live.seq = seq;
  live.frame = frame;
  view.dataset.seq = String(seq);
  view.dataset.frame = String(frame);
}

function fitView(width, height) {
  if (view.width !== width || view.height !== height) {
    view.width = width;
    view.height = height;
    view.style.maxWidth = `calc((100vh - 7em) * ${width / height})`;  // fit the window
  }
}

// ----- browser camera ---------------------------------------------------------------------
async function cameraLoop(width, height) {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width, height }, audio: false });
  } catch (error) {
    setStatus("failed", `no camera: ${error.name}: ${error.message}` +
      (window.isSecureContext ? "" : " (cameras need HTTPS or http://localhost)"));
    live.over = true;
    return;
  }
  video.srcObject = stream;
  video.hidden = false;
  video.style.aspectRatio = `${width} / ${height}`;
  document.getElementById("stage").classList.add("camera");
  await video.play();
  fitView(width, height);
  document.getElementById("stage").style.maxWidth = view.style.maxWidth;  // video and masks
  view.style.maxWidth = "";
  context.clearRect(0, 0, width, height);
  const grab = new OffscreenCanvas(width, height);
  const grabContext = grab.getContext("2d");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/camera`);
  socket.binaryType = "blob";
  const sentAt = new Map();  // capture index -> performance.now() when its frame was grabbed
  let inFlight = null;  // grab time of the frame sent and not acknowledged yet
  let expectPng = null;

  socket.addEventListener("message", async (event) => {
    if (typeof event.data !== "string") {
      if (expectPng) await drawOverlay(event.data, expectPng, sentAt);
      expectPng = null;
      return;
    }
    const message = JSON.parse(event.data);
    if (message.type === "ack") {
      if (message.frame !== null) {
        sentAt.set(message.frame, inFlight);
        live.acked += 1;
        live.frame = message.frame;  // the newest frame the server has: clicks go on it
        if (sentAt.size > 256) sentAt.delete(sentAt.keys().next().value);
      }
      inFlight = null;
    } else if (message.type === "result") {
      expectPng = message;
    } else if (message.type === "error") {
      setStatus("failed", message.error);
    }
  });
  socket.addEventListener("close", () => { live.over = true; refreshState(); });
  await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));

  while (!live.over && socket.readyState === WebSocket.OPEN) {
    await new Promise((resolve) => requestAnimationFrame(resolve));
    if (inFlight !== null || socket.bufferedAmount > 0) continue;  // newest-frame-only
    inFlight = performance.now();
    grabContext.drawImage(video, 0, 0, width, height);
    const blob = await grab.convertToBlob({ type: "image/jpeg", quality: JPEG_QUALITY });
    socket.send(blob);
    live.sent += 1;
  }
}

async function drawOverlay(blob, result, sentAt) {
  const bitmap = await createImageBitmap(blob);
  context.clearRect(0, 0, view.width, view.height);
  context.drawImage(bitmap, 0, 0);
  bitmap.close();
  live.seq = result.seq;
  live.results += 1;
  live.lastResult = result;
  view.dataset.seq = String(result.seq);
  view.dataset.maskFrame = String(result.frame);
  const grabbed = sentAt.get(result.frame);
  if (grabbed !== undefined) {
    live.latencies.push(performance.now() - grabbed);
    if (live.latencies.length > LATENCY_WINDOW) live.latencies.shift();
  }
}

function percentile(values, q) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q / 100 * sorted.length))];
}

// ----- state: status, stats, objects --------------------------------------------------------
async function refreshState() {
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (!response.ok) {
      const reply = await response.json();
      setStatus("failed", reply.error || `the server says ${response.status}`);
      return null;
    }
    const state = await response.json();
    showState(state);
    return state;
  } catch (error) {
    setStatus("failed", "lost the connection to the streamseg live server");
    return null;
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
  if (state.rejected !== null && state.rejected === live.selected &&
      !state.objects.some((o) => o.id === live.selected)) {
    live.selected = null;  // its only prompt was rejected: it is no object
  }
  if (state.status === "running" && state.busy) setStatus("working", "working: applying the prompt…");
  else if (state.status === "running" && state.notice) setStatus("error", state.notice);
  else setStatus(state.status, state.status === "running" ? state.message : `${state.status}: ${state.message}`);
  const stats = state.stats;
  document.getElementById("fps").textContent = stats.fps.toFixed(1);
  document.getElementById("latency").textContent = `${ms(stats.latency_p50_ms)} / ${ms(stats.latency_p95_ms)}`;
  const display = live.camera
    ? [percentile(live.latencies, 50), percentile(live.latencies, 95)]
    : [stats.display_p50_ms, stats.display_p95_ms];
  document.getElementById("display").textContent = `${ms(display[0])} / ${ms(display[1])}`;
  document.getElementById("dropped").textContent = String(stats.dropped);
  document.getElementById("frames").textContent = `${stats.processed} / ${stats.captured}`;
  showObjects(state.objects);
}

// The list is updated in place (rows keyed by object id), never rebuilt under a click.
function showObjects(objects) {
  const list = document.getElementById("objects");
  const rows = objects.map((o) => ({ id: o.id, color: o.color, text: o.visible ? `${o.area} px` : "not visible" }));
  if (live.selected !== null && !objects.some((o) => o.id === live.selected)) {
    rows.push({ id: live.selected, color: null, text: "new: click on it" });
  }
  const wanted = new Set(rows.map((r) => String(r.id)));
  for (const item of [...list.children]) if (!wanted.has(item.dataset.obj)) item.remove();
  rows.forEach((row, index) => {
    let item = list.querySelector(`li[data-obj="${row.id}"]`);
    if (!item) item = objectRow(row.id);
    if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
    item.className = row.id === live.selected ? "selected" : "";
    item.querySelector(".swatch").style.background = row.color ? `rgb(${row.color.join(",")})` : "transparent";
    const text = `object ${row.id}: ${row.text}`;
    if (item.lastChild.textContent !== text) item.lastChild.textContent = text;
  });
}

function objectRow(id) {
  const item = document.createElement("li");
  item.dataset.obj = String(id);
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  item.append(swatch, document.createElement("span"));
  item.addEventListener("click", () => {
    live.selected = id;
    showObjects(live.state ? live.state.objects : []);
  });
  return item;
}

// ----- actions ------------------------------------------------------------------------------
async function post(path, body) {
  setStatus("working", "working: applying the prompt…");
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
  // the frame on screen as the button went down: the prompt is applied on that frame
  drag = { start: framePoint(event), button: event.button, shift: event.shiftKey, frame: live.frame };
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
  const { start, frame } = drag;
  const end = framePoint(event);
  const negative = drag.button === 2 || drag.shift;
  const isBox = drag.button === 0 && Math.hypot(end.cssX - start.cssX, end.cssY - start.cssY) >= DRAG_PX;
  drag = null;
  rubber.hidden = true;
  if (isBox) {
    post("/api/box", { obj: live.selected, box: [start.x, start.y, end.x, end.y], frame });
  } else {
    post("/api/click", { obj: live.selected, x: start.x, y: start.y, positive: !negative, frame });
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

async function start() {
  const state = await refreshState();
  if (state === null) return;
  live.camera = Boolean(state.camera);
  stateLoop();
  if (live.camera) cameraLoop(state.width, state.height);
  else frameLoop();
}

start();
