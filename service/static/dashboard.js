// Hebb live dashboard: vanilla JS, no dependencies (works offline).
// Data: GET /v1/dashboard/models (model list), GET /v1/models/{name}/events (server-sent events,
// read with fetch streaming so the API key can travel as an Authorization header), the PNG views,
// and POST predict / feedback for the drawing canvas.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "hebb.apiKey";
const RATE_HISTORY_SECONDS = 120;
const IMAGE_REFRESH_MS = 3000;

const state = {
  model: null,            // selected model name
  classes: 10,
  stream: null,           // AbortController of the open event stream
  last: null,             // latest snapshot
  rateHistory: [],        // [seconds since page load, samples/s]
  imagesStep: null,       // step the pictures were last fetched at
  imagesAt: 0,
  renderQueued: false,
};

// ------------------------------------------------------------------ HTTP
function authHeaders(extra = {}) {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = `${response.status}: ${(await response.json()).detail}`; } catch (_) { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response;
}

function setConnection(text, kind) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.state = kind;
}

// ------------------------------------------------------------------ model list
async function refreshModels() {
  let models;
  try {
    models = (await (await api("/v1/dashboard/models")).json()).models;
  } catch (error) {
    setConnection(error.status === 401 || error.status === 403 ? "API key needed" : "server unreachable", "error");
    return;
  }
  const select = $("model-select");
  const names = models.map((m) => m.name);
  if (select.dataset.names !== names.join("\n")) {
    select.dataset.names = names.join("\n");
    select.replaceChildren(...models.map((m) => new Option(`${m.name} (${m.preset})`, m.name)));
  }
  $("no-models").hidden = models.length > 0;
  const wanted = decodeURIComponent(location.hash.slice(1));
  const next = names.includes(state.model) ? state.model : names.includes(wanted) ? wanted : names[0] || null;
  if (next !== state.model) selectModel(next);
  if (next) select.value = next;
}

function selectModel(name) {
  state.model = name;
  state.last = null;
  state.rateHistory = [];
  state.imagesStep = null;
  state.imagesAt = 0;
  if (name) history.replaceState(null, "", `#${encodeURIComponent(name)}`);
  if (state.stream) state.stream.abort();
  state.stream = null;
  if (name) openStream(name);
  drawDigitPreview();
}

// ------------------------------------------------------------------ event stream
async function openStream(name) {
  const controller = new AbortController();
  state.stream = controller;
  while (!controller.signal.aborted) {
    try {
      const response = await api(`/v1/models/${encodeURIComponent(name)}/events`, { signal: controller.signal });
      setConnection("live", "live");
      await readEvents(response.body, controller.signal);
      // the server ends each stream after a while: reconnect at once
    } catch (error) {
      if (controller.signal.aborted) return;
      setConnection(error.status === 401 || error.status === 403 ? "API key needed"
        : error.status === 404 ? "model gone" : "reconnecting…", "error");
      if (error.status === 404) { refreshModels(); return; }
      await sleep(1000);
    }
  }
}

async function readEvents(body, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (event === "snapshot" && data.length) onSnapshot(JSON.parse(data.join("\n")));
      if (event === "error") { const e = new Error(JSON.parse(data.join("\n")).detail); e.status = 404; throw e; }
    }
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------ snapshot → page
function onSnapshot(snapshot) {
  if (snapshot.name !== state.model) return;
  state.last = snapshot;
  state.classes = snapshot.classes;
  const t = performance.now() / 1000;
  state.rateHistory.push([t, snapshot.samples_per_second]);
  while (state.rateHistory.length && state.rateHistory[0][0] < t - RATE_HISTORY_SECONDS) state.rateHistory.shift();
  // render at most once per animation frame, whatever the event rate
  if (!state.renderQueued) {
    state.renderQueued = true;
    requestAnimationFrame(() => { state.renderQueued = false; render(); });
  }
  maybeRefreshImages(snapshot);
}

