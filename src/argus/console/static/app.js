// Argus operator console: hash-routed views over /api/v1. No build step, no dependencies; DOM is built with
// createElement (never HTML strings from data), so names and notes from the API cannot inject markup, and the
// strict CSP (script-src 'self', style-src 'self') holds without exceptions.
import {
  api, ApiError, blobUrl, clearToken, download, forgetBlobs, formatDetail, qs, setToken,
  setUnauthorizedHandler, streamAlerts, token,
} from "./api.js";
import { drawMap } from "./map.js";

const $ = (sel) => document.querySelector(sel);
const S = {
  me: null,
  perms: new Set(),
  cameras: new Map(),
  alerts: new Map(), // alert_id -> AlertOut, for the feed
  stopStream: null,
  feedListeners: new Set(),
};
const can = (p) => S.perms.has(p);

// -- tiny DOM helper -----------------------------------------------------------------------------------------------

export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// -- errors: shown, never swallowed --------------------------------------------------------------------------------

export function showError(e) {
  if (e instanceof ApiError && e.status === 401) return; // the login screen says it
  const box = $("#errors");
  const msg = e instanceof ApiError ? `${e.status} ${e.error}: ${formatDetail(e.detail)}` : String(e.message || e);
  const item = h("div", { class: "error-item" },
    h("span", { class: "error-text", text: msg }),
    h("button", { type: "button", class: "ghost small", "aria-label": "Dismiss error",
      onclick: () => item.remove() }, "×"));
  box.append(item);
  while (box.children.length > 4) box.firstChild.remove();
}
window.addEventListener("unhandledrejection", (ev) => { showError(ev.reason); ev.preventDefault(); });

// -- formatting ----------------------------------------------------------------------------------------------------

const localFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const shortFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
function fmtTs(ts) { return ts == null ? "—" : localFmt.format(new Date(ts * 1000)); }
function cameraLocal(ts, cameraId) {
  const cam = S.cameras.get(cameraId);
  const tz = cam && cam.timezone;
  if (!tz) return `Camera local time: unknown time zone (shown: ${Intl.DateTimeFormat().resolvedOptions().timeZone})`;
  try {
    const f = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "long", timeZone: tz });
    return `Camera local time: ${f.format(new Date(ts * 1000))} (${tz})`;
  } catch {
    return `Camera local time: invalid time zone ${tz}`;
  }
}
function timeEl(ts, cameraId, short) {
  const d = new Date(ts * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return h("time", { datetime: d.toISOString(), title: cameraLocal(ts, cameraId) },
    short && today ? shortFmt.format(d) : fmtTs(ts));
}
const n3 = (x) => (typeof x === "number" ? x.toFixed(3) : "—");
function scoreEl(score, threshold) {
  const pct = Math.max(0, Math.min(100, score * 100)); // cosine, drawn on 0..1 (below 0 is "no likeness")
  const tpct = Math.max(0, Math.min(100, threshold * 100));
  const bar = h("span", { class: "bar", "aria-hidden": "true" }, h("span", { class: "fill" }), h("span", { class: "tick" }));
  bar.firstChild.style.width = `${pct}%`;
  bar.lastChild.style.left = `${tpct}%`;
  return h("span", { class: "score", title: `cosine ${n3(score)} against threshold ${n3(threshold)}` },
    h("strong", { text: n3(score) }), h("span", { class: "muted", text: ` / ${n3(threshold)}` }), bar);
}
const STATUS_LABEL = { new: "new", acknowledged: "acknowledged", dismissed: "dismissed", not_this_person: "not this person" };
function statusEl(st) { return h("span", { class: `pill st-${st}`, text: STATUS_LABEL[st] || st }); }
const q = encodeURIComponent;

export function healthClass(cam) {
  if (cam.enabled === false) return "off";
  const hl = cam.health;
  if (!hl) return "unknown";
  const st = hl.state;
  if (st === "failed" || st === "misconfigured") return "bad";
  if (st === "connecting" || st === "stale" || st === "backoff") return "warn";
  if (st === "streaming") return (hl.last_frame_age_s ?? 0) > 30 ? "warn" : "ok";
  return "idle";
}

function crop(path, alt, cls) {
  const img = h("img", { class: cls || "crop", alt, width: 150, height: 150 });
  blobUrl(path).then((u) => { img.src = u; }, (e) => { img.replaceWith(h("span", { class: `${cls || "crop"} noimg`, text: "no image" })); if (!(e instanceof ApiError && e.status === 404)) showError(e); });
  return img;
}

// -- session -------------------------------------------------------------------------------------------------------

const VIEWS = [
  { id: "feed", label: "Live feed", perm: "alerts.read" },
  { id: "map", label: "Map", perm: "cameras.read" },
  { id: "cameras", label: "Cameras", perm: "cameras.read" },
  { id: "watchlist", label: "Watch-list", perm: "watchlists.read" },
  { id: "history", label: "History", perm: "events.read" },
  { id: "audit", label: "Audit", perm: "audit.read" },
];

function toLogin(message) {
  if (S.stopStream) S.stopStream();
  S.stopStream = null;
  clearToken();
  forgetBlobs();
  S.me = null;
  S.perms = new Set();
  S.alerts.clear();
  delete document.body.dataset.ready;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  $("#view").hidden = true;
  $("#view").replaceChildren();
  $("#login").hidden = false;
  const m = $("#login-msg");
  m.hidden = !message;
  m.textContent = message || "";
  $("#login-token").value = "";
  $("#login-token").focus();
}
setUnauthorizedHandler(() => { if (S.me || token()) toLogin("Session expired or key revoked — sign in again."); });

async function startSession() {
  const me = await api("/me");
  S.me = me;
  S.perms = new Set(me.permissions || []);
  $("#login").hidden = true;
  $("#view").hidden = false;
  $("#who").hidden = false;
  $("#actor").textContent = `${me.actor} · ${me.role}`;
  const nav = $("#nav");
  nav.replaceChildren(...VIEWS.filter((v) => can(v.perm)).map((v) =>
    h("a", { href: `#/${v.id}`, "data-view": v.id }, v.label)));
  nav.hidden = false;
  if (can("cameras.read")) await loadCameras();
  if (can("alerts.read")) await startFeed();
  await route();
  document.body.dataset.ready = "1"; // the first view is drawn (tests and scripts wait for this)
}

async function loadCameras() {
  const cams = await api("/cameras");
  S.cameras = new Map(cams.map((c) => [c.camera_id, c]));
  return cams;
}

// -- the live feed state (kept while the session lasts, whatever the view) ------------------------------------------

function mergeAlert(a) {
  S.alerts.set(a.alert_id, a);
  for (const fn of S.feedListeners) fn(a);
}

async function startFeed() {
  const page = await api(`/alerts${qs({ limit: 100 })}`);
  for (const a of page.items) S.alerts.set(a.alert_id, a);
  const newest = page.items.reduce((m, a) => Math.max(m, a.ts_alert), 0);
  const since = Math.max(0, Math.floor(Math.min(newest || Date.now() / 1000, Date.now() / 1000)) - 1);
  const live = $("#live");
  S.stopStream = streamAlerts({
    since,
    onAlert: mergeAlert,
    onState: (up) => { live.classList.toggle("up", up); live.textContent = up ? "live" : "reconnecting"; },
    onError: showError,
  });
}

// -- views ---------------------------------------------------------------------------------------------------------

function feedRow(a) {
  const row = h("li", { class: `feed-row st-row-${a.status}`, "data-alert": a.alert_id },
    h("a", { href: `#/alert/${q(a.alert_id)}`, class: "feed-link", "aria-label": `Alert: ${a.display_name} at ${a.camera_name}` },
      a.has_crop && can("alerts.crop") ? crop(`/alerts/${q(a.alert_id)}/crop`, `face of alert ${a.alert_id}`, "thumb")
        : h("span", { class: "thumb noimg", text: "—" }),
      h("span", { class: "who-col" },
        h("span", { class: "name", text: a.display_name }),
        h("span", { class: "muted mono", text: a.person_id }),
        h("span", { class: "wl", text: a.watchlist })),
      h("span", { class: "cam-col" },
        h("span", { text: a.camera_name || a.camera_id }),
        h("span", { class: "muted", text: [a.location.zone, a.location.address].filter(Boolean).join(" · ") })),
      scoreEl(a.score, a.threshold),
      h("span", { class: "st-col" }, statusEl(a.status), a.emotion ? h("span", { class: "muted", text: a.emotion }) : null),
      h("span", { class: "t-col" }, timeEl(a.ts_alert, a.camera_id, true))));
  return row;
}

function viewFeed(root) {
  const filter = h("select", { id: "feed-status", "aria-label": "Show alerts with status" },
    h("option", { value: "" }, "All statuses"), h("option", { value: "new" }, "Open (new)"),
    h("option", { value: "acknowledged" }, "Acknowledged"), h("option", { value: "dismissed" }, "Dismissed"),
    h("option", { value: "not_this_person" }, "Not this person"));
  const count = h("span", { class: "muted", id: "feed-count" });
  const list = h("ol", { class: "feed", id: "feed", "aria-live": "polite", "aria-label": "Alerts, newest first" });
  const render = () => {
    const st = filter.value;
    const items = [...S.alerts.values()].filter((a) => !st || a.status === st).sort((x, y) => y.ts_alert - x.ts_alert);
    list.replaceChildren(...items.slice(0, 200).map(feedRow));
    if (!items.length) list.append(h("li", { class: "empty", text: "No alerts yet. New alerts appear here as they are raised." }));
    const open = [...S.alerts.values()].filter((a) => a.status === "new").length;
    count.textContent = `${items.length} shown · ${open} open`;
  };
  filter.addEventListener("change", render);
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Live feed" }), count, h("span", { class: "grow" }), filter),
    h("div", { class: "feed-head", "aria-hidden": "true" }, h("span", {}, ""), h("span", {}, "Person"), h("span", {}, "Camera"),
      h("span", {}, "Score / threshold"), h("span", {}, "Status"), h("span", {}, "Time")),
    list);
  render();
  let pending = false;
  const onAlert = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } };
  S.feedListeners.add(onAlert);
  return () => S.feedListeners.delete(onAlert);
}

