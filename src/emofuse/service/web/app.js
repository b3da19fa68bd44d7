// emofuse web page: upload / record / type, POST /v1/predict, draw the answer. No external code.
"use strict";

const COLORS = ["#8c96a0", "#6aa5d8", "#f2b134", "#4c6fb0", "#d64541", "#8e5ea2", "#4d9a52", "#e07b39",
                "#3bb3a6", "#b35c8a"];
const $ = (id) => document.getElementById(id);
let model = null;      // GET /v1/models
let recorder = null;   // the running MediaRecorder

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearOutput() {
  $("error").hidden = true;
  $("result").hidden = true;
}

function percent(p) { return (100 * p).toFixed(1) + " %"; }

function bars(container, values, top) {
  container.replaceChildren();
  for (const [name, value] of Object.entries(values)) {
    const label = document.createElement("span");
    const track = document.createElement("div");
    const fill = document.createElement("div");
    const shown = document.createElement("span");
    label.className = "name"; label.textContent = name;
    track.className = "track";
    fill.className = "fill";
    fill.style.width = Math.max(0, Math.min(100, 100 * value)).toFixed(1) + "%";
    track.appendChild(fill);
    shown.className = "value"; shown.textContent = percent(value);
    for (const el of [label, track, shown]) {
      if (name === top) el.classList.add("top");
      container.appendChild(el);
    }
  }
}

function describeModel(info) {
  const m = info.model;
  const faces = m.reads_faces ? ", faces in video" : "";
  const text = m.reads_text ? ", text" : "";
  $("model-summary").textContent = `Model ${m.recipe || m.folder}: ${m.labels.length} emotions ` +
    `(${m.labels.join(", ")}) from ${m.modalities.join(" + ")}${faces}${text}. ` +
    `Uploads up to ${(info.limits.max_upload_bytes / 1e6).toFixed(0)} MB and ${info.limits.max_duration_s} s.`;
  $("record-cam").hidden = !m.reads_faces;
  $("timeline-option").hidden = !info.timeline;
  $("text-note").textContent = m.reads_text
    ? "Sent with the file, or alone with the button below."
    : "This model reads no text: a text alone is refused, and with a file it is ignored.";
}

async function loadModel() {
  try {
    const response = await fetch("/v1/models");
    model = await response.json();
    describeModel(model);
  } catch (err) {
    $("model-summary").textContent = "Could not load the model description: " + err;
  }
}

function mediaDuration(file) {
  // the browser's own reading of the file's duration (NaN when it cannot tell), to offer a timeline
  return new Promise((resolve) => {
    const el = document.createElement(file.type.startsWith("video") ? "video" : "audio");
    const url = URL.createObjectURL(file);
    const done = (value) => { URL.revokeObjectURL(url); resolve(value); };
    el.preload = "metadata";
    el.onloadedmetadata = () => done(el.duration);
    el.onerror = () => done(NaN);
    setTimeout(() => done(NaN), 1500);
    el.src = url;
  });
}

async function send(file, text) {
  clearOutput();
  if (file && model && file.size > model.limits.max_upload_bytes) {
    showError(`${file.name}: the file is ${(file.size / 1e6).toFixed(1)} MB, more than the limit of ` +
              `${(model.limits.max_upload_bytes / 1e6).toFixed(0)} MB`);
    return;
  }
  const form = new FormData();
  if (file) form.append("file", file, file.name || "recording");
  if (text) form.append("text", text);
  const query = new URLSearchParams({ explain: "true" });
  if (file && model && model.timeline) {
    const seconds = await mediaDuration(file);
    if (seconds > 20 && seconds < Infinity) $("timeline").checked = true;
    if ($("timeline").checked) {
      const w = Number($("window").value) || 2;
      query.set("segments", `${w}:${Math.max(0.1, w / 2)}`);
    }
  }
  $("busy").hidden = false;
  try {
    const response = await fetch("/v1/predict?" + query, { method: "POST", body: form });
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      const e = body && body.error;
      const why = e ? e.message : `${response.status} ${response.statusText}`;
      const retry = response.headers.get("Retry-After");
      showError(`Error ${response.status}: ${why}` + (retry ? ` (try again in ${retry} s)` : ""));
      return;
    }
    show(body);
  } catch (err) {
    showError("The request failed: " + err.message);
  } finally {
    $("busy").hidden = true;
  }
}