const fmtInt = (v) => (v == null ? "–" : Number(v).toLocaleString("en-US"));
const fmtPct = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)}%`);
function fmtAge(seconds) {
  if (seconds == null) return "none yet";
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function render() {
  const s = state.last;
  if (!s) return;
  $("model-meta").textContent = `${s.preset} · ${s.status}`;
  $("stat-step").textContent = fmtInt(s.step);
  $("stat-samples").textContent = fmtInt(s.samples_seen);
  $("stat-labels").textContent = fmtInt(s.labels_seen);
  $("stat-rolling").textContent = fmtPct(s.rolling.accuracy);
  $("stat-accuracy").textContent = fmtPct(s.prequential_accuracy);
  $("stat-rate").textContent = fmtInt(Math.round(s.samples_per_second));
  $("stat-queue").textContent = fmtInt(s.queued_samples);
  $("stat-checkpoint").textContent = s.checkpoint ? fmtAge(s.checkpoint.age_seconds) : "none yet";
  $("acc-caption").textContent = `(over the last ${fmtInt(s.rolling.window)} labeled samples, against step)`;
  lineChart($("accuracy-chart"), s.curve, { yMin: 0, yMax: 1, color: "#5fd38d", yFormat: (v) => `${Math.round(v * 100)}%`,
    xFormat: (v) => fmtShort(v) });
  const t0 = state.rateHistory.length ? state.rateHistory[state.rateHistory.length - 1][0] : 0;
  lineChart($("rate-chart"), state.rateHistory.map(([t, r]) => [t - t0, r]),
    { yMin: 0, color: "#4fb3ff", yFormat: fmtShort, xFormat: (v) => `${Math.round(v)} s` });
  renderLayers(s.layers);
  renderConfusion(s.confusion);
  $("confusion-caption").textContent = `(last ${fmtInt(s.rolling.window)} labeled samples)`;
}

function fmtShort(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return `${Math.round(v)}`;
}

// ------------------------------------------------------------------ canvas helpers
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return [ctx, canvas.clientWidth, canvas.clientHeight];
}

function lineChart(canvas, points, { yMin = 0, yMax = null, color, yFormat, xFormat }) {
  const [ctx, w, h] = fitCanvas(canvas);
  canvas.dataset.points = String(points.length);
  ctx.clearRect(0, 0, w, h);
  const left = 44, bottom = 20, top = 8, right = 8;
  const pw = w - left - right, ph = h - top - bottom;
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#8b94a3";
  ctx.strokeStyle = "#2a3038";
  ctx.lineWidth = 1;
  if (!points.length) { ctx.fillText("waiting for data…", left + 8, top + 16); return; }
  const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x1 === x0) x1 = x0 + 1;
  const y0 = yMin, y1 = yMax ?? Math.max(1, ...ys) * 1.1;
  const X = (v) => left + ((v - x0) / (x1 - x0)) * pw;
  const Y = (v) => top + ph - ((v - y0) / (y1 - y0)) * ph;
  for (let i = 0; i <= 4; i++) {
    const v = y0 + ((y1 - y0) * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, Y(v)); ctx.lineTo(w - right, Y(v)); ctx.stroke();
    ctx.textAlign = "right"; ctx.fillText(yFormat(v), left - 4, Y(v) + 4);
  }
  ctx.textAlign = "center";
  for (let i = 0; i <= 4; i++) {
    const v = x0 + ((x1 - x0) * i) / 4;
    ctx.fillText(xFormat(v), Math.min(Math.max(X(v), left + 12), w - right - 14), h - 5);
  }
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
  ctx.stroke();
}

function renderLayers(layers) {
  const box = $("layers");
  if (!layers) { box.textContent = "waiting for the learner…"; return; }
  if (box.children.length !== layers.length || !box.querySelector("canvas")) {
    box.replaceChildren(...layers.map(() => {
      const div = document.createElement("div");
      div.className = "layer";
      div.innerHTML = '<div class="numbers"></div><canvas></canvas>';
      return div;
    }));
  }
  layers.forEach((layer, i) => {
    const div = box.children[i];
    div.querySelector(".numbers").textContent =
      `layer ${i + 1}: ${layer.channels} units · dead ${fmtPct(layer.dead_fraction)} · ` +
      `win-rate entropy ${layer.win_rate_entropy.toFixed(3)} · mean weight norm ${layer.mean_weight_norm.toFixed(3)}`;
    histogram(div.querySelector("canvas"), layer.win_rates.map((r) => r * layer.channels));
  });
}

function histogram(canvas, values) {
  const [ctx, w, h] = fitCanvas(canvas);
  ctx.clearRect(0, 0, w, h);
  const bins = 16, maxValue = 4;        // relative win rate 0..4, the last bin also holds anything above
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v / maxValue) * bins))]++;
  const top = Math.max(...counts, 1), bottom = 14, bw = w / bins;
  ctx.font = "10px system-ui, sans-serif";
  counts.forEach((c, i) => {
    const bh = ((h - bottom - 2) * c) / top;
    ctx.fillStyle = i === 0 ? "#ff6b6b" : "#4fb3ff";
    ctx.fillRect(i * bw + 1, h - bottom - bh, bw - 2, bh);
  });
  ctx.fillStyle = "#8b94a3";
  ctx.textAlign = "left"; ctx.fillText("0", 1, h - 2);
  ctx.textAlign = "center"; ctx.fillText("1×", w / 4, h - 2);
  ctx.textAlign = "right"; ctx.fillText(`≥${maxValue}× fair share`, w - 1, h - 2);
}

function renderConfusion(matrix) {
  const canvas = $("confusion");
  const [ctx, w] = fitCanvas(canvas);
  ctx.clearRect(0, 0, w, w);
  if (!matrix) { ctx.fillStyle = "#8b94a3"; ctx.fillText("too many classes to draw", 10, 20); return; }
  const n = matrix.length, pad = 18, cell = (w - pad) / n;
  ctx.font = `${Math.max(8, Math.min(12, cell / 3))}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  for (let r = 0; r < n; r++) {
    const total = matrix[r].reduce((a, b) => a + b, 0) || 1;
    for (let c = 0; c < n; c++) {
      const share = matrix[r][c] / total;
      ctx.fillStyle = r === c ? `rgba(95, 211, 141, ${0.08 + 0.92 * share})` : `rgba(255, 107, 107, ${share ? 0.15 + 0.85 * share : 0.03})`;
      ctx.fillRect(pad + c * cell + 0.5, pad + r * cell + 0.5, cell - 1, cell - 1);
      if (n <= 12 && matrix[r][c]) {
        ctx.fillStyle = "#e6e9ee";
        ctx.fillText(String(matrix[r][c]), pad + (c + 0.5) * cell, pad + (r + 0.5) * cell + 4);
      }
    }
    ctx.fillStyle = "#8b94a3";
    if (n <= 20) { ctx.fillText(String(r), pad / 2, pad + (r + 0.5) * cell + 4); ctx.fillText(String(r), pad + (r + 0.5) * cell, 12); }
  }
}