async function viewAlert(root, id) {
  const a = await api(`/alerts/${q(id)}`);
  mergeAlert(a);
  const faces = h("div", { class: "faces" });
  if (can("alerts.crop")) {
    faces.append(h("figure", {}, a.has_crop ? crop(`/alerts/${q(id)}/crop`, "face seen on camera", "face") : h("span", { class: "face noimg", text: "no crop" }),
      h("figcaption", { text: "On camera" })));
    faces.append(h("figure", {}, crop(`/alerts/${q(id)}/photo`, "enrolled photo", "face"), h("figcaption", { text: "Enrolled" })));
    if (can("persons.read")) {
      api(`/persons/${q(a.person_id)}`).then((p) => {
        for (let n = 1; n < Math.min(p.photos || 0, 5); n++) {
          faces.append(h("figure", {}, crop(`/persons/${q(a.person_id)}/photos/${n}`, `enrolled photo ${n + 1}`, "face"),
            h("figcaption", { text: `Enrolled #${n + 1}` })));
        }
      }, (e) => { if (!(e instanceof ApiError && e.status === 404)) showError(e); });
    }
  } else {
    faces.append(h("p", { class: "muted", text: "Your role may not view face images." }));
  }
  const cam = S.cameras.get(a.camera_id);
  const facts = h("dl", { class: "facts" },
    h("dt", {}, "Person"), h("dd", {}, h("strong", { text: a.display_name }), " ", h("span", { class: "mono muted", text: a.person_id })),
    h("dt", {}, "Watch-list"), h("dd", { text: a.watchlist }),
    h("dt", {}, "Score"), h("dd", {}, scoreEl(a.score, a.threshold)),
    h("dt", {}, "Margin"), h("dd", { text: a.candidates.length > 1 ? `${n3(a.margin)} over the runner-up` : "no runner-up: nobody else listed resembles this face" }),
    h("dt", {}, "Faces"), h("dd", { id: "alert-faces",
      text: `${a.faces_supporting} of ${a.faces_embedded} embedded agree · ${a.faces_seen} seen` +
        (a.score_history.length ? ` · scores ${a.score_history.map(n3).join(", ")}` : "") }),
    h("dt", {}, "Emotion"), h("dd", { id: "alert-emotion" }, h("span", { text: a.emotion || "—" }),
      ...(a.emotion_timeline.length > 1 ? [h("ol", { class: "timeline" }, ...a.emotion_timeline.map((c) =>
        h("li", {}, timeEl(c.ts, a.camera_id), " ", h("span", { text: `${c.label} (${Math.round(c.confidence * 100)} %)` }))))] : [])),
    h("dt", {}, "Camera"), h("dd", {}, h("span", { text: a.camera_name || a.camera_id }), " ", h("span", { class: "mono muted", text: a.camera_id })),
    h("dt", {}, "Address"), h("dd", { text: a.location.address || "—" }),
    h("dt", {}, "Zone"), h("dd", { text: a.location.zone || "—" }),
    h("dt", {}, "Captured"), h("dd", {}, timeEl(a.ts_capture, a.camera_id)),
    h("dt", {}, "Alerted"), h("dd", {}, timeEl(a.ts_alert, a.camera_id)),
    h("dt", {}, "Status"), h("dd", { id: "alert-status" }, statusEl(a.status),
      a.acked_by ? h("span", { class: "muted", text: ` by ${a.acked_by} ${a.acked_at ? fmtTs(a.acked_at) : ""}` }) : null,
      a.note ? h("div", { class: "note", text: `“${a.note}”` }) : null),
    a.withdrawn ? h("dt", {}, "Withdrawn") : null, a.withdrawn ? h("dd", { text: "the tracker withdrew this alert" }) : null);
  const cands = h("table", { class: "grid" }, h("caption", { text: "Candidates" }),
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "Person"), h("th", {}, "Watch-list"), h("th", { class: "num" }, "Score"))),
    h("tbody", {}, ...(a.candidates.length ? a.candidates : []).map((c, i) => h("tr", {},
      h("td", { text: String(i + 1) }), h("td", {}, c.display_name, " ", h("span", { class: "mono muted", text: c.person_id })),
      h("td", { text: c.watchlist }), h("td", { class: "num", text: n3(c.score) })))));
  const side = h("div", { class: "side" }, facts);
  if (can("alerts.triage")) side.append(triageForm(a));
  root.append(
    h("div", { class: "toolbar" }, h("a", { href: "#/feed", class: "back" }, "← Feed"), h("h1", { text: `Alert · ${a.display_name}` }),
      h("span", { class: "grow" }),
      can("events.read") ? h("a", { class: "button", href: `#/trail/${q(a.person_id)}` }, "Trail on map") : null),
    h("div", { class: "detail" }, h("div", { class: "card" }, faces, h("div", { class: "cands" }, cands)), h("div", { class: "card" }, side)));
}

