// pointseg annotate: click query points on aerial images and see the propagated pseudo-label.
// Plain JS, no dependencies. The HTTP API is described in the backend (pointseg.annotate.app).
"use strict";

(() => {
  const TOKEN = new URLSearchParams(location.search).get("token");
  const TILE_CACHE_SIZE = 384; // decoded tiles kept (LRU); a 1920x1080 view needs ~70
  const HIT_RADIUS = 8; // screen px: a click this close to a point selects it
  const DRAG_THRESHOLD = 4; // screen px: a press that moves farther is a pan, not a click
  const MAX_SCALE = 64; // screen px per image px
  const POLL_RUNNING_MS = 1000; // GET /api/model while a training runs
  const POLL_IDLE_MS = 5000; // ... and otherwise (a model trained from another tab shows up)

  const $ = (id) => document.getElementById(id);
  const canvas = $("viewer");
  const ctx = canvas.getContext("2d");
  const enc = encodeURIComponent;
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

  // ---- state ------------------------------------------------------------------------------
  const S = {
    classes: [],
    images: [], // from /api/state: id, name, width, height, n_points, counts
    pointsFile: "",
    version: null,
    image: null, // from /api/images/{id}: id, width, height, levels, tile_size, overlay
    points: [], // points of the current image
    selected: null, // id of the selected point
    currentClass: 0,
    view: { scale: 1, x: 0, y: 0 }, // screen px per image px; image coords at the top-left
    showOverlay: true,
    showBoundaries: false,
    opacity: 0.5,
    overlay: null, // "single" mode: {imageId, version, bitmap}
    boundaries: null, // "single" mode: {imageId, bitmap}
    lastOverlayVersion: null,
    boundariesVersion: null, // "tiled" mode: the version of the boundary tiles drawn
    level: 0,
    busy: 0, // requests in flight that change or load state
    ready: false,
    // model trained from the page (GET /api/model)
    model: null, // the last status object
    modelApi: true, // false when the server has no /api/model
    modelVersion: 0, // 0: no model yet
    handledModelVersion: 0, // the model version whose prediction and proposals were asked for
    trainPending: false, // POST /api/model/train or /stop in flight
    showPrediction: false,
    predictionAutoShown: false, // the checkbox turns on by itself once, with the first model
    prediction: null, // "single" mode: {imageId, modelVersion, bitmap}
    predictionTilesVersion: null, // "tiled" mode: the model version of the tiles drawn
    predictionDrawnVersion: null, // the model version of the prediction drawn last frame
    predictionNote: "", // X-Pointseg-Note of a prediction tile in view ("zoom in ...")
    // where to click next (GET /api/proposals)
    proposalsK: 10,
    proposalStrategy: "",
    proposals: [], // {image, x, y, score, predicted, answer: null | "skipped" | {class}}
    proposalsModelVersion: null,
    proposalsLoading: false,
    activeProposal: null, // index into proposals
    proposalSwitching: false, // the active proposal's image is being loaded
    proposalsDrawn: 0, // markers drawn last frame
  };

  // ---- HTTP -------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, detail) {
      super(`${status}: ${detail}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function errorDetail(res) {
    try {
      const d = (await res.json()).detail;
      if (Array.isArray(d)) return d.map((e) => e.msg || JSON.stringify(e)).join("; ");
      return typeof d === "string" ? d : JSON.stringify(d);
    } catch {
      return res.statusText;
    }
  }

  async function api(method, path, body) {
    const headers = {};
    if (TOKEN) headers["X-Token"] = TOKEN;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new ApiError(res.status, await errorDetail(res));
    return res;
  }
  const apiJson = async (method, path, body) => (await api(method, path, body)).json();
  const apiBitmap = async (path) => createImageBitmap(await (await api("GET", path)).blob());

  async function tracked(promise) {
    S.busy++;
    try {
      return await promise;
    } finally {
      S.busy--;
    }
  }

  // ---- tile cache (LRU of decoded bitmaps) ------------------------------------------------
  const tiles = new Map(); // url -> {bitmap, failed, note}; Map order = recency

  function tile(url) {
    let entry = tiles.get(url);
    if (entry) {
      tiles.delete(url); // move to the most recent end
      tiles.set(url, entry);
      return entry;
    }
    entry = { bitmap: null, failed: false, note: null };
    tiles.set(url, entry);
    api("GET", url)
      .then(async (res) => {
        entry.note = res.headers.get("X-Pointseg-Note");
        return createImageBitmap(await res.blob());
      })
      .then(
        (bitmap) => {
          if (tiles.get(url) === entry) {
            entry.bitmap = bitmap;
            scheduleDraw();
          } else {
            bitmap.close(); // evicted while loading
          }
        },
        () => {
          entry.failed = true;
        },
      );
    while (tiles.size > TILE_CACHE_SIZE) {
      const [oldUrl, old] = tiles.entries().next().value;
      tiles.delete(oldUrl);
      if (old.bitmap) old.bitmap.close();
    }
    return entry;
  }

  const loaded = (url) => tiles.get(url)?.bitmap || null; // peek without requesting

  // ---- coordinates ------------------------------------------------------------------------
  const cssSize = () => ({ w: canvas.clientWidth, h: canvas.clientHeight });
  const toScreen = (x, y) => ({
    x: (x - S.view.x) * S.view.scale,
    y: (y - S.view.y) * S.view.scale,
  });
  const toImage = (sx, sy) => ({
    x: S.view.x + sx / S.view.scale,
    y: S.view.y + sy / S.view.scale,
  });
  function eventPos(e) {
    const r = canvas.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  function fit() {
    if (!S.image) return;
    const { w, h } = cssSize();
    const scale = Math.min(w / S.image.width, h / S.image.height) * 0.96;
    S.view = {
      scale,
      x: -(w / scale - S.image.width) / 2,
      y: -(h / scale - S.image.height) / 2,
    };
    scheduleDraw();
  }

  function zoom(factor, sx, sy) {
    if (!S.image) return;
    const { w, h } = cssSize();
    if (sx === undefined) [sx, sy] = [w / 2, h / 2];
    const minScale = Math.min(w / S.image.width, h / S.image.height) / 4;
    const at = toImage(sx, sy);
    S.view.scale = clamp(S.view.scale * factor, minScale, MAX_SCALE);
    S.view.x = at.x - sx / S.view.scale;
    S.view.y = at.y - sy / S.view.scale;
    scheduleDraw();
  }

  function pan(dx, dy) {
    S.view.x -= dx / S.view.scale;
    S.view.y -= dy / S.view.scale;
    scheduleDraw();
  }

  // ---- drawing ----------------------------------------------------------------------------
  let drawPending = false;
  function scheduleDraw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      draw();
    });
  }

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const { w, h } = cssSize();
    canvas.width = Math.max(1, Math.round(w * dpr));
    canvas.height = Math.max(1, Math.round(h * dpr));
    scheduleDraw();
  }

  // Tiles (level, tx, ty) of the pyramid that intersect the view.
  function visibleTiles(level) {
    const { width: W, height: H, tile_size: T } = S.image;
    const span = T * 2 ** level; // image px per tile
    const { w, h } = cssSize();
    const a = toImage(0, 0);
    const b = toImage(w, h);
    const nx = Math.ceil(W / span);
    const ny = Math.ceil(H / span);
    const out = [];
    if (b.x <= 0 || b.y <= 0 || a.x >= W || a.y >= H) return out;
    const tx0 = clamp(Math.floor(a.x / span), 0, nx - 1);
    const tx1 = clamp(Math.floor(b.x / span), 0, nx - 1);
    const ty0 = clamp(Math.floor(a.y / span), 0, ny - 1);
    const ty1 = clamp(Math.floor(b.y / span), 0, ny - 1);
    for (let ty = ty0; ty <= ty1; ty++) {
      for (let tx = tx0; tx <= tx1; tx++) {
        // the image region the tile covers (edge tiles are smaller)
        const x = tx * span;
        const y = ty * span;
        out.push({ level, tx, ty, x, y, w: Math.min(span, W - x), h: Math.min(span, H - y) });
      }
    }
    return out;
  }

  function pickLevel() {
    const devicePxPerImagePx = S.view.scale * (window.devicePixelRatio || 1);
    return clamp(Math.floor(Math.log2(1 / devicePxPerImagePx)), 0, S.image.levels - 1);
  }

  const tileUrl = (kind, t) => `/api/images/${enc(S.image.id)}/${kind}/${t.level}/${t.tx}/${t.ty}.png`;

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!S.image) return;
    const img = S.image;
    const k = dpr * S.view.scale;
    ctx.setTransform(k, 0, 0, k, -k * S.view.x, -k * S.view.y); // image coordinates

    // image: the coarsest level as a backdrop, then the level that matches the zoom
    S.level = pickLevel();
    ctx.imageSmoothingEnabled = S.view.scale < 1;
    const levels = S.level === img.levels - 1 ? [S.level] : [img.levels - 1, S.level];
    for (const level of levels) {
      for (const t of visibleTiles(level)) {
        const e = tile(tileUrl("tiles", t));
        if (e.bitmap) ctx.drawImage(e.bitmap, t.x, t.y, t.w, t.h);
      }
    }

    // the model's prediction, then the pseudo-label overlay and superpixel boundaries, all
    // nearest-neighbour
    ctx.imageSmoothingEnabled = false;
    drawPrediction();
    if (img.overlay === "single") {
      if (S.showOverlay && S.overlay && S.overlay.imageId === img.id) {
        ctx.globalAlpha = S.opacity;
        ctx.drawImage(S.overlay.bitmap, 0, 0, img.width, img.height);
        ctx.globalAlpha = 1;
        S.lastOverlayVersion = S.overlay.version;
      }
      if (S.showBoundaries && S.boundaries && S.boundaries.imageId === img.id) {
        ctx.drawImage(S.boundaries.bitmap, 0, 0, img.width, img.height);
      }
    } else {
      drawTiledOverlay();
    }

    // points, in screen px
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const colors = S.classes.map((c) => c.color);
    let selected = null;
    for (const p of S.points) {
      if (p.id === S.selected) selected = p;
      else drawPoint(p, colors[p.class], false);
    }
    if (selected) drawPoint(selected, colors[selected.class], true);
    drawProposals();
  }

  function drawPrediction() {
    const img = S.image;
    let drawn = null;
    let note = "";
    if (S.showPrediction && S.modelVersion > 0) {
      ctx.globalAlpha = S.opacity;
      if (img.overlay === "single") {
        if (S.prediction && S.prediction.imageId === img.id) {
          ctx.drawImage(S.prediction.bitmap, 0, 0, img.width, img.height);
          drawn = S.prediction.modelVersion;
        }
      } else {
        const r = drawVersionedTiles("prediction", "m", S.modelVersion, S.predictionTilesVersion);
        if (r.complete) S.predictionTilesVersion = S.modelVersion;
        drawn = r.complete ? S.modelVersion : r.any ? S.predictionTilesVersion : null;
        note = r.note;
      }
      ctx.globalAlpha = 1;
    }
    S.predictionDrawnVersion = drawn;
    if (note !== S.predictionNote) {
      S.predictionNote = note;
      $("prediction-note").textContent = note;
    }
  }

  // Large rasters: overlay and boundary tiles of the current version (boundaries change too: a
  // block gets its superpixels with its first point), prediction tiles of the current model
  // (`param` "m"); until they arrive, those of the version drawn before. Returns whether every
  // tile in view is current, whether any tile was drawn, and the server's note on a tile.
  function drawVersionedTiles(kind, param, version, drawnVersion) {
    let complete = true;
    let any = false;
    let note = "";
    for (const t of visibleTiles(S.level)) {
      const base = tileUrl(kind, t);
      const e = tile(`${base}?${param}=${version}`);
      let bitmap = e.bitmap;
      if (e.note) note = e.note;
      if (!bitmap) {
        complete = false;
        bitmap = loaded(`${base}?${param}=${drawnVersion}`);
      }
      if (bitmap) {
        ctx.drawImage(bitmap, t.x, t.y, t.w, t.h);
        any = true;
      }
    }
    return { complete, any, note };
  }

  function drawTiledOverlay() {
    if (S.showOverlay) {
      ctx.globalAlpha = S.opacity;
      if (drawVersionedTiles("overlay", "v", S.version, S.lastOverlayVersion).complete) {
        S.lastOverlayVersion = S.version;
      }
      ctx.globalAlpha = 1;
    }
    if (
      S.showBoundaries &&
      drawVersionedTiles("boundaries", "v", S.version, S.boundariesVersion).complete
    ) {
      S.boundariesVersion = S.version;
    }
  }

  function drawPoint(p, color, selected) {
    const s = toScreen(p.x + 0.5, p.y + 0.5); // centre of the pixel
    const { w, h } = cssSize();
    if (s.x < -20 || s.y < -20 || s.x > w + 20 || s.y > h + 20) return;
    const r = selected ? 8 : 6;
    ctx.beginPath();
    ctx.arc(s.x, s.y, r, 0, 2 * Math.PI);
    ctx.strokeStyle = "#111";
    if (p.held_out) {
      // held out for validation (raster datasets): a ring, not a disc
      ctx.lineWidth = 5;
      ctx.stroke();
      ctx.lineWidth = 2.5;
      ctx.strokeStyle = color || "#fff";
    } else {
      ctx.fillStyle = color || "#fff";
      ctx.fill();
      ctx.lineWidth = 2;
    }
    ctx.stroke();
    if (selected) {
      ctx.beginPath();
      ctx.arc(s.x, s.y, r + 3, 0, 2 * Math.PI);
      ctx.strokeStyle = "#fff";
      ctx.stroke();
    }
  }

  // Proposed clicks: hollow, dashed white rings (points are discs, held-out points rings in
  // their class colour); the active one solid and larger, with ticks pointing at it.
  function drawProposals() {
    let n = 0;
    const { w, h } = cssSize();
    const active = S.proposals[S.activeProposal] || null;
    const ring = (s, r, dash) => {
      ctx.beginPath();
      ctx.arc(s.x, s.y, r, 0, 2 * Math.PI);
      ctx.setLineDash([]);
      ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
      ctx.lineWidth = 4.5;
      ctx.stroke();
      ctx.setLineDash(dash);
      ctx.strokeStyle = "#fff";
      ctx.lineWidth = 2.5;
      ctx.stroke();
      ctx.setLineDash([]);
    };
    for (const p of S.proposals) {
      if (p.answer || p === active || p.image !== S.image.id) continue;
      const s = toScreen(p.x + 0.5, p.y + 0.5);
      if (s.x < -20 || s.y < -20 || s.x > w + 20 || s.y > h + 20) continue;
      ring(s, 7, [4, 3]);
      n++;
    }
    if (active && !active.answer && active.image === S.image.id) {
      const s = toScreen(active.x + 0.5, active.y + 0.5);
      ring(s, 11, []);
      ring(s, 4, [2, 2]);
      ctx.lineWidth = 2.5;
      for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
        ctx.beginPath();
        ctx.moveTo(s.x + dx * 14, s.y + dy * 14);
        ctx.lineTo(s.x + dx * 21, s.y + dy * 21);
        ctx.strokeStyle = "rgba(0, 0, 0, 0.75)";
        ctx.lineWidth = 4.5;
        ctx.stroke();
        ctx.strokeStyle = "#fff";
        ctx.lineWidth = 2.5;
        ctx.stroke();
      }
      n++;
    }
    S.proposalsDrawn = n;
  }

  // ---- overlay (single mode): newest version, one request at a time ------------------------
  let overlayLoading = false;
  async function refreshOverlay() {
    scheduleDraw(); // tiled mode: tiles are requested while drawing
    if (overlayLoading) return; // the running loop picks up the newest version
    overlayLoading = true;
    try {
      for (;;) {
        const img = S.image;
        if (!img || img.overlay !== "single" || !S.showOverlay) break;
        const v = S.version;
        if (S.overlay && S.overlay.imageId === img.id && S.overlay.version === v) break;
        const bitmap = await apiBitmap(`/api/images/${enc(img.id)}/overlay.png?v=${v}`);
        if (S.image && S.image.id === img.id) {
          if (S.overlay) S.overlay.bitmap.close();
          S.overlay = { imageId: img.id, version: v, bitmap };
          scheduleDraw();
        } else {
          bitmap.close();
        }
      }
      const img = S.image;
      if (img && img.overlay === "single" && S.showBoundaries && S.boundaries?.imageId !== img.id) {
        const bitmap = await apiBitmap(`/api/images/${enc(img.id)}/boundaries.png`);
        if (S.boundaries) S.boundaries.bitmap.close();
        S.boundaries = { imageId: img.id, bitmap };
        scheduleDraw();
      }
    } catch (err) {
      showError(err);
    } finally {
      overlayLoading = false;
    }
  }

  // ---- prediction (single mode): the current model's, one request at a time ----------------
  let predictionLoading = false;
  async function refreshPrediction() {
    scheduleDraw(); // tiled mode: tiles are requested while drawing
    if (predictionLoading) return; // the running loop picks up the newest model
    predictionLoading = true;
    try {
      for (;;) {
        const img = S.image;
        const m = S.modelVersion;
        if (!img || img.overlay !== "single" || !S.showPrediction || !(m > 0)) break;
        const have = S.prediction;
        if (have && have.imageId === img.id && have.modelVersion === m) break;
        const bitmap = await apiBitmap(`/api/images/${enc(img.id)}/prediction.png?m=${m}`);
        if (S.image && S.image.id === img.id) {
          if (S.prediction) S.prediction.bitmap.close();
          S.prediction = { imageId: img.id, modelVersion: m, bitmap };
          scheduleDraw();
        } else {
          bitmap.close();
        }
      }
    } catch (err) {
      showError(err);
    } finally {
      predictionLoading = false;
    }
  }

  function setPrediction(on) {
    S.showPrediction = on;
    $("show-prediction").checked = on;
    if (on && !(S.modelVersion > 0) && S.ready) {
      setStatus("no model yet: train one first (T)", "warn");
    }
    refreshPrediction();
  }

  // ---- model: train, follow, stop ---------------------------------------------------------
  let modelTimer = null;
  let modelPollSeq = 0;

  // Polls GET /api/model after `ms`: every second while a training runs, else every few.
  function scheduleModelPoll(ms) {
    clearTimeout(modelTimer);
    if (!S.modelApi) return;
    const seq = ++modelPollSeq;
    modelTimer = setTimeout(async () => {
      try {
        const m = await apiJson("GET", "/api/model");
        if (seq === modelPollSeq) applyModel(m);
      } catch (err) {
        if (seq !== modelPollSeq) return;
        if (err instanceof ApiError && err.status === 404) {
          S.modelApi = false; // an older server: no training from the page
          renderModel();
          return;
        }
        console.error(err);
        $("model-message").textContent = `cannot reach the server: ${err.message || err}`;
      }
      if (seq === modelPollSeq) {
        scheduleModelPoll(S.model?.state === "running" ? POLL_RUNNING_MS : POLL_IDLE_MS);
      }
    }, ms);
  }

  function applyModel(m) {
    if (!m || typeof m !== "object") return;
    const before = S.model;
    S.model = m;
    S.modelVersion = Number(m.model_version) || 0;
    if (before && before.job === m.job && before.state === "running") {
      if (m.state === "failed") {
        setStatus(`training failed: ${m.message || "see the server log"}`, "error");
      } else if (m.state === "done") {
        setStatus(`model ${S.modelVersion} ready: ${m.message || ""}`);
      }
    }
    renderModel();
    if (S.ready) onModelVersion();
  }

  // A model version not seen before: show its prediction and ask it where to click next.
  function onModelVersion() {
    if (S.modelVersion === S.handledModelVersion) return;
    S.handledModelVersion = S.modelVersion;
    if (!(S.modelVersion > 0)) {
      renderProposals();
      scheduleDraw();
      return;
    }
    if (!S.predictionAutoShown) {
      S.predictionAutoShown = true;
      setPrediction(true);
    } else {
      refreshPrediction();
    }
    fetchProposals({ auto: true });
  }

  async function train() {
    if (!S.ready || S.trainPending) return;
    if (S.model?.state === "running") {
      setStatus("a training is running: Stop it first, or wait", "warn");
      return;
    }
    S.trainPending = true;
    renderModel();
    try {
      const m = await tracked(apiJson("POST", "/api/model/train", {}));
      applyModel(m);
      setStatus("training started: keep clicking meanwhile");
    } catch (err) {
      if (err instanceof ApiError && err.status === 409) setStatus(err.detail, "warn");
      else showError(err);
    } finally {
      S.trainPending = false;
      renderModel();
      scheduleModelPoll(POLL_RUNNING_MS);
    }
  }

  async function stopTraining() {
    if (S.trainPending || S.model?.state !== "running") return;
    S.trainPending = true;
    renderModel();
    try {
      applyModel(await tracked(apiJson("POST", "/api/model/stop", {})));
      setStatus("training stopped");
    } catch (err) {
      showError(err);
    } finally {
      S.trainPending = false;
      renderModel();
      scheduleModelPoll(POLL_RUNNING_MS);
    }
  }

  function renderModel() {
    const m = S.model;
    const box = $("model-status");
    const running = m?.state === "running";
    $("train").disabled = !S.ready || !S.modelApi || S.trainPending || running;
    $("stop-train").disabled = !S.modelApi || S.trainPending || !running;
    $("propose").disabled = !(S.modelVersion > 0) || S.proposalsLoading;
    if (!S.modelApi) {
      box.className = "idle";
      $("model-line").textContent = "training from the page is not available on this server";
      $("model-message").textContent = "";
      return;
    }
    if (!m) return;
    box.className = m.state || "idle";
    const parts = [];
    const epochs = m.max_epochs > 0 ? `epoch ${m.epoch || 0}/${m.max_epochs}` : "";
    if (running) {
      parts.push(`training #${m.job}: ${m.phase || "running"}`, epochs);
    } else if (m.state === "done") {
      parts.push(`model ${m.model_version} ready`);
    } else if (m.state === "failed" || m.state === "stopped") {
      parts.push(`training #${m.job} ${m.state}`, m.state === "stopped" ? epochs : "");
      if (S.modelVersion > 0) parts.push(`model ${S.modelVersion} in use`);
    } else {
      parts.push(S.modelVersion > 0 ? `model ${S.modelVersion} loaded` : "no model yet");
    }
    if (m.job > 0 && typeof m.elapsed === "number") parts.push(`${m.elapsed.toFixed(0)} s`);
    if (typeof m.val_miou === "number") parts.push(`val mIoU ${m.val_miou.toFixed(3)}`);
    if (m.device && m.job > 0) parts.push(m.device);
    $("model-line").textContent = parts.filter(Boolean).join(" · ");

    const lines = [];
    if (m.message) lines.push(m.message);
    if (S.modelVersion > 0 && m.state !== "running") {
      const clicks = S.images.reduce((s, im) => s + (im.n_points || 0), 0);
      const since = clicks - (m.points_trained || 0);
      if (since > 0) lines.push(`${since} click${since === 1 ? "" : "s"} since: train again (T)`);
    }
    if (!(S.modelVersion > 0) && !running) lines.push("train one on your clicks (T)");
    $("model-message").textContent = lines.join(" · ");

    const bar = $("model-progress");
    if (running && m.max_epochs > 0) bar.value = clamp((m.epoch || 0) / m.max_epochs, 0, 1);
    else if (running) bar.removeAttribute("value"); // indeterminate while preparing
    else bar.value = m.state === "done" ? 1 : bar.value || 0;
  }

  // ---- where to click next ----------------------------------------------------------------
  let proposalSeq = 0;

  // The view in image px, for proposals on a large raster (whole pixels, inside the image).
  function viewRect() {
    const { w, h } = cssSize();
    const a = toImage(0, 0);
    const b = toImage(w, h);
    const W = S.image.width;
    const H = S.image.height;
    return {
      x0: clamp(Math.floor(a.x), 0, W),
      y0: clamp(Math.floor(a.y), 0, H),
      x1: clamp(Math.ceil(b.x), 0, W),
      y1: clamp(Math.ceil(b.y), 0, H),
    };
  }

  async function fetchProposals({ auto = false } = {}) {
    if (!(S.modelVersion > 0)) {
      if (!auto) setStatus("no model yet: train one first (T)", "warn");
      return;
    }
    let url = `/api/proposals?k=${enc(S.proposalsK)}`;
    if (S.image?.overlay === "tiled") {
      const r = viewRect();
      if (r.x1 <= r.x0 || r.y1 <= r.y0) {
        if (!auto) setStatus("the image is not in view: press F, then R", "warn");
        return;
      }
      url += `&image=${enc(S.image.id)}&x0=${r.x0}&y0=${r.y0}&x1=${r.x1}&y1=${r.y1}`;
    }
    const seq = ++proposalSeq;
    S.proposalsLoading = true;
    renderProposals();
    try {
      const r = await tracked(apiJson("GET", url));
      if (seq !== proposalSeq) return;
      S.proposals = (r.proposals || []).map((p) => ({
        image: String(p.image),
        x: Math.floor(p.x),
        y: Math.floor(p.y),
        score: p.score,
        predicted: p.predicted,
        answer: null,
      }));
      S.proposalsModelVersion = r.model_version ?? S.modelVersion;
      if (r.strategy) S.proposalStrategy = r.strategy;
      S.activeProposal = null;
      S.proposalsLoading = false;
      if (!S.proposals.length) setStatus("the model has no clicks to propose here", "warn");
      await activateProposal(nextOpen(-1));
    } catch (err) {
      if (seq !== proposalSeq) return;
      if (auto && err instanceof ApiError && err.status === 409) return; // no model after all
      showError(err);
    } finally {
      if (seq === proposalSeq) {
        S.proposalsLoading = false;
        renderProposals();
        renderModel();
      }
    }
  }

  // The first proposal not answered yet after index `from`, wrapping around; null if none.
  function nextOpen(from) {
    const n = S.proposals.length;
    for (let k = 1; k <= n; k++) {
      const i = (((from + k) % n) + n) % n;
      if (!S.proposals[i].answer) return i;
    }
    return null;
  }

  // Makes proposal `i` (or none) the active one: its image is shown and it is in view.
  async function activateProposal(i) {
    S.activeProposal = i;
    renderProposals();
    scheduleDraw();
    if (i === null) return;
    const p = S.proposals[i];
    if (p.image !== S.image?.id || loadingId !== null) {
      S.proposalSwitching = true;
      try {
        await chain; // the click just confirmed is saved first (its version is the newest)
        if (S.activeProposal !== i) return;
        if (p.image !== S.image?.id || (loadingId !== null && loadingId !== p.image)) {
          await loadImage(p.image);
          renderLists();
        }
      } catch (err) {
        showError(err);
        return;
      } finally {
        S.proposalSwitching = false;
      }
      if (S.activeProposal !== i) return;
    }
    bringIntoView(p);
  }

  // Centres the view on image pixel (x, y) unless it is in view already, clear of the edges
  // (a marker at the edge of a whole image in view is fine: the image is not moved then).
  function bringIntoView(p) {
    const { w, h } = cssSize();
    const s = toScreen(p.x + 0.5, p.y + 0.5);
    const a = toScreen(0, 0);
    const b = toScreen(S.image.width, S.image.height);
    const whole = a.x >= 0 && a.y >= 0 && b.x <= w && b.y <= h;
    const m = Math.min(40, Math.min(w, h) * 0.1);
    const inView = s.x >= m && s.y >= m && s.x <= w - m && s.y <= h - m;
    if (!inView && !(whole && s.x >= 0 && s.y >= 0 && s.x <= w && s.y <= h)) {
      S.view.x = p.x + 0.5 - w / 2 / S.view.scale;
      S.view.y = p.y + 0.5 - h / 2 / S.view.scale;
    }
    scheduleDraw();
  }

  // Whether keys 1-9 / S answer the active proposal: it is on the image shown (or on its way).
  function proposalOnScreen() {
    const p = S.proposals[S.activeProposal];
    return !!p && !p.answer && (S.proposalSwitching || p.image === S.image?.id);
  }

  // Confirms proposal `i` as class `cls`: the ordinary add-a-point flow at its pixel.
  function confirmProposal(i, cls) {
    const p = S.proposals[i];
    if (!p || p.answer || cls < 0 || cls >= S.classes.length) return;
    selectClass(cls);
    p.answer = { class: cls };
    addPoint(p.x, p.y, p.image);
    if (S.activeProposal === i) activateProposal(nextOpen(i));
    else renderProposals();
  }

  function skipProposal(i) {
    const p = S.proposals[i];
    if (!p || p.answer) return;
    p.answer = "skipped";
    tracked(api("POST", "/api/proposals/skip", { image: p.image, x: p.x, y: p.y })).catch(
      showError,
    );
    activateProposal(nextOpen(i));
  }

  // Manual navigation to another image leaves the proposals (a list item or R resumes).
  function leaveProposalFor(imageId) {
    const p = S.proposals[S.activeProposal];
    if (p && p.image !== imageId) {
      S.activeProposal = null;
      renderProposals();
    }
  }

  function renderProposals() {
    const list = $("proposal-list");
    list.replaceChildren();
    const n = S.proposals.length;
    const open = S.proposals.filter((p) => !p.answer).length;
    const names = new Map(S.images.map((im) => [im.id, im.name]));
    S.proposals.forEach((p, i) => {
      const li = el("li", i === S.activeProposal ? "current" : p.answer ? "answered" : "");
      li.dataset.index = i;
      const cls = S.classes[p.predicted];
      li.title = `score ${Number(p.score).toPrecision(3)}; the model says ${cls?.name ?? "?"}`;
      li.append(el("span", "ring"));
      li.append(el("span", "name", `${names.get(p.image) ?? p.image} (${p.x}, ${p.y})`));
      let tail;
      if (p.answer === "skipped") tail = el("span", "count", "skipped");
      else if (p.answer) tail = el("span", "count", `✓ ${S.classes[p.answer.class]?.name ?? ""}`);
      else {
        tail = el("span", "swatch");
        tail.style.background = cls?.color || "#888";
        tail.title = `predicted: ${cls?.name ?? "?"}`;
      }
      li.append(tail);
      if (!p.answer) li.onclick = () => activateProposal(i);
      list.append(li);
      if (i === S.activeProposal) {
        requestAnimationFrame(() => li.scrollIntoView({ block: "nearest" }));
      }
    });
    let info = "";
    if (S.proposalsLoading) info = "asking the model…";
    else if (S.activeProposal !== null) {
      const p = S.proposals[S.activeProposal];
      const guess = S.classes[p.predicted]?.name;
      info = `proposal ${S.activeProposal + 1} of ${n}` + (guess ? ` · model: ${guess}` : "");
    } else if (n && !open) info = `all ${n} answered: train again (T) or propose more (R)`;
    else if (n) info = `${open} of ${n} open: click one to resume`;
    else if (S.modelVersion > 0) info = S.proposalStrategy ? `strategy: ${S.proposalStrategy}` : "";
    else info = "after the first training";
    $("proposal-info").textContent = info;
    $("proposal-keys").hidden = S.activeProposal === null;
    $("propose").disabled = !(S.modelVersion > 0) || S.proposalsLoading;
  }

  // ---- loading ----------------------------------------------------------------------------
  async function loadState() {
    const st = await tracked(apiJson("GET", "/api/state"));
    S.classes = st.classes;
    S.images = st.images;
    S.pointsFile = st.points_file;
    S.version = st.version;
    S.currentClass = clamp(S.currentClass, 0, S.classes.length - 1);
    if (Number.isInteger(st.proposals_k) && st.proposals_k > 0) S.proposalsK = st.proposals_k;
    if (typeof st.proposal_strategy === "string") S.proposalStrategy = st.proposal_strategy;
    if (st.model) applyModel(st.model);
  }

  let loadSeq = 0;
  let loadingId = null; // the image being loaded (N pressed twice moves two images)
  async function loadImage(id) {
    const seq = ++loadSeq;
    loadingId = id;
    let info;
    try {
      info = await tracked(apiJson("GET", `/api/images/${enc(id)}`));
    } finally {
      if (seq === loadSeq) loadingId = null;
    }
    if (seq !== loadSeq) return; // a later switch won
    const same = S.image && S.image.id === info.id;
    S.image = info;
    S.points = info.points;
    S.version = info.version;
    if (!same) {
      S.selected = null;
      S.lastOverlayVersion = null;
      S.boundariesVersion = null;
      S.predictionTilesVersion = null;
      fit();
    } else if (!S.points.some((p) => p.id === S.selected)) {
      S.selected = null;
    }
    recount();
    refreshOverlay();
    refreshPrediction();
  }

  async function reloadAll(imageId) {
    await loadState();
    const known = (i) => i !== undefined && S.images.some((im) => im.id === i);
    const id = [imageId, S.image?.id, S.images[0]?.id].find(known);
    if (id !== undefined) await loadImage(id);
    renderLists();
  }

  function goto(delta) {
    const i = S.images.findIndex((im) => im.id === (loadingId ?? S.image?.id));
    const j = clamp(i + delta, 0, S.images.length - 1);
    if (j === i) return;
    leaveProposalFor(S.images[j].id);
    loadImage(S.images[j].id).then(renderLists, showError);
  }

  // ---- changes: one request at a time, each with the version the previous one returned -----
  let chain = Promise.resolve();
  function mutate(fn) {
    S.busy++;
    chain = chain
      .then(fn)
      .then(() => setStatus(""))
      .catch(handleError)
      .finally(() => S.busy--);
    return chain;
  }

  async function handleError(err) {
    if (err instanceof ApiError && err.status === 409 && !/^nothing to/i.test(err.detail)) {
      await reloadAll(S.image?.id).catch(showError);
      setStatus("changed in another tab: reloaded", "warn");
    } else {
      showError(err);
    }
  }

  function addPoint(x, y, imageId = S.image.id, cls = S.currentClass) {
    mutate(async () => {
      const body = { x, y, class: cls, version: S.version };
      const r = await apiJson("POST", `/api/images/${enc(imageId)}/points`, body);
      S.version = r.version;
      if (S.image?.id !== imageId) {
        await loadState();
      } else if (S.image.overlay === "tiled" && !("held_out" in r.point)) {
        await loadImage(imageId); // whether the point is held out for validation
      } else {
        const q = r.point;
        S.points = S.points.filter((p) => p.id !== q.id && (p.x !== q.x || p.y !== q.y));
        S.points.push(q);
        recount();
      }
      afterChange();
    });
  }

  function deleteSelected() {
    const pid = S.selected;
    if (!S.image || pid === null) return;
    const imageId = S.image.id;
    mutate(async () => {
      const url = `/api/images/${enc(imageId)}/points/${enc(pid)}?version=${S.version}`;
      const r = await apiJson("DELETE", url);
      S.version = r.version;
      if (S.image?.id === imageId) {
        S.points = S.points.filter((p) => p.id !== pid);
        recount();
      }
      if (S.selected === pid) S.selected = null;
      afterChange();
    });
  }

  function undoRedo(which) {
    mutate(async () => {
      const r = await apiJson("POST", `/api/${which}`, { version: S.version });
      await reloadAll(r.image_id); // shows the image the step changed
      syncProposals();
      afterChange();
    });
  }

  // After undo / redo on the image shown: a confirmed proposal whose point is gone is open
  // again, and active (to be answered again); one whose point came back is confirmed again.
  function syncProposals() {
    const id = S.image?.id;
    let reopened = null;
    S.proposals.forEach((p, i) => {
      if (p.image !== id || p.answer === "skipped") return;
      const q = S.points.find((pt) => pt.x === p.x && pt.y === p.y);
      if (p.answer && !q) {
        p.answer = null;
        reopened = i;
      } else if (!p.answer && q) {
        p.answer = { class: q.class };
      }
    });
    if (reopened !== null) activateProposal(reopened);
    else if (S.proposals[S.activeProposal]?.answer) activateProposal(nextOpen(S.activeProposal));
    else renderProposals();
  }

  function afterChange() {
    renderLists();
    renderModel(); // clicks since the model
    refreshOverlay();
  }

  // Counts of the current image from its points (the server sends the others).
  function recount() {
    const entry = S.images.find((im) => im.id === S.image?.id);
    if (!entry) return;
    entry.counts = S.classes.map(() => 0);
    for (const p of S.points) entry.counts[p.class] = (entry.counts[p.class] || 0) + 1;
    entry.n_points = S.points.length;
  }

  // ---- side panels ------------------------------------------------------------------------
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function renderLists() {
    const cur = S.images.find((im) => im.id === S.image?.id);
    const totals = S.classes.map((_, c) => S.images.reduce((s, im) => s + (im.counts[c] || 0), 0));

    const classes = $("classes");
    classes.replaceChildren();
    S.classes.forEach((c, i) => {
      const li = el("li", i === S.currentClass ? "current" : "");
      li.dataset.index = i;
      li.title = "points in this image / in all images";
      const sw = el("span", "swatch");
      sw.style.background = c.color;
      li.append(el("span", "key", i < 9 ? String(i + 1) : ""), sw, el("span", "name", c.name));
      li.append(el("span", "count", `${cur?.counts[i] || 0} / ${totals[i]}`));
      li.onclick = () => selectClass(i);
      classes.append(li);
    });
    const all = totals.reduce((a, b) => a + b, 0);
    const labelled = S.images.filter((im) => im.n_points > 0).length;
    $("totals").textContent =
      `this image: ${cur?.n_points || 0} · all: ${all} points, ${labelled}/${S.images.length} images`;

    const images = $("images");
    images.replaceChildren();
    const most = Math.max(1, ...S.images.map((im) => im.n_points));
    for (const im of S.images) {
      const li = el("li", im.id === S.image?.id ? "current" : "");
      li.dataset.id = im.id;
      li.append(el("span", "name", im.name), el("span", "count", String(im.n_points)));
      const bar = el("div", "bar");
      im.counts.forEach((n, c) => {
        if (!n) return;
        const seg = el("span");
        seg.style.width = `${(100 * n) / most}%`;
        seg.style.background = S.classes[c]?.color || "#888";
        bar.append(seg);
      });
      li.append(bar);
      li.onclick = () => {
        leaveProposalFor(im.id);
        loadImage(im.id).then(renderLists, showError);
      };
      images.append(li);
      if (im.id === S.image?.id) requestAnimationFrame(() => li.scrollIntoView({ block: "nearest" }));
    }

    const i = S.images.indexOf(cur);
    $("prev").disabled = i <= 0;
    $("next").disabled = i < 0 || i >= S.images.length - 1;
    $("image-name").textContent = cur
      ? `${cur.name}  (${i + 1}/${S.images.length}, ${cur.width}×${cur.height})`
      : "";
    $("image-name").title = $("image-name").textContent; // the toolbar may cut it short
    scheduleDraw();
  }

  function selectClass(i) {
    if (i < 0 || i >= S.classes.length) return;
    S.currentClass = i;
    renderLists();
  }

  function setStatus(text, kind = "") {
    const st = $("status");
    st.textContent = text || `points file: ${S.pointsFile}`;
    st.className = text ? kind : "";
  }

  function showError(err) {
    console.error(err);
    setStatus(err instanceof ApiError ? `error ${err.message}` : `error: ${err}`, "error");
  }

  // ---- input ------------------------------------------------------------------------------
  let press = null;
  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    canvas.focus();
    canvas.setPointerCapture(e.pointerId);
    press = { x: e.clientX, y: e.clientY, moved: false };
  });
  canvas.addEventListener("pointermove", (e) => {
    if (S.image) {
      const p = toImage(eventPos(e).x, eventPos(e).y);
      const inside = p.x >= 0 && p.y >= 0 && p.x < S.image.width && p.y < S.image.height;
      canvas.title = inside ? `x ${Math.floor(p.x)}, y ${Math.floor(p.y)}` : "";
    }
    if (!press) return;
    const dx = e.clientX - press.x;
    const dy = e.clientY - press.y;
    if (!press.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD) return;
    press.moved = true;
    canvas.classList.add("panning");
    pan(dx, dy);
    press.x = e.clientX;
    press.y = e.clientY;
  });
  canvas.addEventListener("pointerup", (e) => {
    const wasClick = press && !press.moved;
    press = null;
    canvas.classList.remove("panning");
    if (wasClick && S.image) click(eventPos(e));
  });
  canvas.addEventListener("pointercancel", () => {
    press = null;
    canvas.classList.remove("panning");
  });
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const p = eventPos(e);
      zoom(Math.pow(1.0015, -e.deltaY), p.x, p.y);
    },
    { passive: false },
  );

  function click(pos) {
    let best = null;
    let bestDist = HIT_RADIUS;
    for (const p of S.points) {
      const s = toScreen(p.x + 0.5, p.y + 0.5);
      const d = Math.hypot(s.x - pos.x, s.y - pos.y);
      if (d <= bestDist) [best, bestDist] = [p, d];
    }
    if (best) {
      S.selected = best.id;
      scheduleDraw();
      return;
    }
    S.selected = null;
    let hit = null;
    bestDist = HIT_RADIUS + 4; // the markers are a little larger than points
    S.proposals.forEach((p, i) => {
      if (p.answer || p.image !== S.image.id) return;
      const s = toScreen(p.x + 0.5, p.y + 0.5);
      const d = Math.hypot(s.x - pos.x, s.y - pos.y);
      if (d <= bestDist) [hit, bestDist] = [i, d];
    });
    if (hit !== null) {
      confirmProposal(hit, S.currentClass); // clicking a proposed spot: that spot, this class
      return;
    }
    const p = toImage(pos.x, pos.y);
    if (p.x >= 0 && p.y >= 0 && p.x < S.image.width && p.y < S.image.height) addPoint(p.x, p.y);
    else scheduleDraw();
  }

  function setOverlay(on) {
    S.showOverlay = on;
    $("show-overlay").checked = on;
    refreshOverlay();
  }
  function setBoundaries(on) {
    S.showBoundaries = on;
    $("show-boundaries").checked = on;
    refreshOverlay();
  }

  window.addEventListener("keydown", (e) => {
    const key = e.key.toLowerCase();
    // the opacity slider keeps its own arrow keys; every other key still works there
    if (e.target.type === "range" && /^(arrow|page|home|end)/.test(key)) return;
    const ctrl = e.ctrlKey || e.metaKey;
    let handled = true;
    if (ctrl && key === "z") undoRedo(e.shiftKey ? "redo" : "undo");
    else if (ctrl && key === "y") undoRedo("redo");
    else if (ctrl || e.altKey) handled = false;
    else if (/^[1-9]$/.test(key) && proposalOnScreen()) {
      if (!e.repeat) confirmProposal(S.activeProposal, Number(key) - 1);
    } else if (/^[1-9]$/.test(key)) selectClass(Number(key) - 1);
    else if ((key === "s" || key === " ") && proposalOnScreen()) {
      if (!e.repeat) skipProposal(S.activeProposal);
    } else if (key === "t") train();
    else if (key === "m") setPrediction(!S.showPrediction);
    else if (key === "r") fetchProposals();
    else if (key === "n" || key === "pagedown") goto(1);
    else if (key === "p" || key === "pageup") goto(-1);
    else if (key === "o") setOverlay(!S.showOverlay);
    else if (key === "b") setBoundaries(!S.showBoundaries);
    else if (key === "+" || key === "=") zoom(1.25);
    else if (key === "-" || key === "_") zoom(1 / 1.25);
    else if (key === "f" || key === "0") fit();
    else if (key === "arrowleft") pan(60, 0);
    else if (key === "arrowright") pan(-60, 0);
    else if (key === "arrowup") pan(0, 60);
    else if (key === "arrowdown") pan(0, -60);
    else if (key === "delete" || key === "backspace") deleteSelected();
    else if (key === "escape") {
      if (S.selected === null && S.activeProposal !== null) {
        S.activeProposal = null; // leave the proposals; a list item resumes
        renderProposals();
      }
      S.selected = null;
      scheduleDraw();
    } else handled = false;
    if (handled) e.preventDefault();
  });

  $("prev").onclick = () => goto(-1);
  $("next").onclick = () => goto(1);
  $("undo").onclick = () => undoRedo("undo");
  $("redo").onclick = () => undoRedo("redo");
  $("fit").onclick = fit;
  $("show-overlay").onchange = (e) => setOverlay(e.target.checked);
  $("show-boundaries").onchange = (e) => setBoundaries(e.target.checked);
  $("show-prediction").onchange = (e) => setPrediction(e.target.checked);
  $("train").onclick = train;
  $("stop-train").onclick = stopTraining;
  $("propose").onclick = () => fetchProposals();
  $("opacity").oninput = (e) => {
    S.opacity = Number(e.target.value);
    scheduleDraw();
  };
  S.opacity = Number($("opacity").value);

  // Another tab may have edited meanwhile: check when this one comes back to the front.
  window.addEventListener("focus", async () => {
    if (S.ready) scheduleModelPoll(0);
    if (!S.ready || S.busy) return;
    try {
      const st = await apiJson("GET", "/api/state");
      if (st.version !== S.version && !S.busy) {
        await reloadAll(S.image?.id);
        setStatus("changed in another tab: reloaded", "warn");
      }
    } catch (err) {
      showError(err);
    }
  });

  new ResizeObserver(resize).observe(canvas);

  // ---- for tests and scripts --------------------------------------------------------------
  window.pointseg = {
    get ready() { return S.ready; },
    get version() { return S.version; },
    get imageId() { return S.image?.id ?? null; },
    get lastOverlayVersion() { return S.lastOverlayVersion; },
    get currentClass() { return S.currentClass; },
    get selected() { return S.selected; },
    get points() { return S.points.map((p) => ({ ...p })); },
    get images() { return S.images.map((im) => ({ ...im })); },
    get classes() { return S.classes.map((c) => ({ ...c })); },
    get overlayMode() { return S.image?.overlay ?? null; },
    get overlayVisible() { return S.showOverlay; },
    get boundariesVisible() { return S.showBoundaries; },
    get opacity() { return S.opacity; },
    get level() { return S.level; },
    get view() { return { ...S.view }; },
    get tilesCached() { return tiles.size; },
    get busy() { return S.busy > 0 || overlayLoading || predictionLoading; },
    get model() { return S.model ? { ...S.model } : null; },
    get modelVersion() { return S.modelVersion; },
    get predictionVisible() { return S.showPrediction; },
    get predictionDrawnVersion() { return S.predictionDrawnVersion; },
    get proposals() { return S.proposals.map((p) => ({ ...p })); },
    get activeProposal() { return S.activeProposal; },
    get proposalsDrawn() { return S.proposalsDrawn; },
    refreshModel: () => scheduleModelPoll(0),
    // page (client) coordinates of the centre of image pixel (x, y)
    imageToClient(x, y) {
      const r = canvas.getBoundingClientRect();
      const s = toScreen(x + 0.5, y + 0.5);
      return { x: r.left + s.x, y: r.top + s.y };
    },
    reload: () => reloadAll(S.image?.id),
  };

  // ---- start ------------------------------------------------------------------------------
  (async () => {
    try {
      resize();
      await reloadAll();
      setStatus("");
      S.ready = true;
      renderModel();
      renderProposals();
      onModelVersion(); // a model loaded at start (--model): its prediction and proposals
      scheduleModelPoll(!S.model || S.model.state === "running" ? 0 : POLL_IDLE_MS);
    } catch (err) {
      showError(err);
    }
  })();
})();