// ------------------------------------------------------------------ pictures
async function maybeRefreshImages(snapshot) {
  const now = performance.now();
  if (state.imagesBusy || snapshot.step === state.imagesStep || now - state.imagesAt < IMAGE_REFRESH_MS) return;
  state.imagesBusy = true;
  state.imagesAt = now;
  const name = snapshot.name;
  try {
    await Promise.all([loadImage($("filters-img"), `/v1/models/${encodeURIComponent(name)}/filters.png`),
                       loadImage($("units-img"), `/v1/models/${encodeURIComponent(name)}/units.png`)]);
    state.imagesStep = snapshot.step;
  } catch (_) {
    // shown again at the next refresh
  } finally {
    state.imagesBusy = false;
  }
}

async function loadImage(img, path) {
  const blob = await (await api(path)).blob();   // fetched (not img.src) so the API key goes in a header
  const url = URL.createObjectURL(blob);
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = reject;
    const old = img.src;
    img.src = url;
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
  });
}

// ------------------------------------------------------------------ drawing canvas
const draw = { drawing: false, last: null, inFlight: false, pending: false, pixels: null, inked: false };

function setupDrawing() {
  const canvas = $("draw-canvas");
  const ctx = canvas.getContext("2d");
  clearDrawing();
  const point = (e) => {
    const rect = canvas.getBoundingClientRect();
    return [((e.clientX - rect.left) * canvas.width) / rect.width, ((e.clientY - rect.top) * canvas.height) / rect.height];
  };
  canvas.addEventListener("pointerdown", (e) => {
    draw.drawing = true;
    draw.last = point(e);
    canvas.setPointerCapture(e.pointerId);
    stroke(ctx, draw.last, draw.last);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!draw.drawing) return;
    const p = point(e);
    stroke(ctx, draw.last, p);
    draw.last = p;
  });
  const end = () => { if (draw.drawing) { draw.drawing = false; requestPrediction(); } };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("draw-clear").addEventListener("click", clearDrawing);
  $("feedback-send").addEventListener("click", sendFeedback);
}

function stroke(ctx, from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 22;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
  draw.inked = true;
  requestPrediction();      // as the person draws
}

function clearDrawing() {
  const canvas = $("draw-canvas");
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  draw.inked = false;
  draw.pixels = null;
  $("prediction-label").textContent = "–";
  $("probabilities").replaceChildren();
  $("feedback-send").disabled = true;
  $("feedback-status").textContent = "";
  delete $("feedback-label").dataset.touched;   // the next drawing proposes its own prediction again
  drawDigitPreview();
}