function triageForm(a) {
  const reason = h("textarea", { id: "triage-reason", rows: 2, maxlength: 1000, required: true,
    placeholder: "e.g. officer dispatched; wrong person, different hair line…" });
  const out = h("p", { class: "muted", id: "triage-out", "aria-live": "polite" });
  const act = (action) => async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) { reason.focus(); out.textContent = "A reason is required (it goes into the audit trail)."; return; }
    const btns = form.querySelectorAll("button");
    btns.forEach((b) => { b.disabled = true; });
    try {
      const upd = await api(`/alerts/${q(a.alert_id)}/triage`, { method: "POST", json: { action, reason: reason.value.trim() } });
      mergeAlert(upd);
      $("#alert-status").replaceChildren(statusEl(upd.status), h("span", { class: "muted", text: ` by ${upd.acked_by}` }),
        upd.note ? h("div", { class: "note", text: `“${upd.note}”` }) : "");
      out.textContent = `Recorded: ${STATUS_LABEL[upd.status] || upd.status}.`;
    } catch (e) {
      showError(e);
    } finally {
      btns.forEach((b) => { b.disabled = false; });
    }
  };
  const form = h("form", { class: "triage", id: "triage" },
    h("label", { for: "triage-reason" }, "Reason"), reason,
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary", id: "btn-ack", onclick: act("acknowledge") }, "Acknowledge"),
      h("button", { type: "button", id: "btn-dismiss", onclick: act("dismiss") }, "Dismiss"),
      h("button", { type: "button", class: "danger", id: "btn-ntp", onclick: act("not_this_person"),
        title: "Dismiss and keep this face as negative evidence: the matcher stops naming this person for it" }, "Not this person")),
    out);
  return form;
}

async function mapData() {
  const cams = await loadCameras();
  let bg = null;
  try {
    const m = await api("/map");
    if (m.image && m.refs && m.refs.length === 2) bg = { url: await blobUrl("/map/image"), refs: m.refs };
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e; // no map endpoint: fit the cameras' box
  }
  return { cams, bg };
}

async function viewMap(root) {
  const { cams, bg } = await mapData();
  const open = [...S.alerts.values()].filter((a) => a.status === "new");
  const panel = h("div", { class: "card map-side", id: "map-side" }, h("p", { class: "muted", text: "Select a camera to see its alerts." }));
  const showCam = async (cam) => {
    panel.replaceChildren(h("h2", { text: cam.name }), h("p", { class: "muted", text: [cam.camera_id, cam.location.zone, cam.location.address].filter(Boolean).join(" · ") }),
      h("p", {}, h("span", { class: `dot h-${healthClass(cam)}` }), ` ${cam.health ? cam.health.state : "no health reported"}`));
    const page = await api(`/alerts${qs({ camera: cam.camera_id, limit: 20 })}`);
    panel.append(h("ol", { class: "mini" }, ...page.items.map((a) => h("li", {},
      h("a", { href: `#/alert/${q(a.alert_id)}` }, a.display_name), " ", statusEl(a.status), " ", timeEl(a.ts_alert, a.camera_id, true)))));
    if (!page.items.length) panel.append(h("p", { class: "muted", text: "No alerts from this camera." }));
  };
  const svg = drawMap({ cams, bg, pins: open, health: healthClass, onCamera: (c) => showCam(c).catch(showError) });
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Map" }), h("span", { class: "muted", text: `${cams.length} cameras · ${open.length} open alerts` }),
    h("span", { class: "grow" }), legend()),
  h("div", { class: "map-wrap" }, h("div", { class: "card map-card" }, svg), panel));
}

function legend() {
  return h("span", { class: "legend" }, ...[["ok", "streaming"], ["warn", "degraded"], ["bad", "failed"], ["idle", "idle/ended"], ["unknown", "no report"]]
    .map(([c, l]) => h("span", {}, h("span", { class: `dot h-${c}` }), ` ${l}`)), h("span", {}, h("span", { class: "pin-key" }), " open alert"));
}

async function viewTrail(root, pid) {
  const [{ cams, bg }, events] = await Promise.all([mapData(), allEvents({ person: pid }, 500)]);
  const seen = events.slice().sort((x, y) => x.ts_capture - y.ts_capture);
  const pins = [...S.alerts.values()].filter((a) => a.status === "new" && a.person_id === pid);
  const svg = drawMap({ cams, bg, pins, health: healthClass, trail: seen, onCamera: () => { location.hash = "#/map"; } });
  const list = h("ol", { class: "trail", id: "trail-list" }, ...seen.map((e, i) => {
    const cam = S.cameras.get(e.camera_id);
    return h("li", {}, h("span", { class: "step", text: String(i + 1) }), h("span", {},
      h("strong", { text: cam ? cam.name : e.camera_id }), " ", timeEl(e.ts_capture, e.camera_id), " ",
      h("span", { class: "muted", text: `score ${n3(e.score)}${e.emotion ? ` · ${e.emotion}` : ""}` }),
      e.alert_id ? [" ", h("a", { href: `#/alert/${q(e.alert_id)}` }, "alert")] : null));
  }));
  if (!seen.length) list.append(h("li", { class: "empty", text: "No sightings of this person." }));
  const name = seen.length ? seen[0].display_name : pid;
  root.append(h("div", { class: "toolbar" }, h("h1", { text: `Trail · ${name}` }), h("span", { class: "mono muted", text: pid }),
    h("span", { class: "muted", text: `${seen.length} sightings across ${new Set(seen.map((e) => e.camera_id)).size} cameras` })),
  h("div", { class: "map-wrap" }, h("div", { class: "card map-card" }, svg), h("div", { class: "card map-side" }, h("h2", { text: "Sightings in time order" }), list)));
}

