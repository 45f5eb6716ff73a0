// pointseg annotate: click query points on aerial images and see the propagated pseudo-label.
// Plain JS, no dependencies. The HTTP API is described in the backend (pointseg.annotate.app).
"use strict";

(() => {
  const TOKEN = new URLSearchParams(location.search).get("token");
  const TILE_CACHE_SIZE = 384; // decoded tiles kept (LRU); a 1920x1080 view needs ~70
  const HIT_RADIUS = 8; // screen px: a click this close to a point selects it
  const DRAG_THRESHOLD = 4; // screen px: a press that moves farther is a pan, not a click
  const MAX_SCALE = 64; // screen px per image px

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
  const tiles = new Map(); // url -> {bitmap, failed}; Map order = recency

  function tile(url) {
    let entry = tiles.get(url);
    if (entry) {
      tiles.delete(url); // move to the most recent end
      tiles.set(url, entry);
      return entry;
    }
    entry = { bitmap: null, failed: false };
    tiles.set(url, entry);
    apiBitmap(url).then(
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

    // pseudo-label overlay and superpixel boundaries, nearest-neighbour
    ctx.imageSmoothingEnabled = false;
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
  }

  // Large rasters: overlay and boundary tiles of the current version (boundaries change too: a
  // block gets its superpixels with its first point); until they arrive, those of the version
  // drawn before. Returns whether every tile in view is current.
  function drawVersionedTiles(kind, drawnVersion) {
    let complete = true;
    for (const t of visibleTiles(S.level)) {
      const base = tileUrl(kind, t);
      let bitmap = tile(`${base}?v=${S.version}`).bitmap;
      if (!bitmap) {
        complete = false;
        bitmap = loaded(`${base}?v=${drawnVersion}`);
      }
      if (bitmap) ctx.drawImage(bitmap, t.x, t.y, t.w, t.h);
    }
    return complete;
  }

  function drawTiledOverlay() {
    if (S.showOverlay) {
      ctx.globalAlpha = S.opacity;
      if (drawVersionedTiles("overlay", S.lastOverlayVersion)) S.lastOverlayVersion = S.version;
      ctx.globalAlpha = 1;
    }
    if (S.showBoundaries && drawVersionedTiles("boundaries", S.boundariesVersion)) {
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

  // ---- loading ----------------------------------------------------------------------------
  async function loadState() {
    const st = await tracked(apiJson("GET", "/api/state"));
    S.classes = st.classes;
    S.images = st.images;
    S.pointsFile = st.points_file;
    S.version = st.version;
    S.currentClass = clamp(S.currentClass, 0, S.classes.length - 1);
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
      fit();
    } else if (!S.points.some((p) => p.id === S.selected)) {
      S.selected = null;
    }
    recount();
    refreshOverlay();
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
    if (j !== i) loadImage(S.images[j].id).then(renderLists, showError);
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

  function addPoint(x, y) {
    const imageId = S.image.id;
    const cls = S.currentClass;
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
      afterChange();
    });
  }

  function afterChange() {
    renderLists();
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
      li.onclick = () => loadImage(im.id).then(renderLists, showError);
      images.append(li);
      if (im.id === S.image?.id) requestAnimationFrame(() => li.scrollIntoView({ block: "nearest" }));
    }

    const i = S.images.indexOf(cur);
    $("prev").disabled = i <= 0;
    $("next").disabled = i < 0 || i >= S.images.length - 1;
    $("image-name").textContent = cur
      ? `${cur.name}  (${i + 1}/${S.images.length}, ${cur.width}×${cur.height})`
      : "";
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
    else if (/^[1-9]$/.test(key)) selectClass(Number(key) - 1);
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
  $("opacity").oninput = (e) => {
    S.opacity = Number(e.target.value);
    scheduleDraw();
  };
  S.opacity = Number($("opacity").value);

  // Another tab may have edited meanwhile: check when this one comes back to the front.
  window.addEventListener("focus", async () => {
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
    get busy() { return S.busy > 0 || overlayLoading; },
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
    } catch (err) {
      showError(err);
    }
  })();
})();