// MNIST-like preprocessing: crop the ink, scale it (area averaging, aspect kept) into a 20×20 box,
// then place it on 28×28 so that its centre of mass sits at the centre. White ink on black, 0–255.
function mnistPixels(canvas) {
  const { width, height } = canvas;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  let x0 = width, y0 = height, x1 = -1, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (rgba[(y * width + x) * 4] > 0) {
        if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) return null;
  const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
  const scale = 20 / Math.max(bw, bh);
  const tw = Math.max(1, Math.round(bw * scale)), th = Math.max(1, Math.round(bh * scale));
  const sum = new Float64Array(tw * th), count = new Float64Array(tw * th);
  for (let y = y0; y <= y1; y++) {
    const ty = Math.min(th - 1, Math.floor((y - y0) * scale));
    for (let x = x0; x <= x1; x++) {
      const tx = Math.min(tw - 1, Math.floor((x - x0) * scale));
      sum[ty * tw + tx] += rgba[(y * width + x) * 4];
      count[ty * tw + tx] += 1;
    }
  }
  let mass = 0, mx = 0, my = 0;
  const small = new Float64Array(tw * th);
  for (let i = 0; i < tw * th; i++) {
    small[i] = count[i] ? sum[i] / count[i] : 0;
    mass += small[i]; mx += small[i] * (i % tw); my += small[i] * Math.floor(i / tw);
  }
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  // pixel i covers [i, i+1): its centre is i + 0.5, and the image centre is 14
  const ox = clamp(Math.round(13.5 - mx / mass), 0, 28 - tw), oy = clamp(Math.round(13.5 - my / mass), 0, 28 - th);
  const pixels = new Array(784).fill(0);
  for (let y = 0; y < th; y++) {
    for (let x = 0; x < tw; x++) pixels[(y + oy) * 28 + x + ox] = Math.round(clamp(small[y * tw + x], 0, 255));
  }
  return pixels;
}

function drawDigitPreview() {
  const preview = $("draw-preview");
  const ctx = preview.getContext("2d");
  const image = ctx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = draw.pixels ? draw.pixels[i] : 0;
    image.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
}

// at most one predict request in flight; strokes made meanwhile trigger one more afterwards
async function requestPrediction() {
  if (!state.model || !draw.inked) return;
  if (draw.inFlight) { draw.pending = true; return; }
  draw.inFlight = true;
  try {
    do {
      draw.pending = false;
      draw.pixels = mnistPixels($("draw-canvas"));
      drawDigitPreview();
      if (!draw.pixels) return;
      const response = await api(`/v1/models/${encodeURIComponent(state.model)}/predict`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ inputs: [{ x: draw.pixels }], store: false }),
      });
      showPrediction((await response.json()).predictions[0]);
    } while (draw.pending);
  } catch (error) {
    $("feedback-status").textContent = `prediction failed (${error.message})`;
  } finally {
    draw.inFlight = false;
  }
}

function showPrediction(prediction) {
  $("prediction-label").textContent = String(prediction.label);
  const probabilities = prediction.probabilities;
  $("probabilities").replaceChildren(...probabilities.map((p, i) => {
    const row = document.createElement("div");
    row.className = `row${i === prediction.label ? " top" : ""}`;
    row.innerHTML = `<span>${i}</span><span class="bar" style="width:${Math.max(1, Math.round(p * 110))}px"></span>` +
      `<span>${(100 * p).toFixed(1)}%</span>`;
    return row;
  }));
  const select = $("feedback-label");
  if (select.options.length !== probabilities.length) {
    select.replaceChildren(...probabilities.map((_, i) => new Option(String(i), String(i))));
  }
  if (!select.dataset.touched) select.value = String(prediction.label);
  $("feedback-send").disabled = false;
}

// feedback needs a stored prediction: predict once more with store=true, then send the label
async function sendFeedback() {
  if (!state.model || !draw.pixels) return;
  const label = Number($("feedback-label").value);
  const base = `/v1/models/${encodeURIComponent(state.model)}`;
  $("feedback-send").disabled = true;
  try {
    const stored = (await (await api(`${base}/predict`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ inputs: [{ x: draw.pixels }], store: true }),
    })).json()).predictions[0];
    const result = await (await api(`${base}/feedback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ prediction_id: stored.prediction_id, label }),
    })).json();
    $("feedback-status").textContent = `learned as ${result.label} (it predicted ${result.predicted}) at step ${fmtInt(result.step)}`;
  } catch (error) {
    $("feedback-status").textContent = `feedback failed (${error.message})`;
    $("feedback-send").disabled = false;
  }
}

// ------------------------------------------------------------------ start
function start() {
  const keyInput = $("api-key");
  keyInput.value = localStorage.getItem(KEY_STORAGE) || "";
  keyInput.addEventListener("change", () => {
    const key = keyInput.value.trim();
    if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
    const current = state.model;
    state.model = null;          // reconnect everything with the new key
    refreshModels().then(() => { if (!state.model && current) selectModel(current); });
  });
  $("model-select").addEventListener("change", (e) => selectModel(e.target.value));
  $("feedback-label").replaceChildren(...Array.from({ length: 10 }, (_, i) => new Option(String(i), String(i))));
  $("feedback-label").addEventListener("change", (e) => { e.target.dataset.touched = "1"; });
  setupDrawing();
  refreshModels();
  setInterval(refreshModels, 5000);
  window.addEventListener("resize", render);
}

start();