async function allEvents(params, max) {
  const out = [];
  let cursor = null;
  do {
    const page = await api(`/events${qs({ ...params, limit: 200, cursor })}`);
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

async function viewCameras(root) {
  const cams = await loadCameras();
  const num = (v, d = 1) => (typeof v === "number" ? v.toFixed(d) : "—");
  const body = h("tbody", {}, ...cams.map((c) => {
    const hl = c.health || {};
    return h("tr", {},
      h("td", {}, h("span", { class: `dot h-${healthClass(c)}` }), " ", h("span", { text: c.health ? hl.state : (c.enabled ? "no report" : "disabled") })),
      h("td", {}, h("strong", { text: c.name }), h("div", { class: "mono muted", text: c.camera_id })),
      h("td", { text: [c.location.zone, c.location.address].filter(Boolean).join(" · ") || "—" }),
      h("td", { class: "num", text: `${num(hl.fps)} / ${num(c.fps)}` }),
      h("td", { class: "num", text: hl.last_frame_age_s == null ? "—" : `${num(hl.last_frame_age_s)} s` }),
      h("td", { class: "num", text: hl.frames_dropped ?? "—" }),
      h("td", { class: "num", text: hl.reconnects ?? "—" }),
      h("td", { text: c.timezone || "—" }));
  }));
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Cameras" }), h("span", { class: "grow" }),
    h("button", { type: "button", onclick: () => route() }, "Refresh")),
  h("div", { class: "card" }, h("table", { class: "grid", id: "cameras" },
    h("thead", {}, h("tr", {}, ...["State", "Camera", "Zone · address", "fps (now / set)", "Last frame", "Dropped", "Reconnects", "Time zone"]
      .map((t, i) => h("th", { class: i >= 3 && i <= 6 ? "num" : null }, t)))), body)));
}

// -- watch-list ----------------------------------------------------------------------------------------------------

const toEpoch = (v) => (v ? new Date(`${v}T23:59:59`).getTime() / 1000 : null);
const toDateInput = (ts) => (ts == null ? "" : new Date(ts * 1000).toISOString().slice(0, 10));

async function viewWatchlist(root) {
  const [lists, persons] = await Promise.all([api("/watchlists"), can("persons.read") ? api("/persons") : { items: [] }]);
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const counts = (n) => `${plural(n, "person", "persons")} · ${plural(lists.length, "list", "lists")}`;
  const summary = h("span", { class: "muted", text: counts(persons.items.length) });
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Watch-list" }), summary));
  const grid = h("div", { class: "wl-grid" });
  root.append(grid);
  const left = h("div", { class: "col" });
  const right = h("div", { class: "col" });
  grid.append(left, right);
  if (can("persons.read")) left.append(personsCard(persons.items));
  refreshPersons = async () => {
    const fresh = await api("/persons");
    left.firstChild.replaceWith(personsCard(fresh.items));
    summary.textContent = counts(fresh.items.length);
  };
  left.append(listsCard(lists));
  if (can("persons.write")) right.append(enrollCard(lists));
}

let refreshPersons = async () => {};
function personsCard(items) {
  const body = h("tbody", {}, ...items.map((p) => {
    const row = h("tr", { "data-person": p.person_id },
      h("td", {}, h("strong", { text: p.display_name }), h("div", { class: "mono muted", text: p.person_id })),
      h("td", { text: p.watchlist }),
      h("td", { text: fmtTs(p.enrolled_at) }),
      h("td", {}, p.expires_at ? h("span", { class: p.active ? "" : "pill st-dismissed", text: fmtTs(p.expires_at) }) : "—"),
      h("td", {}, h("span", { class: `pill ${p.active ? "st-acknowledged" : "st-dismissed"}`, text: p.active ? "active" : "expired" })),
      h("td", { class: "actions" },
        can("events.read") ? h("a", { href: `#/trail/${q(p.person_id)}`, class: "button small" }, "Trail") : null,
        can("persons.write") ? h("button", { type: "button", class: "small", onclick: () => editPerson(p, row) }, "Edit") : null));
    return row;
  }));
  if (!items.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "empty", text: "Nobody is enrolled." })));
  return h("div", { class: "card" }, h("h2", { text: "Enrolled persons" }), h("table", { class: "grid", id: "persons" },
    h("thead", {}, h("tr", {}, ...["Person", "List", "Enrolled", "Expires", "State", ""].map((t) => h("th", {}, t)))), body));
}

