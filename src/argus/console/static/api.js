// The console's only way to the server: every request carries the key in the Authorization header (never in a
// URL), every non-2xx answer becomes an ApiError carrying the API's {"error","detail"}, and a 401 anywhere ends
// the session (a revoked key or an expired token must not leave a page that silently shows stale data).
const KEY = "argus.token";
const PREFIX = "/api/v1";

export class ApiError extends Error {
  constructor(status, error, detail) {
    super(`${status} ${error}: ${formatDetail(detail)}`);
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

export function formatDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      if (d && typeof d === "object") {
        if ("msg" in d) return `${(d.loc || []).join(".")}: ${d.msg}`;
        if ("filename" in d) return `${d.filename}: ${d.accepted ? "accepted" : d.reason}`;
      }
      return typeof d === "string" ? d : JSON.stringify(d);
    }).join("; ");
  }
  return JSON.stringify(detail);
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }
export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function clearToken() { sessionStorage.removeItem(KEY); }

function headers(extra) {
  const h = new Headers(extra || {});
  const t = token();
  if (t) h.set("Authorization", `Bearer ${t}`);
  return h;
}

async function failure(resp) {
  let error = resp.statusText || "error";
  let detail = "";
  try {
    const body = await resp.json();
    error = body.error ?? error;
    detail = body.detail ?? "";
  } catch {
    detail = `HTTP ${resp.status}`;
  }
  if (resp.status === 401) onUnauthorized();
  if (resp.status === 413 && !detail) detail = "the upload is too large";
  return new ApiError(resp.status, error, detail);
}

/** fetch under /api/v1; JSON in (opts.json) or FormData (opts.form); JSON out unless opts.raw. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || "GET", headers: headers(), signal: opts.signal };
  if (opts.json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(opts.json);
  } else if (opts.form !== undefined) {
    init.body = opts.form;
  }
  const resp = await fetch(PREFIX + path, init);
  if (!resp.ok) throw await failure(resp);
  if (opts.raw) return resp;
  return resp.json();
}

/** A query string from an object, dropping empty values; arrays repeat the key. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    for (const one of Array.isArray(v) ? v : [v]) u.append(k, String(one));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

/** An image behind the Authorization header, as a blob: URL (an <img src> cannot send the header). */
const blobs = new Map();
export async function blobUrl(path) {
  if (blobs.has(path)) return blobs.get(path);
  const p = api(path, { raw: true }).then((r) => r.blob()).then((b) => URL.createObjectURL(b));
  blobs.set(path, p);
  try {
    return await p;
  } catch (e) {
    blobs.delete(path);
    throw e;
  }
}
export function forgetBlobs() {
  for (const p of blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  blobs.clear();
}

/** Download a response body as a file (export): fetch with the header, then a blob: link clicked once. */
export async function download(path, filename) {
  const resp = await api(path, { raw: true });
  const url = URL.createObjectURL(await resp.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

/**
 * The live alert stream (text/event-stream) read through fetch so the key travels in the header; reconnects
 * with back-off and resumes from the newest alert time seen. onState(true|false) reports whether it is live.
 */
export function streamAlerts({ since, onAlert, onState, onError }) {
  const ctl = new AbortController();
  let from = since;
  let delay = 500;
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const resp = await fetch(`${PREFIX}/alerts/stream${qs({ since: from })}`,
          { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal, cache: "no-store" });
        if (!resp.ok) throw await failure(resp);
        onState(true);
        delay = 500;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const frame = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const msg = parseFrame(frame);
            if (msg && msg.event === "alert" && msg.data) {
              const alert = JSON.parse(msg.data);
              if (typeof alert.ts_alert === "number") from = Math.max(from, Math.floor(alert.ts_alert) - 1);
              onAlert(alert);
            }
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
        if (e instanceof ApiError) {
          if (e.status === 401) return;
          onError(e);
        }
      }
      onState(false);
      if (ctl.signal.aborted) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
  return () => ctl.abort();
}

function parseFrame(frame) {
  const msg = { event: "message", data: "" };
  let any = false;
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let val = i < 0 ? "" : line.slice(i + 1);
    if (val.startsWith(" ")) val = val.slice(1);
    if (field === "data") msg.data += (msg.data ? "\n" : "") + val;
    else if (field === "event") msg.event = val;
    else if (field === "id") msg.id = val;
    any = true;
  }
  return any ? msg : null;
}
