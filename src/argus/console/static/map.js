// The camera map as SVG: an equirectangular projection (x from longitude scaled by cos(mid-latitude), y from
// latitude) fitted to the cameras' bounding box, or, when the operator supplied a background image, the affine
// placement its two reference points [x, y, lat, lon] define. No tiles, nothing fetched from elsewhere.
const NS = "http://www.w3.org/2000/svg";
const W = 900;
const H = 560;

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids) if (kid != null) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return el;
}

function ref(r) {
  return Array.isArray(r) ? { x: r[0], y: r[1], lat: r[2], lon: r[3] } : r;
}

/** A function (lat, lon) -> [x, y] in the SVG's user space, and the viewBox size. */
export function projection(points, bg) {
  if (bg) {
    const [a, b] = bg.refs.map(ref);
    const sx = (b.x - a.x) / ((b.lon - a.lon) || 1e-9);
    const sy = (b.y - a.y) / ((b.lat - a.lat) || 1e-9);
    return { w: bg.w, h: bg.h, at: (lat, lon) => [a.x + (lon - a.lon) * sx, a.y + (lat - a.lat) * sy] };
  }
  const lats = points.map((p) => p[0]);
  const lons = points.map((p) => p[1]);
  const midLat = lats.length ? (Math.min(...lats) + Math.max(...lats)) / 2 : 0;
  const k = Math.cos((midLat * Math.PI) / 180);
  const xs = lons.map((l) => l * k);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...lats), Math.max(...lats)];
  if (!points.length) [x0, x1, y0, y1] = [0, 1, 0, 1];
  const span = Math.max(x1 - x0, y1 - y0, 1e-4);
  const pad = 70;
  const scale = Math.min((W - 2 * pad) / Math.max(x1 - x0, span * 0.2), (H - 2 * pad) / Math.max(y1 - y0, span * 0.2));
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return { w: W, h: H, at: (lat, lon) => [W / 2 + (lon * k - cx) * scale, H / 2 - (lat - cy) * scale] };
}

/**
 * cams: CameraOut[]; bg: {url, refs, w, h} | null; pins: open AlertOut[]; trail: EventOut[] in time order;
 * health(cam) -> css class suffix; onCamera(cam) on click / Enter / Space.
 */
export function drawMap({ cams, bg, pins, trail, health, onCamera }) {
  const placed = cams.filter((c) => typeof c.location.lat === "number" && typeof c.location.lon === "number");
  const svg = s("svg", { class: "map", role: "group", "aria-label": "Camera map", preserveAspectRatio: "xMidYMid meet" });
  const build = (bgSize) => {
    svg.replaceChildren();
    const pr = projection(placed.map((c) => [c.location.lat, c.location.lon]), bgSize);
    svg.setAttribute("viewBox", `0 0 ${pr.w} ${pr.h}`);
    if (bgSize) svg.append(s("image", { href: bg.url, x: 0, y: 0, width: pr.w, height: pr.h }));
    else {
      const g = s("g", { class: "graticule" });
      for (let i = 1; i < 8; i++) g.append(s("line", { x1: (pr.w * i) / 8, y1: 0, x2: (pr.w * i) / 8, y2: pr.h }));
      for (let i = 1; i < 5; i++) g.append(s("line", { x1: 0, y1: (pr.h * i) / 5, x2: pr.w, y2: (pr.h * i) / 5 }));
      svg.append(g);
    }
    const pos = new Map(placed.map((c) => [c.camera_id, pr.at(c.location.lat, c.location.lon)]));
    if (trail && trail.length) {
      const pts = trail.map((e) => pos.get(e.camera_id)).filter(Boolean);
      svg.append(s("polyline", { class: "trail-line", points: pts.map((p) => p.join(",")).join(" ") }));
      const g = s("g", { class: "trail-steps" });
      pts.forEach((p, i) => {
        const off = 16 + (i % 3) * 9;
        g.append(s("circle", { cx: p[0] + off, cy: p[1] - off, r: 9, class: "step-dot" }),
          s("text", { x: p[0] + off, y: p[1] - off + 4, class: "step-num", "text-anchor": "middle" }, String(i + 1)));
      });
      svg.append(g);
    }
    for (const c of placed) {
      const [x, y] = pos.get(c.camera_id);
      const n = pins.filter((a) => a.camera_id === c.camera_id).length;
      const g = s("g", { class: `cam h-${health(c)}`, tabindex: 0, role: "button", "data-camera": c.camera_id,
        "aria-label": `${c.name}: ${c.health ? c.health.state : "no health report"}${n ? `, ${n} open alerts` : ""}`,
        onclick: () => onCamera(c),
        onkeydown: (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onCamera(c); } } },
      s("title", {}, `${c.name} — ${c.location.address || c.camera_id}`),
      s("circle", { cx: x, cy: y, r: 11, class: "cam-dot" }),
      x > pr.w * 0.7 ? s("text", { x: x - 16, y: y + 4, class: "cam-label", "text-anchor": "end" }, c.name)
        : s("text", { x: x + 16, y: y + 4, class: "cam-label" }, c.name));
      if (n) {
        g.append(s("path", { class: "pin", d: `M${x} ${y - 14} l-9 -15 a10 10 0 1 1 18 0 z` }),
          s("text", { x, y: y - 30, class: "pin-num", "text-anchor": "middle" }, String(n)));
      }
      svg.append(g);
    }
    const unplaced = cams.length - placed.length;
    if (unplaced) svg.append(s("text", { x: 12, y: pr.h - 12, class: "map-note" }, `${unplaced} camera(s) without coordinates`));
  };
  if (bg) {
    const img = new Image();
    img.onload = () => build({ ...bg, w: img.naturalWidth, h: img.naturalHeight });
    img.onerror = () => build(null);
    img.src = bg.url;
  } else build(null);
  return svg;
}