function editPerson(p, row) {
  const id = (s) => `edit-${s}`;
  const name = h("input", { id: id("name"), value: p.display_name, maxlength: 200 });
  const wl = h("input", { id: id("wl"), value: p.watchlist, pattern: "[a-z0-9][a-z0-9_-]{0,63}" });
  const exp = h("input", { id: id("exp"), type: "date", value: toDateInput(p.expires_at) });
  const notes = h("textarea", { id: id("notes"), rows: 2 });
  notes.value = p.notes || "";
  const reason = h("input", { id: id("reason"), required: true, maxlength: 1000, placeholder: "why (audited)" });
  const form = h("form", { class: "edit" },
    h("div", { class: "fields" },
      h("label", { for: id("name") }, "Name", name), h("label", { for: id("wl") }, "Watch-list", wl),
      h("label", { for: id("exp") }, "Expires", exp), h("label", { for: id("notes") }, "Notes", notes),
      h("label", { for: id("reason") }, "Reason", reason)),
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary" }, "Save"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!reason.value.trim()) { reason.focus(); reason.reportValidity(); return; }
        try {
          await api(`/persons/${q(p.person_id)}${qs({ reason: reason.value.trim() })}`, { method: "DELETE" });
          route();
        } catch (e) { showError(e); }
      } }, "Remove from list"),
      h("button", { type: "button", class: "ghost", onclick: () => route() }, "Cancel")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { display_name: name.value, watchlist: wl.value, notes: notes.value, reason: reason.value.trim() };
    const e = toEpoch(exp.value);
    if (e !== p.expires_at) body.expires_at = e;
    try {
      await api(`/persons/${q(p.person_id)}`, { method: "PATCH", json: body });
      route();
    } catch (err) { showError(err); }
  });
  const tr = h("tr", { class: "editing" }, h("td", { colspan: 6 }, form));
  row.after(tr);
  name.focus();
}

function listsCard(lists) {
  const body = h("tbody", {}, ...lists.map((w) => h("tr", {},
    h("td", {}, h("strong", { text: w.name }), w.description ? h("div", { class: "muted", text: w.description }) : null),
    h("td", { class: "num", text: w.threshold == null ? "default" : n3(w.threshold) }),
    h("td", { text: w.legal_basis || "—" }), h("td", { class: "muted", text: `${w.updated_by}, ${fmtTs(w.updated_at)}` }))));
  if (!lists.length) body.append(h("tr", {}, h("td", { colspan: 4, class: "empty", text: "No watch-lists configured." })));
  const card = h("div", { class: "card" }, h("h2", { text: "Watch-lists and thresholds" }),
    h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ...["List", "Threshold", "Legal basis", "Changed"].map((t, i) => h("th", { class: i === 1 ? "num" : null }, t)))), body));
  if (can("watchlists.write")) {
    const f = (id, label, attrs) => h("label", { for: id }, label, h("input", { id, ...attrs }));
    const form = h("form", { class: "inline", id: "wl-form" },
      f("wl-name", "List", { required: true, pattern: "[a-z0-9][a-z0-9_-]{0,63}", placeholder: "default" }),
      f("wl-threshold", "Threshold", { type: "number", step: "0.01", min: "-1", max: "1", placeholder: "default" }),
      f("wl-basis", "Legal basis", { maxlength: 2000 }),
      f("wl-reason", "Reason", { required: true, maxlength: 1000 }),
      h("button", { type: "submit" }, "Save list"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const t = $("#wl-threshold").value;
      try {
        await api(`/watchlists/${q($("#wl-name").value)}`, { method: "PUT", json: {
          threshold: t === "" ? null : Number(t), legal_basis: $("#wl-basis").value, reason: $("#wl-reason").value } });
        route();
      } catch (e) { showError(e); }
    });
    card.append(form);
  }
  return card;
}