function show(body) {
  if (body.timeline) return showTimeline(body);
  $("label").textContent = body.label;
  $("confidence").textContent = body.confidence == null ? "" : `(${percent(body.confidence)})`;
  const notes = [];
  if (body.status === "uncertain") notes.push("uncertain: below the model's confidence threshold, a best guess");
  if (body.input) notes.push(`${body.input.filename}: ${body.input.format}` +
    (body.input.duration_s ? `, ${body.input.duration_s.toFixed(1)} s` : ""));
  notes.push("used: " + body.modalities_used.join(" + "));
  if (body.timings_ms) notes.push(`${body.timings_ms.predict.toFixed(0)} ms`);
  $("meta").textContent = notes.join(" · ");
  bars($("probs"), body.probabilities, body.label);
  $("weights-block").hidden = !body.modality_weights;
  if (body.modality_weights) bars($("weights"), body.modality_weights, null);
  $("faces-block").hidden = !body.face_crops_png;
  if (body.face_crops_png) $("faces").src = body.face_crops_png;
  $("timeline-block").hidden = true;
  $("transcript").textContent = body.transcript ? `Transcript (${body.transcript_source}): “${body.transcript}”` : "";
  fillWarnings(body.warnings || []);
  $("result").hidden = false;
}

function fillWarnings(list) {
  $("warnings").replaceChildren(...list.map((w) => { const li = document.createElement("li"); li.textContent = w; return li; }));
}

function showTimeline(body) {
  const tl = body.timeline;
  const answered = tl.segments.filter((s) => s.label);
  const mean = {};
  for (const lab of tl.labels) mean[lab] = answered.reduce((a, s) => a + s.probabilities[lab], 0) / answered.length;
  const top = tl.labels.reduce((a, b) => (mean[a] >= mean[b] ? a : b));
  $("label").textContent = top;
  $("confidence").textContent = "(mean over the timeline)";
  $("meta").textContent = `${body.filename}: ${tl.duration.toFixed(1)} s, ${tl.segments.length} windows of ` +
    `${tl.window} s every ${tl.hop} s, ${answered.length} with a label`;
  bars($("probs"), mean, top);
  $("weights-block").hidden = true;
  $("faces-block").hidden = true;
  const strip = $("timeline-strip");
  strip.replaceChildren();
  const total = Math.max(tl.duration, 1e-6);
  tl.segments.forEach((s, i) => {
    const cell = document.createElement("div");
    const end = i + 1 < tl.segments.length ? Math.min(s.end, tl.segments[i + 1].start) : s.end;
    cell.className = "cell";
    cell.style.left = (100 * s.start / total) + "%";
    cell.style.width = (100 * Math.max(end - s.start, 0) / total) + "%";
    cell.style.background = s.label ? COLORS[tl.labels.indexOf(s.label) % COLORS.length] : "transparent";
    cell.title = `${s.start.toFixed(1)}-${s.end.toFixed(1)} s: ${s.label || s.status}`;
    strip.appendChild(cell);
  });
  $("timeline-axis").replaceChildren(...["0 s", `${(total / 2).toFixed(0)} s`, `${total.toFixed(0)} s`].map((t) => {
    const span = document.createElement("span"); span.textContent = t; return span; }));
  $("legend").replaceChildren(...tl.labels.map((lab, k) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch"; swatch.style.background = COLORS[k % COLORS.length];
    item.append(swatch, lab);
    return item;
  }));
  $("timeline-block").hidden = false;
  $("transcript").textContent = "";
  fillWarnings([]);
  $("result").hidden = false;
}

async function record(button, constraints, name) {
  if (recorder) { recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    showError("Recording needs a browser with MediaRecorder, on https or localhost.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    showError("Cannot record: " + err.message);
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  const preview = $("preview");
  if (constraints.video) { preview.srcObject = stream; preview.hidden = false; preview.play(); }
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    preview.hidden = true; preview.srcObject = null;
    button.classList.remove("recording");
    button.textContent = button.dataset.label;
    $("rec-status").textContent = "";
    const type = recorder.mimeType || (constraints.video ? "video/webm" : "audio/webm");
    recorder = null;
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "mp4" : "webm";
    send(new File(chunks, `${name}.${ext}`, { type }), $("text").value.trim());
  };
  recorder.start();
  button.dataset.label = button.textContent;
  button.textContent = "Stop and predict";
  button.classList.add("recording");
  $("rec-status").textContent = "Recording…";
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    if (file) send(file, $("text").value.trim());
    e.target.value = "";
  });
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const kind of ["dragleave", "drop"]) {
    drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.remove("over"); });
  }
  drop.addEventListener("drop", (e) => {
    const file = e.dataTransfer.files[0];
    if (file) send(file, $("text").value.trim());
  });
  $("send-text").addEventListener("click", () => {
    const text = $("text").value.trim();
    if (!text) { showError("Type a text first, or choose a file."); return; }
    send(null, text);
  });
  $("record-mic").addEventListener("click", (e) => record(e.currentTarget, { audio: true }, "microphone"));
  $("record-cam").addEventListener("click", (e) => record(e.currentTarget, { audio: true, video: true }, "webcam"));
  loadModel();
}

document.addEventListener("DOMContentLoaded", setup);
