// The web console of vecsim serve (docs/console.md). Plain JavaScript, no build step, nothing
// loaded from elsewhere: it calls this service's /api/v2 endpoints with the key the user typed
// (kept in sessionStorage: this tab only) and draws what they answer. Every value from the
// service reaches the page through textContent or an attribute, never as markup.
"use strict";

(() => {
  const API = "api/v2"; // relative to the page: works behind a proxy's path prefix too
  const KEY_SLOT = "vecsim.console.key";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);

  // --- small DOM helpers ------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  const fixed = (x, digits = 3) => (typeof x === "number" ? x.toFixed(digits) : "–");
  const seconds = (x) => (typeof x === "number" ? `${x.toFixed(x >= 100 ? 0 : 1)} s` : "–");
  const percent = (x) => `${Math.round(x * 100)} %`;
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;

  function setStatus(node, text, kind) {
    node.textContent = text;
    node.classList.toggle("error", kind === "error");
    node.classList.toggle("ok", kind === "ok");
  }

  // --- the API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, requestId) {
      super(message);
      this.status = status;
      this.code = code;
      this.requestId = requestId;
    }

    describe() {
      const where = this.status ? `HTTP ${this.status} ${this.code}` : this.code;
      return `${this.message} (${where}${this.requestId ? `, request ${this.requestId}` : ""})`;
    }
  }

  /** Calls the service; resolves to its JSON body, or rejects with an ApiError holding the
   * service's error code and message (the documented error body). */
  async function api(method, path, { body, query, key } = {}) {
    const url = new URL(API + path, document.baseURI);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
    }
    const token = key || sessionStorage.getItem(KEY_SLOT);
    let response;
    try {
      response = await fetch(url, {
        method, body, cache: "no-store", credentials: "omit",
        headers: token ? { Authorization: `Token ${token}` } : {},
      });
    } catch (err) {
      throw new ApiError(0, "network_error", `the service did not answer: ${err.message}`, "");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && data.error;
      throw new ApiError(response.status, detail ? detail.code : `http_${response.status}`,
        detail ? detail.message : `the service answered ${response.status} ${response.statusText}`,
        (data && data.request_id) || response.headers.get("x-request-id") || "");
    }
    if (data === null) throw new ApiError(response.status, "bad_answer", "the service's answer is not JSON", "");
    return data;
  }

  /** api() for the logged-in views: a 401 (the key was revoked meanwhile) logs out, saying why. */
  async function call(method, path, options) {
    try {
      return await api(method, path, options);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) logout(err.describe());
      throw err;
    }
  }

  function showError(node, err) {
    setStatus(node, err instanceof ApiError ? err.describe() : String(err.message || err), "error");
  }

  // --- log in / out -----------------------------------------------------------------------------

  const state = {
    querySeq: 0, listSeq: 0, queryFile: null, addFile: null, cursors: [null], next: null, preview: null,
  };

  async function login(key, quiet) {
    const button = $("login-button");
    button.disabled = true;
    setStatus($("login-error"), quiet ? "" : "Checking the key…");
    let info;
    try { // the project's view of the index: a read that checks the key and names its project
      info = (await api("GET", "/custom_index/info", { key })).output;
    } catch (err) {
      sessionStorage.removeItem(KEY_SLOT);
      showError($("login-error"), err);
      $("key").focus();
      return;
    } finally {
      button.disabled = false;
    }
    sessionStorage.setItem(KEY_SLOT, key);
    setStatus($("login-error"), "");
    $("key").value = "";
    $("login").hidden = true;
    $("workspace").hidden = false;
    $("logout").hidden = false;
    $("who").hidden = false;
    showInfo(info);
    $("query-file").focus();
    state.cursors = [null];
    loadAssets();
  }

  function logout(reason) {
    sessionStorage.removeItem(KEY_SLOT);
    $("workspace").hidden = true;
    $("logout").hidden = true;
    $("who").hidden = true;
    $("login").hidden = false;
    $("query-results").replaceChildren();
    $("assets-rows").replaceChildren();
    setStatus($("query-status"), "");
    setStatus($("login-error"), reason || "", reason ? "error" : undefined);
    clearPreview();
    $("key").focus();
  }

  function showInfo(info) {
    const project = info.project ? `Project ${info.project}` : "The default project";
    $("who").textContent = `${project} · ${plural(info.assets, "asset")} · ${info.engine}`;
  }

  async function loadInfo() {
    try {
      showInfo((await call("GET", "/custom_index/info")).output);
    } catch (err) {
      // the header keeps what it showed; the action that changed the counts reported its own result
    }
  }

  // --- choosing media: file input, drop, paste ---------------------------------------------------

  function describeFile(file) {
    const size = file.size >= 1 << 20 ? `${(file.size / (1 << 20)).toFixed(1)} MB` : `${Math.ceil(file.size / 1024)} kB`;
    return `${file.name || "pasted file"} (${file.type || "unknown type"}, ${size})`;
  }

  function chooseQueryFile(file) {
    state.queryFile = file;
    $("query-chosen").textContent = file ? `Chosen: ${describeFile(file)}` : "";
    if (file) $("query-url").value = "";
    showPreview(file);
  }

  function chooseAddFile(file) {
    state.addFile = file;
    $("add-chosen").textContent = file ? `Chosen: ${describeFile(file)}` : "";
    if (file) $("add-url").value = "";
  }

  function clearPreview() {
    if (state.preview) URL.revokeObjectURL(state.preview);
    state.preview = null;
    $("query-preview").replaceChildren();
    $("query-preview").hidden = true;
  }

  function showPreview(file) {
    clearPreview();
    if (!file || !/^(image|video)\//.test(file.type)) return;
    state.preview = URL.createObjectURL(file);
    const media = file.type.startsWith("video/")
      ? el("video", { src: state.preview, controls: true, muted: true, preload: "metadata" })
      : el("img", { src: state.preview, alt: `The query: ${file.name || "pasted image"}` });
    $("query-preview").append(media, el("figcaption", { text: file.name || "pasted file" }));
    $("query-preview").hidden = false;
  }

  function wireDrop(zoneId, inputId, onFile) {
    const zone = $(zoneId);
    const input = $(inputId);
    input.addEventListener("change", () => onFile(input.files[0] || null, true));
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      const file = event.dataTransfer.files[0];
      if (file) onFile(file, true);
    });
  }

  function isTextField(node) {
    return node instanceof HTMLTextAreaElement
      || (node instanceof HTMLInputElement && !["file", "button", "submit", "checkbox"].includes(node.type));
  }

  function onPaste(event) {
    if ($("workspace").hidden || isTextField(event.target)) return;
    const inAdd = $("add").contains(event.target);
    const file = event.clipboardData.files[0];
    const text = event.clipboardData.getData("text/plain").trim();
    if (file) {
      event.preventDefault();
      if (inAdd) chooseAddFile(file);
      else { chooseQueryFile(file); runQuery(); }
    } else if (/^https?:\/\//i.test(text)) {
      event.preventDefault();
      if (inAdd) { chooseAddFile(null); $("add-url").value = text; }
      else { chooseQueryFile(null); $("query-url").value = text; runQuery(); }
    }
  }

  // --- query ------------------------------------------------------------------------------------

  function queryForm() {
    const form = new FormData();
    const url = $("query-url").value.trim();
    if (state.queryFile) form.append("media", state.queryFile, state.queryFile.name || "pasted");
    else if (url) form.append("url", url);
    else return null;
    const topK = $("query-topk").value.trim();
    const threshold = $("query-threshold").value.trim();
    if (topK) form.append("top_k", topK);
    if (threshold) form.append("threshold", threshold);
    return form;
  }

  async function runQuery() {
    const statusNode = $("query-status");
    const form = queryForm();
    if (!form) {
      setStatus(statusNode, "Choose, drop or paste an image or video, or give its URL, first.", "error");
      return;
    }
    const seq = ++state.querySeq;
    const started = performance.now();
    const results = $("query-results");
    results.setAttribute("aria-busy", "true");
    $("query-button").disabled = true;
    setStatus(statusNode, "Searching…");
    try {
      const answer = await call("POST", "/custom_index/query/sync", { body: form });
      if (seq !== state.querySeq) return; // a newer query was started meanwhile
      renderQuery(answer, (performance.now() - started) / 1000);
    } catch (err) {
      if (seq !== state.querySeq) return;
      results.replaceChildren();
      showError(statusNode, err);
    } finally {
      if (seq === state.querySeq) {
        results.setAttribute("aria-busy", "false");
        $("query-button").disabled = false;
      }
    }
  }

  function renderQuery(answer, elapsed) {
    const q = answer.query || {};
    const matches = answer.output || [];
    const what = q.media_type === "video"
      ? `a video of ${seconds(q.duration)}, ${plural(q.query_frames, "frame")} sampled` : "an image";
    const found = matches.length
      ? `${plural(matches.length, "match", "matches")} for ${q.source} (${what}) in ${elapsed.toFixed(1)} s`
      : `No asset of this project matches ${q.source} (${what}) at threshold ${$("query-threshold").value || 0.5}`;
    setStatus($("query-status"), found, matches.length ? "ok" : undefined);
    const cards = matches.map((m, i) => matchCard(m, i + 1, q));
    for (const warning of q.warnings || []) cards.unshift(el("p", { className: "warning", text: `Warning: ${warning}` }));
    $("query-results").replaceChildren(...cards);
    matches.forEach((m, i) => { if (m.media_type === "video") drawWholeAsset(m, q, cards[cards.length - matches.length + i]); });
  }

  /** A video asset's timeline first spans what the matches show of it; once the asset's duration
   * is read (GET asset/{task_id}), it is drawn again over the whole asset. */
  async function drawWholeAsset(m, q, card) {
    const seq = state.querySeq;
    let asset;
    try {
      asset = (await call("GET", `/custom_index/asset/${encodeURIComponent(m.task_id)}`)).output;
    } catch (err) {
      return; // e.g. removed meanwhile: the timeline drawn from the matches stays
    }
    const old = card.querySelector(".timeline-figure");
    if (seq === state.querySeq && old && asset.duration > 0) old.replaceWith(timeline(m, q, asset.duration));
  }

  function scoreRow(label, value, shown) {
    return el("div", { className: "score" },
      el("dt", { text: label }),
      el("dd", {},
        el("meter", { min: 0, max: 1, value: Math.max(0, Math.min(1, value)), "aria-hidden": "true" }),
        el("span", { className: "value", text: shown })));
  }

  function matchCard(m, rank, q) {
    const best = Math.max(0, ...m.matches.map((x) => x.similarity_score));
    const exact = Math.max(0, ...m.matches.map((x) => x.exact_score));
    const titleId = `match-${rank}`;
    const card = el("article", { className: "match", "aria-labelledby": titleId, "data-task-id": m.task_id },
      el("header", {},
        el("h3", { id: titleId },
          el("span", { className: "rank", text: `${rank}.` }), " ",
          el("span", { className: "task-id", text: m.task_id })),
        el("span", { className: "badge", text: m.media_type })),
      el("dl", { className: "scores" },
        scoreRow("Score", m.score, fixed(m.score)),
        scoreRow("Best similarity", best, fixed(best)),
        scoreRow("Best exact (PDQ)", exact, fixed(exact)),
        scoreRow("Matched ratio", m.matched_ratio, percent(m.matched_ratio)),
        el("div", { className: "score" }, el("dt", { text: "Longest segment" }),
          el("dd", {}, el("span", { className: "value", text: seconds(m.longest_segment_seconds) })))));
    const meta = Object.keys(m.metadata || {}).length
      ? el("pre", { className: "metadata", text: JSON.stringify(m.metadata, null, 2) })
      : el("p", { className: "hint", text: "no metadata" });
    card.append(el("div", { className: "meta-block" }, el("h4", { text: "Metadata" }), meta));
    if (q.media_type === "video" || m.media_type === "video") card.append(timeline(m, q));
    card.append(matchTable(m));
    return card;
  }

  /** The matched segments as an inline SVG: the query's seconds on the upper track, the asset's
   * on the lower one, one bar on each per segment, joined by a band. */
  function timeline(m, q, assetDuration) {
    const W = 640, H = 118, L = 64, R = 12, QY = 18, AY = 78, BAR = 16;
    const qEnd = Math.max(1, q.duration || 0, ...m.segments.map((s) => s.query_end),
      ...m.matches.map((x) => x.query_timestamp + 1));
    const aEnd = Math.max(1, assetDuration || 0, ...m.segments.map((s) => s.match_end),
      ...m.matches.map((x) => x.matching_timestamp + 1));
    const qx = (t) => L + (W - L - R) * (t / qEnd);
    const ax = (t) => L + (W - L - R) * (t / aEnd);
    const described = m.segments.map((s) => `query ${seconds(s.query_start)}–${seconds(s.query_end)} matches asset `
      + `${seconds(s.match_start)}–${seconds(s.match_end)} (score ${fixed(s.score)})`);
    const chart = svg("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "timeline", role: "img",
      "aria-label": `Timeline of ${m.task_id}: ${described.join("; ") || "no segments"}`,
    });
    chart.append(
      svg("text", { x: 0, y: QY + 12, class: "axis-label", text: "query" }),
      svg("text", { x: 0, y: AY + 12, class: "axis-label", text: "asset" }),
      svg("rect", { x: L, y: QY, width: W - L - R, height: BAR, class: "track" }),
      svg("rect", { x: L, y: AY, width: W - L - R, height: BAR, class: "track" }));
    for (const [end, y, x] of [[qEnd, QY - 4, qx], [aEnd, AY + BAR + 14, ax]]) {
      for (const t of ticks(end)) {
        chart.append(svg("text", { x: x(t), y, class: "tick", "text-anchor": "middle", text: `${t}s` }));
      }
    }
    m.segments.forEach((s, i) => {
      const q0 = qx(s.query_start), q1 = Math.max(qx(s.query_end), q0 + 2);
      const a0 = ax(s.match_start), a1 = Math.max(ax(s.match_end), a0 + 2);
      const group = svg("g", { class: `segment${i === 0 ? " best" : ""}` },
        svg("title", { text: described[i] }),
        svg("polygon", { class: "band", points: `${q0},${QY + BAR} ${q1},${QY + BAR} ${a1},${AY} ${a0},${AY}` }),
        svg("rect", { class: "bar query-bar", x: q0, y: QY, width: q1 - q0, height: BAR, rx: 2 }),
        svg("rect", { class: "bar asset-bar", x: a0, y: AY, width: a1 - a0, height: BAR, rx: 2 }));
      chart.append(group);
    });
    for (const x of m.matches) {
      chart.append(svg("line", { class: "match-tick", x1: qx(x.query_timestamp), x2: qx(x.query_timestamp),
        y1: QY + BAR, y2: QY + BAR + 4 }));
    }
    const list = el("ul", { className: "segments" }, ...described.map((text) => el("li", { text })));
    return el("figure", { className: "timeline-figure", "data-asset-seconds": assetDuration ? aEnd : "" }, chart,
      el("figcaption", {}, el("span", { text: `${plural(m.segments.length, "matched segment")}:` }), list));
  }

  function ticks(end) {
    const steps = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600];
    const step = steps.find((s) => end / s <= 8) || Math.ceil(end / 8);
    const out = [];
    for (let t = 0; t <= end + 1e-9; t += step) out.push(t);
    return out;
  }

  function matchTable(m) {
    const rows = m.matches.map((x) => el("tr", {},
      el("td", { className: "num", text: fixed(x.query_timestamp, 1) }),
      el("td", { className: "num", text: fixed(x.matching_timestamp, 1) }),
      el("td", { className: "num", text: fixed(x.similarity_score) }),
      el("td", { className: "num", text: fixed(x.exact_score) })));
    return el("details", { className: "frames", open: m.matches.length <= 3 },
      el("summary", { text: `${plural(m.matches.length, "frame match", "frame matches")}` }),
      el("table", {},
        el("thead", {}, el("tr", {},
          el("th", { scope: "col", className: "num", text: "Query s" }),
          el("th", { scope: "col", className: "num", text: "Asset s" }),
          el("th", { scope: "col", className: "num", text: "Similarity" }),
          el("th", { scope: "col", className: "num", text: "Exact" }))),
        el("tbody", {}, ...rows)));
  }

  // --- add and remove ---------------------------------------------------------------------------

  function readMetadata() {
    const text = $("add-metadata").value.trim();
    if (!text) return null;
    let value;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new Error(`Metadata is not valid JSON: ${err.message}`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      throw new Error('Metadata must be a JSON object, e.g. {"listing": 123}');
    }
    return text;
  }

  async function runAdd() {
    const statusNode = $("add-status");
    const form = new FormData();
    const url = $("add-url").value.trim();
    if (state.addFile) form.append("media", state.addFile, state.addFile.name || "pasted");
    else if (url) form.append("url", url);
    else {
      setStatus(statusNode, "Choose or drop a file, or give a URL, first.", "error");
      return;
    }
    try {
      const metadata = readMetadata();
      if (metadata) form.append("metadata", metadata);
    } catch (err) {
      setStatus(statusNode, err.message, "error");
      $("add-metadata").focus();
      return;
    }
    const taskId = $("add-task").value.trim();
    if (taskId) form.append("task_id", taskId);
    $("add-button").disabled = true;
    setStatus(statusNode, "Adding…");
    try {
      const out = (await call("POST", "/custom_index/add/sync", { body: form })).output;
      const what = out.media_type === "video" ? `a video of ${seconds(out.duration)}, ${plural(out.frames, "frame")}`
        : "an image";
      const warned = out.warnings && out.warnings.length ? ` Warnings: ${out.warnings.join("; ")}` : "";
      setStatus(statusNode, `Added ${out.task_id} (${what}).${warned}`, "ok");
      $("add-form").reset();
      chooseAddFile(null);
      refreshAfterChange();
    } catch (err) {
      showError(statusNode, err);
    } finally {
      $("add-button").disabled = false;
    }
  }

  async function removeAsset(taskId, statusNode) {
    setStatus(statusNode, `Removing ${taskId}…`);
    try {
      const out = (await call("DELETE", "/custom_index/remove/sync", { query: { task_id: taskId } })).output;
      setStatus(statusNode, `Removed ${out.task_id} (${plural(out.removed_frames, "frame")}).`, "ok");
      refreshAfterChange();
      return true;
    } catch (err) {
      showError(statusNode, err);
      return false;
    }
  }

  async function runRemove() {
    const taskId = $("remove-task").value.trim();
    if (!taskId) {
      setStatus($("remove-status"), "Give the task id of the asset to remove.", "error");
      $("remove-task").focus();
      return;
    }
    $("remove-button").disabled = true;
    if (await removeAsset(taskId, $("remove-status"))) $("remove-task").value = "";
    $("remove-button").disabled = false;
  }

  function refreshAfterChange() {
    loadInfo();
    loadAssets();
  }

  // --- the asset list, page by page ---------------------------------------------------------------

  async function loadAssets() {
    const statusNode = $("assets-status");
    const after = state.cursors[state.cursors.length - 1];
    const seq = ++state.listSeq;
    setStatus(statusNode, "Loading…");
    let page;
    try {
      page = (await call("GET", "/custom_index/assets", { query: { limit: $("assets-size").value, after } })).output;
    } catch (err) {
      if (seq !== state.listSeq) return; // a newer page was asked for meanwhile
      $("assets-table").hidden = true;
      showError(statusNode, err);
      updatePager();
      return;
    }
    if (seq !== state.listSeq) return;
    state.next = page.next || null;
    const rows = page.assets.map(assetRow);
    $("assets-rows").replaceChildren(...rows);
    $("assets-table").hidden = rows.length === 0;
    const pageNo = state.cursors.length;
    setStatus(statusNode, rows.length ? `Page ${pageNo}: ${plural(rows.length, "asset")}${state.next ? "" : " (the last page)"}`
      : pageNo === 1 ? "The project has no assets yet." : "No more assets.");
    updatePager();
  }

  function updatePager() {
    const first = state.cursors.length === 1;
    $("assets-first").disabled = first;
    $("assets-prev").disabled = first;
    $("assets-next").disabled = !state.next;
    $("assets-page").textContent = `page ${state.cursors.length}`;
  }

  function assetRow(a) {
    const metadata = JSON.stringify(a.metadata || {});
    const remove = el("button", { type: "button", className: "quiet danger", text: "Remove",
      "aria-label": `Remove ${a.task_id}` });
    const rowStatus = el("span", { className: "status", role: "status" });
    let armed = null;
    remove.addEventListener("click", async () => {
      if (!armed) { // a second click within 5 s confirms
        remove.textContent = "Confirm remove";
        remove.setAttribute("aria-label", `Confirm: remove ${a.task_id}`);
        armed = setTimeout(() => {
          armed = null;
          remove.textContent = "Remove";
          remove.setAttribute("aria-label", `Remove ${a.task_id}`);
        }, 5000);
        return;
      }
      clearTimeout(armed);
      remove.disabled = true;
      await removeAsset(a.task_id, rowStatus);
    });
    return el("tr", { "data-task-id": a.task_id },
      el("th", { scope: "row", className: "task-id", text: a.task_id }),
      el("td", { text: a.media_type }),
      el("td", { className: "num", text: a.media_type === "video" ? seconds(a.duration) : "–" }),
      el("td", { className: "num", text: String(a.frames) }),
      el("td", { className: "source", text: a.source, title: a.source }),
      el("td", {}, el("code", { className: "metadata-inline", text: metadata, title: metadata })),
      el("td", {}, remove, rowStatus));
  }

  // --- wiring -----------------------------------------------------------------------------------

  function init() {
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key").value.trim();
      if (!key) {
        setStatus($("login-error"), "Paste an API key first.", "error");
        return;
      }
      login(key, false);
    });
    $("logout").addEventListener("click", () => logout(""));
    wireDrop("query-drop", "query-file", (file) => { chooseQueryFile(file); if (file) runQuery(); });
    wireDrop("add-drop", "add-file", (file) => chooseAddFile(file));
    $("query-url").addEventListener("input", () => {
      if ($("query-url").value.trim()) { state.queryFile = null; $("query-file").value = ""; $("query-chosen").textContent = ""; clearPreview(); }
    });
    $("add-url").addEventListener("input", () => {
      if ($("add-url").value.trim()) { state.addFile = null; $("add-file").value = ""; $("add-chosen").textContent = ""; }
    });
    $("query-form").addEventListener("submit", (event) => { event.preventDefault(); runQuery(); });
    $("add-form").addEventListener("submit", (event) => { event.preventDefault(); runAdd(); });
    $("remove-form").addEventListener("submit", (event) => { event.preventDefault(); runRemove(); });
    $("assets-first").addEventListener("click", () => { state.cursors = [null]; loadAssets(); });
    $("assets-prev").addEventListener("click", () => { if (state.cursors.length > 1) state.cursors.pop(); loadAssets(); });
    $("assets-next").addEventListener("click", () => { if (state.next) { state.cursors.push(state.next); loadAssets(); } });
    $("assets-refresh").addEventListener("click", () => loadAssets());
    $("assets-size").addEventListener("change", () => { state.cursors = [null]; loadAssets(); });
    document.addEventListener("paste", onPaste);
    // a file dropped outside a drop zone must not make the browser leave the console
    document.addEventListener("dragover", (event) => event.preventDefault());
    document.addEventListener("drop", (event) => event.preventDefault());
    const saved = sessionStorage.getItem(KEY_SLOT);
    if (saved) login(saved, true);
    else $("key").focus();
  }

  init();
})();