function enrollCard(lists) {
  const out = h("div", { id: "enroll-out", "aria-live": "polite" });
  const names = [...new Set(["default", ...lists.map((w) => w.name)])];
  const field = (id, label, el) => h("label", { for: id }, label, el);
  const form = h("form", { id: "enroll-form", class: "stack" },
    field("en-id", "Person id", h("input", { id: "en-id", name: "person_id", required: true, maxlength: 128, placeholder: "P-100/records-id" })),
    field("en-name", "Display name", h("input", { id: "en-name", name: "display_name", required: true, maxlength: 200 })),
    field("en-wl", "Watch-list", h("select", { id: "en-wl", name: "watchlist" }, ...names.map((n) => h("option", { value: n }, n)))),
    field("en-exp", "Expires (optional)", h("input", { id: "en-exp", type: "date" })),
    field("en-notes", "Notes", h("textarea", { id: "en-notes", name: "notes", rows: 2, maxlength: 10000 })),
    field("en-reason", "Reason (audited)", h("input", { id: "en-reason", name: "reason", required: true, maxlength: 1000, placeholder: "warrant / case reference" })),
    field("en-photos", "Photos (JPEG/PNG, one face each)", h("input", { id: "en-photos", name: "photos", type: "file", multiple: true, required: true, accept: "image/jpeg,image/png" })),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", id: "en-submit" }, "Enroll")), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    fd.delete("photos");
    for (const file of $("#en-photos").files) fd.append("photos", file, file.name);
    const exp = toEpoch($("#en-exp").value);
    if (exp != null) fd.set("expires_at", String(exp));
    out.replaceChildren(h("p", { class: "muted", text: "Checking photos…" }));
    const btn = $("#en-submit");
    btn.disabled = true;
    try {
      const res = await api("/persons", { method: "POST", form: fd });
      out.replaceChildren(h("p", { class: "ok-text", text: `Enrolled ${res.person.display_name} (${res.person.photos} photo${res.person.photos === 1 ? "" : "s"}).` }),
        verdictList(res.photos),
        Object.keys(res.look_alikes || {}).length ? h("p", { class: "warn-text", text: `Looks like: ${Object.entries(res.look_alikes).map(([k, v]) => `${k} (${n3(v)})`).join(", ")}` }) : null);
      refreshPersons().catch(showError);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422 && Array.isArray(e.detail) && e.detail.length && "accepted" in e.detail[0]) {
        out.replaceChildren(h("p", { class: "bad-text", text: "Not enrolled: no photo was accepted." }), verdictList(e.detail));
      } else if (e instanceof ApiError && e.status === 413) {
        out.replaceChildren(h("p", { class: "bad-text", id: "enroll-413", text: `Upload too large: ${formatDetail(e.detail)}` }));
        showError(e);
      } else {
        out.replaceChildren();
        showError(e);
      }
    } finally {
      btn.disabled = false;
    }
  });
  return h("div", { class: "card" }, h("h2", { text: "Enroll a person" }), form);
}

function verdictList(verdicts) {
  return h("ul", { class: "verdicts", id: "verdicts" }, ...verdicts.map((v) => h("li", { class: v.accepted ? "ok" : "bad" },
    h("span", { class: `pill ${v.accepted ? "st-acknowledged" : "st-new"}`, text: v.accepted ? "accepted" : (v.code || "rejected") }), " ",
    h("span", { class: "mono", text: v.filename }), " ",
    h("span", { class: "muted", text: v.accepted ? [v.face_px ? `face ${Math.round(v.face_px)} px` : "", v.consistency != null ? `consistency ${n3(v.consistency)}` : ""].filter(Boolean).join(" · ") : v.reason }))));
}

// -- history and audit: filter forms with cursor pagination ---------------------------------------------------------

function dtInput(id, label) { return h("label", { for: id }, label, h("input", { id, type: "datetime-local" })); }
const dtVal = (id) => { const v = $(`#${id}`).value; return v ? new Date(v).getTime() / 1000 : undefined; };

function pager(root, fetchPage, renderRows) {
  const body = h("tbody");
  const more = h("button", { type: "button", id: "more", hidden: true }, "Load more");
  const info = h("span", { class: "muted" });
  let cursor = null;
  let shown = 0;
  const load = async (reset) => {
    if (reset) { body.replaceChildren(); cursor = null; shown = 0; }
    const page = await fetchPage(cursor);
    body.append(...page.items.map(renderRows));
    shown += page.items.length;
    cursor = page.next_cursor;
    more.hidden = !cursor;
    info.textContent = `${shown} shown${cursor ? " · more available" : ""}`;
    if (!shown) body.append(h("tr", {}, h("td", { colspan: 9, class: "empty", text: "Nothing matches." })));
  };
  more.addEventListener("click", () => load(false).catch(showError));
  return { body, more, info, load };
}

function viewHistory(root) {
  const cams = [...S.cameras.values()];
  const form = h("form", { class: "filters", id: "history-form" },
    h("label", { for: "hf-person" }, "Person id", h("input", { id: "hf-person" })),
    h("label", { for: "hf-camera" }, "Camera", h("select", { id: "hf-camera" }, h("option", { value: "" }, "any"), ...cams.map((c) => h("option", { value: c.camera_id }, c.name)))),
    h("label", { for: "hf-zone" }, "Zone", h("input", { id: "hf-zone" })),
    h("label", { for: "hf-emotion" }, "Emotion", h("select", { id: "hf-emotion" }, ...["", "neutral", "happy", "sad", "angry", "surprise", "fear", "disgust"].map((e) => h("option", { value: e }, e || "any")))),
    dtInput("hf-since", "From"), dtInput("hf-until", "Until"),
    h("button", { type: "submit", class: "primary" }, "Search"),
    can("events.export") ? h("button", { type: "button", id: "export-csv", onclick: () => exp("csv") }, "Export CSV") : null,
    can("events.export") ? h("button", { type: "button", id: "export-json", onclick: () => exp("json") }, "Export JSON") : null);
  const params = () => ({ person: $("#hf-person").value.trim(), camera: $("#hf-camera").value, zone: $("#hf-zone").value.trim(),
    emotion: $("#hf-emotion").value, since: dtVal("hf-since"), until: dtVal("hf-until") });
  const exp = (fmt) => download(`/events/export${qs({ ...params(), format: fmt })}`, `events.${fmt === "csv" ? "csv" : "jsonl"}`).catch(showError);
  const p = pager(root, (cursor) => api(`/events${qs({ ...params(), limit: 50, cursor })}`), (e) => {
    const cam = S.cameras.get(e.camera_id);
    return h("tr", {}, h("td", {}, timeEl(e.ts_capture, e.camera_id)),
      h("td", {}, e.matched ? h("a", { href: `#/trail/${q(e.person_id)}` }, e.display_name) : h("span", { class: "muted", text: "unmatched" }), " ", h("span", { class: "mono muted", text: e.person_id })),
      h("td", { text: cam ? cam.name : e.camera_id }), h("td", {}, scoreEl(e.score, e.threshold)), h("td", { text: e.emotion || "—" }),
      h("td", {}, e.alert_id ? h("a", { href: `#/alert/${q(e.alert_id)}` }, "alert") : "—"));
  });
  form.addEventListener("submit", (ev) => { ev.preventDefault(); p.load(true).catch(showError); });
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "History" }), p.info), h("div", { class: "card" }, form),
    h("div", { class: "card" }, h("table", { class: "grid", id: "history" }, h("thead", {}, h("tr", {}, ...["Time", "Person", "Camera", "Score / threshold", "Emotion", ""].map((t) => h("th", {}, t)))), p.body), p.more));
  p.load(true).catch(showError);
}

function viewAudit(root) {
  const form = h("form", { class: "filters", id: "audit-form" },
    h("label", { for: "af-actor" }, "Actor", h("input", { id: "af-actor" })),
    h("label", { for: "af-action" }, "Action", h("input", { id: "af-action", placeholder: "alert.triage" })),
    h("label", { for: "af-subject" }, "Subject", h("input", { id: "af-subject" })),
    dtInput("af-since", "From"), dtInput("af-until", "Until"),
    h("button", { type: "submit", class: "primary" }, "Filter"));
  const params = () => ({ actor: $("#af-actor").value.trim(), action: $("#af-action").value.trim(), subject: $("#af-subject").value.trim(),
    since: dtVal("af-since"), until: dtVal("af-until") });
  const p = pager(root, (cursor) => api(`/audit${qs({ ...params(), limit: 50, cursor })}`), (a) => h("tr", {},
    h("td", { class: "num", text: a.seq }), h("td", { text: fmtTs(a.ts) }), h("td", { class: "mono", text: a.actor }), h("td", { text: a.role }),
    h("td", {}, h("span", { class: "pill st-neutral", text: a.action })), h("td", { class: "mono", text: a.subject || "—" }),
    h("td", { class: "details mono", text: JSON.stringify(a.details) }), h("td", { class: "mono muted", title: a.hash, text: a.hash.slice(0, 10) })));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); p.load(true).catch(showError); });
  root.append(h("div", { class: "toolbar" }, h("h1", { text: "Audit trail" }), p.info), h("div", { class: "card" }, form),
    h("div", { class: "card" }, h("table", { class: "grid", id: "audit" }, h("thead", {}, h("tr", {}, ...["#", "Time", "Actor", "Role", "Action", "Subject", "Details", "Hash"].map((t) => h("th", {}, t)))), p.body), p.more));
  p.load(true).catch(showError);
}

// -- router --------------------------------------------------------------------------------------------------------

let cleanup = null;
async function route() {
  if (!S.me) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const [, name, ...rest] = (location.hash || "#/feed").split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : "";
  const allowed = new Set(VIEWS.filter((v) => can(v.perm)).map((v) => v.id));
  if (can("alerts.read")) allowed.add("alert");
  if (can("events.read")) allowed.add("trail");
  let view = name || "feed";
  if (!allowed.has(view)) view = [...allowed][0];
  if (!view) { $("#view").replaceChildren(h("p", { text: "Your role has no views." })); return; }
  for (const a of document.querySelectorAll("#nav a")) {
    const on = a.dataset.view === view || (view === "alert" && a.dataset.view === "feed") || (view === "trail" && a.dataset.view === "map");
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const root = h("div", { class: `v-${view}` });
  $("#view").replaceChildren(root);
  document.title = `Argus · ${view}`;
  try {
    const r = { feed: viewFeed, alert: viewAlert, map: viewMap, trail: viewTrail, cameras: viewCameras,
      watchlist: viewWatchlist, history: viewHistory, audit: viewAudit }[view](root, arg);
    cleanup = r instanceof Promise ? null : r || null;
    await r;
  } catch (e) {
    showError(e);
  }
}
window.addEventListener("hashchange", () => { $("#errors").replaceChildren(); route(); });

// -- boot ----------------------------------------------------------------------------------------------------------

function boot() {
  $("#login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const t = $("#login-token").value.trim();
    if (!t) return;
    setToken(t);
    $("#errors").replaceChildren();
    try {
      await startSession();
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) toLogin("That key or token was refused.");
      else { clearToken(); showError(e); }
    }
  });
  $("#logout").addEventListener("click", () => toLogin(""));
  if (token()) startSession().catch((e) => { if (!(e instanceof ApiError && e.status === 401)) showError(e); });
  else toLogin("");
}
boot();
