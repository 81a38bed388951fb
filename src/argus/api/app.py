"""The operator API as a FastAPI app built from :class:`~argus.runtime.resources.Resources`.

Every route is declared through :class:`RouteRegistry` with the :class:`~argus.api.auth.Permission` it needs,
:data:`AUTHENTICATED` (any authenticated caller: ``/me``) or ``None`` for the two public probes, and that is the
only way an API route gets into the app: the registry is the table the route × role test enumerates, and a test
checks that the app has no route outside it (the console's static files and the ``/`` redirect aside).
The permission check, the per-principal rate limit and putting the actor on the request all happen in the one
guard dependency the registry attaches, so a route cannot forget them.

Routes are thin: they validate and translate (HTTP ↔ records), and each operator action — enrolling, changing a
person or a watch-list, triage, erasure, the audited history queries and exports — is :mod:`argus.operations`,
the same code the CLI runs. Errors leave as ``{"error": ..., "detail": ...}``: InputError 400, unknown ids 404, a
store outage 503 with Retry-After, anything else 500 without its message (it may name internals).
"""

import asyncio
import dataclasses
import enum
import logging
import mimetypes
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypedDict

from fastapi import Depends, FastAPI, File, Form, Path, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from argus.api import models as m
from argus.api.auth import (
    ROLE_PERMISSIONS,
    AuthenticationError,
    Authenticator,
    Permission,
    PermissionDeniedError,
    Principal,
    create_api_key,
    list_api_keys,
    require,
    revoke_api_key,
)
from argus.api.limits import (
    AccessLogMiddleware,
    ApiMetrics,
    BodyLimitMiddleware,
    RateLimiter,
    SecurityHeadersMiddleware,
)
from argus.errors import ArgusError, InputError, StoreError, TransientError
from argus.gallery.faiss_gallery import GalleryWriteError
from argus.ids import PERSON_ID_PATTERN, PERSON_ID_RULE, SLUG_PATTERN, is_person_id

if TYPE_CHECKING:
    from argus.config import Settings
    from argus.runtime.resources import Resources

log = logging.getLogger(__name__)

__all__ = ["API_PREFIX", "AUTHENTICATED", "CONSOLE_CSP", "CONSOLE_DIR", "CONSOLE_PREFIX", "Access", "RouteRegistry",
           "RouteSpec", "create_app", "route_table"]

API_PREFIX = "/api/v1"
_MB = 1024 * 1024
_ERRORS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
           409: "conflict", 413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request",
           429: "rate_limited", 500: "internal", 503: "unavailable", 507: "gallery_storage"}
_COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorOut, "description": _ERRORS[code]} for code in (400, 401, 403, 404, 413, 422, 429, 503)
}
_JPEG = {200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
               "description": "JPEG image"}}


CONSOLE_PREFIX = "/console"
#: The console's own files (the package's data directory, shipped in the wheel).
CONSOLE_DIR = FsPath(__file__).resolve().parent.parent / "console" / "static"
#: The console loads nothing from anywhere but this server: no CDN, no map tiles, no inline script.
CONSOLE_CSP = ("default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'; "
               "script-src 'self'; frame-ancestors 'none'")
#: How often an alert stream re-reads the store, and how often it proves it is alive to proxies and the browser.
STREAM_POLL_S = 0.5
STREAM_PING_S = 15.0
#: After its first batch a stream re-reads only alerts raised this recently, so a console left open for days does
#: not re-read days of alerts twice a second; a triage change on an older alert shows on the next (re)connect.
STREAM_CHANGE_WINDOW_S = 3600.0


class Access(enum.Enum):
    """A route's access mode besides a permission: any authenticated caller, whatever their role."""

    authenticated = "authenticated"


AUTHENTICATED = Access.authenticated


#: One event of the alert stream, as OpenAPI 3.1 describes server-sent events (the parsed fields of one message).
_SSE_ALERT: dict[str, Any] = {
    "type": "object", "required": ["event", "id", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["alert"]},
        "id": {"type": "string", "description": "<alert_id>:<revision>:<status>"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/AlertOut"}},
    },
}


@dataclass(frozen=True, kw_only=True)
class RouteSpec:
    method: str
    path: str  # the template as FastAPI sees it, prefix included
    permission: Permission | Access | None  # None: public (probes only); AUTHENTICATED: any role
    name: str


@dataclass
class RouteRegistry:
    """Declares routes with their permission; ``specs`` is the route table."""

    guard: Callable[[Permission | Access | None], Callable[..., Any]]
    app: FastAPI
    specs: list[RouteSpec] = field(default_factory=list)

    def route(self, method: str, path: str, permission: Permission | Access | None,
              **kw: Any) -> Callable[..., Any]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.specs.append(RouteSpec(method=method, path=path, permission=permission, name=fn.__name__))
            responses = dict(_COMMON_RESPONSES) if permission is not None else {}
            responses.update(kw.pop("responses", {}))
            desc = kw.pop("description", fn.__doc__)
            perm_note = ("\n\nPublic." if permission is None else "\n\nAny authenticated caller."
                         if permission is AUTHENTICATED else f"\n\nPermission: `{permission.value}`.")
            allowed: set[str] = set()  # filled once the route exists (FastAPI knows its query parameters then)

            def known_query(request: Request) -> None:
                unknown = sorted(set(request.query_params) - allowed)
                if unknown:  # a typo'd filter (?camera_id= for ?camera=) must not silently return everything
                    raise InputError(f"query parameter(s) {', '.join(unknown)}: expected some of "
                                     f"{', '.join(sorted(allowed)) or 'none'}")

            self.app.add_api_route(path, fn, methods=[method],
                                   dependencies=[Depends(self.guard(permission)), Depends(known_query)],
                                   responses=responses, description=(desc or "").strip() + perm_note,
                                   name=fn.__name__, **kw)
            allowed.update(_query_names(self.app.routes[-1].dependant))  # type: ignore[attr-defined]
            return fn

        return deco


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def route_table(app: FastAPI) -> list[RouteSpec]:
    return list(app.state.route_specs)


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": _ERRORS.get(status, "error"), "detail": detail}, status_code=status,
                        headers=headers)


def _is_not_found(e: Exception) -> bool:
    return any(cls.__name__.endswith("NotFoundError") for cls in type(e).__mro__)


def _person_id(value: str) -> str:
    if not is_person_id(value):
        raise InputError(f"person_id: expected {PERSON_ID_RULE}, got {value[:140]!r}")
    return value


def create_app(resources: "Resources", *, settings: "Settings | None" = None,
               authenticator: Authenticator | None = None, metrics: ApiMetrics | None = None,
               clock: Callable[[], float] = time.time, shutdown: threading.Event | None = None,
               console_dir: FsPath | None = None) -> FastAPI:
    """The app over ``resources`` (its store, gallery and pipeline); ``authenticator`` defaults to API keys in the
    store plus OIDC when ARGUS_API_OIDC_JWKS is set. ``shutdown``, once set, ends every open alert stream (the
    server sets it before it stops, so a console left open cannot hold a shutdown up); ``console_dir`` holds the
    console's files (default :data:`CONSOLE_DIR`)."""
    s = settings if settings is not None else resources.settings
    auth = authenticator if authenticator is not None else Authenticator.from_settings(resources.store, s)
    limiter = RateLimiter(rate_per_s=s.api_rate_per_s, burst=s.api_rate_burst)
    from argus import operations as ops
    from argus.store.base import MAX_PAGE, AlertFilter, AuditFilter, EventFilter

    page_max = min(s.api_page_max, MAX_PAGE)
    bearer = HTTPBearer(auto_error=False, scheme_name="bearer",
                        description="An Argus API key (argus_<key_id>_<secret>) or an OIDC access token (JWT).")

    stopping = shutdown if shutdown is not None else threading.Event()

    def guard(permission: Permission | Access | None) -> Callable[..., Any]:
        if permission is None:
            def public() -> None:
                return None

            return public

        def check(request: Request, _cred: Annotated[Any, Depends(bearer)]) -> None:
            header = request.headers.get("authorization")
            client = request.client.host if request.client else ""
            try:
                principal = auth.authenticate(header, client=client)
            except AuthenticationError:
                if header:  # bound how fast anybody can guess credentials from one address
                    limiter.check(f"anon:{client}")
                raise
            request.state.principal = principal
            request.state.actor = principal.actor
            limiter.check(f"p:{principal.actor}")
            if isinstance(permission, Permission):
                require(principal, permission)

        return check

    def who(request: Request) -> Principal:
        p: Principal = request.state.principal
        return p

    app = FastAPI(title="Argus operator API", version="1", description=__doc__.split("\n\n")[0],
                  docs_url="/docs", redoc_url=None)
    reg = RouteRegistry(guard=guard, app=app)
    r = reg.route
    Limit = Annotated[int, Query(ge=1, le=page_max, description=f"Page size (at most {page_max}).")]
    Cursor = Annotated[str | None, Query(max_length=1024, pattern=r"^[A-Za-z0-9_-]+$",
                                         description="next_cursor of the previous page (opaque).")]
    PersonId = Annotated[str, Path(pattern=PERSON_ID_PATTERN, description=m.PERSON_ID_DOC)]
    Since = Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Epoch seconds, inclusive.")]
    Until = Annotated[float | None, Query(ge=0, allow_inf_nan=False, description="Epoch seconds, exclusive.")]
    Str = Annotated[str | None, Query(max_length=200)]
    Cameras = Annotated[list[str] | None, Query(max_length=100, description="Camera id (repeatable).")]

    def store() -> Any:
        return resources.store

    def gallery() -> Any:
        return resources.gallery

    built: list[ops.Services] = []

    def services() -> ops.Services:
        """One Services per app, built on first use; it loads the face models only when an action needs them."""
        if not built:
            built.append(dataclasses.replace(ops.Services.from_resources(resources), clock=clock))
        return built[0]

    def actor_of(request: Request) -> _ActorArgs:
        """The ``actor=``, ``role=`` every operation takes, from the authenticated principal."""
        p = who(request)
        return {"actor": p.actor, "role": p.role.value}

    # -- probes ----------------------------------------------------------------------------------------------------

    @r("GET", "/healthz", None, response_model=m.HealthOut, tags=["probes"])
    def healthz() -> m.HealthOut:
        """Liveness: the process answers. Touches nothing else."""
        return m.HealthOut(status="ok")

    @r("GET", "/readyz", None, response_model=m.ReadyOut, tags=["probes"],
       responses={503: {"model": m.ReadyOut, "description": "not ready"}})
    def readyz() -> Any:
        """Readiness: the event store answers and the gallery is loaded."""
        checks: dict[str, str] = {}
        for name, probe in (("store", lambda: store().get_api_key("000000000000")),
                            ("gallery", lambda: gallery().version)):
            try:
                probe()
                checks[name] = "ok"
            except Exception as e:  # a probe reports, it does not raise
                checks[name] = type(e).__name__
        ok = all(v == "ok" for v in checks.values())
        body = m.ReadyOut(ready=ok, checks=checks)
        return body if ok else JSONResponse(body.model_dump(), status_code=503)

    @r("GET", f"{API_PREFIX}/me", AUTHENTICATED, response_model=m.MeOut, tags=["me"])
    def me(request: Request) -> m.MeOut:
        """Who the credentials name and what their role may do: the console offers only what it can do."""
        p = who(request)
        return m.MeOut(actor=p.actor, role=p.role.value,
                       permissions=sorted(x.value for x in ROLE_PERMISSIONS[p.role]))

    # -- persons ---------------------------------------------------------------------------------------------------

    def person_out(p: Any, *, photos: int | None) -> m.PersonOut:
        return m.PersonOut(person_id=p.person_id, display_name=p.display_name, watchlist=p.watchlist,
                           notes=p.notes, enrolled_at=p.enrolled_at, expires_at=p.expires_at,
                           active=p.active(clock()), photos=photos)

    def enrolled(pid: str) -> Any:
        p = gallery().get(_person_id(pid))
        if p is None:
            raise _NotFound(f"person {pid!r} is not enrolled")
        return p

    @r("GET", f"{API_PREFIX}/persons", Permission.persons_read, response_model=m.PersonPage, tags=["persons"])
    def list_persons(
        watchlist: Str = None,
    ) -> m.PersonPage:
        """Enrolled persons (optionally one watch-list), sorted by id."""
        ps = sorted(gallery().persons(), key=lambda p: p.person_id)
        if watchlist is not None:
            ps = [p for p in ps if p.watchlist == watchlist]
        return m.PersonPage(items=[person_out(p, photos=None) for p in ps])

    @r("POST", f"{API_PREFIX}/persons", Permission.persons_write, response_model=m.EnrollOut, status_code=201,
       tags=["persons"])
    async def enroll_person(
        request: Request,
        person_id: Annotated[str, Form(pattern=PERSON_ID_PATTERN, description=m.PERSON_ID_DOC)],
        display_name: Annotated[str, Form(min_length=1, max_length=200)],
        reason: Annotated[str, Form(min_length=1, max_length=1000)],
        photos: Annotated[list[UploadFile], File(min_length=1, description="One face per photo (JPEG/PNG).")],
        watchlist: Annotated[str, Form(max_length=64)] = "default",
        notes: Annotated[str, Form(max_length=10000)] = "",
        expires_at: Annotated[float | None, Form(ge=0, allow_inf_nan=False)] = None,
    ) -> Any:
        """Enroll (or re-enroll) a person from several photos; each photo is accepted or rejected with its reason
        (no face, several faces, too small, too blurry, not the same person as the others). 422 when none is
        accepted, with the verdicts in ``detail``."""
        actor = actor_of(request)
        _person_id(person_id)
        if len(photos) > s.api_max_photos:
            raise InputError(f"photos: expected at most {s.api_max_photos}, got {len(photos)}")
        cap = int(s.api_max_photo_mb * _MB)
        blobs: list[tuple[str, bytes]] = []
        for ph in photos:
            data = await ph.read(cap + 1)
            if len(data) > cap:
                raise StarletteHTTPException(413, f"photo {ph.filename!r}: expected at most {cap} bytes")
            blobs.append((ph.filename or f"photo{len(blobs)}", data))
        def run() -> ops.EnrollOutcome:
            return ops.enroll_person(services(), person_id=person_id, display_name=display_name, photos=blobs,
                                     reason=reason, watchlist=watchlist, notes=notes, expires_at=expires_at,
                                     **actor)

        out = await run_in_threadpool(run)
        verdicts = [m.PhotoVerdictOut.model_validate({"index": i, **v.to_dict()}) for i, v in enumerate(out.photos)]
        if out.person is None:  # no photo passed: nothing changed; every photo's problem, for the operator to fix
            return _error(422, [v.model_dump() for v in verdicts])
        return m.EnrollOut(person=person_out(out.person, photos=len(out.accepted)), photos=verdicts,
                           look_alikes=out.look_alikes, gallery_version=out.gallery_version)

    @r("GET", f"{API_PREFIX}/persons/{{person_id:path}}/photos/{{n}}", Permission.persons_read,
       response_class=Response, responses=_JPEG, tags=["persons"])
    def person_photo(person_id: PersonId, n: Annotated[int, Path(ge=0, le=1000)]) -> Response:
        """One enrolled thumbnail (JPEG, at most 160 px)."""
        p = enrolled(person_id)
        photos = store().get_person_photos(p.person_id)
        if n >= len(photos):
            raise _NotFound(f"person {person_id!r} has {len(photos)} photos, not #{n}")
        return Response(photos[n], media_type="image/jpeg")

    @r("GET", f"{API_PREFIX}/persons/{{person_id:path}}", Permission.persons_read, response_model=m.PersonOut,
       tags=["persons"])
    def get_person(person_id: PersonId) -> m.PersonOut:
        """One person with the number of enrolled thumbnails (GET .../photos/{n} for each)."""
        p = enrolled(person_id)
        return person_out(p, photos=len(store().get_person_photos(p.person_id)))

    @r("PATCH", f"{API_PREFIX}/persons/{{person_id:path}}", Permission.persons_write, response_model=m.PersonOut,
       tags=["persons"])
    def patch_person(request: Request, person_id: PersonId, body: m.PersonPatch) -> m.PersonOut:
        """Change display name, notes, watch-list or expiry (embeddings untouched); audited."""
        enrolled(person_id)
        changes: dict[str, Any] = {k: getattr(body, k) for k in ("display_name", "notes", "watchlist")}
        if "expires_at" in body.model_fields_set:
            changes["expires_at"] = body.expires_at
        p = ops.update_person(services(), person_id, reason=body.reason, **actor_of(request), **changes)
        return person_out(p, photos=len(store().get_person_photos(p.person_id)))

    @r("DELETE", f"{API_PREFIX}/persons/{{person_id:path}}", Permission.persons_write,
       response_model=m.RemovedOut | m.ErasureOut, tags=["persons"])
    def delete_person(
        request: Request, person_id: PersonId,
        reason: Annotated[str, Query(min_length=1, max_length=1000)],
        erase: bool = False,
    ) -> Any:
        """Take a person off the watch-list; with ``erase=true`` (permission persons.erase) delete every trace —
        gallery rows, negative evidence, events, alerts, crops, photos — and answer with the receipt."""
        _person_id(person_id)
        if erase:  # erasure also works for a person already removed from the list: their history stays until then
            require(who(request), Permission.persons_erase)
            try:
                receipt = ops.erase_person(services(), person_id, reason=reason, **actor_of(request))
            except InputError as e:  # the gallery knows nothing of this id (never enrolled, or already erased)
                if gallery().get(person_id) is None:
                    raise _NotFound(str(e)) from e
                raise
            return m.ErasureOut.model_validate(receipt.to_dict())
        enrolled(person_id)
        version = ops.remove_person(services(), person_id, reason=reason, **actor_of(request))
        return m.RemovedOut(person_id=person_id, removed=True, gallery_version=version)

    # -- watch-lists -----------------------------------------------------------------------------------------------

    def wl_out(spec: Any) -> m.WatchlistOut:
        return m.WatchlistOut(name=spec.name, threshold=spec.threshold, description=spec.description,
                              legal_basis=spec.legal_basis, updated_at=spec.updated_at, updated_by=spec.updated_by)

    @r("GET", f"{API_PREFIX}/watchlists", Permission.watchlists_read, response_model=list[m.WatchlistOut],
       tags=["watchlists"])
    def list_watchlists() -> list[m.WatchlistOut]:
        """Every watch-list with its threshold, description and legal basis."""
        return [wl_out(w) for w in sorted(gallery().watchlists(), key=lambda w: w.name)]

    @r("PUT", f"{API_PREFIX}/watchlists/{{name}}", Permission.watchlists_write, response_model=m.WatchlistOut,
       tags=["watchlists"])
    def put_watchlist(request: Request, name: Annotated[str, Path(pattern=SLUG_PATTERN)],
                      body: m.WatchlistIn) -> m.WatchlistOut:
        """Create or change a watch-list (threshold null: the configured default applies); audited."""
        spec = ops.set_watchlist(services(), name=name, threshold=body.threshold, reason=body.reason,
                                 description=body.description, legal_basis=body.legal_basis, **actor_of(request))
        return wl_out(spec)

    # -- cameras ---------------------------------------------------------------------------------------------------

    @r("GET", f"{API_PREFIX}/cameras", Permission.cameras_read, response_model=list[m.CameraOut], tags=["cameras"])
    def list_cameras() -> list[m.CameraOut]:
        """Cameras with location and live health (reader state, frames/s, last frame age, dropped frames)."""
        health = store().camera_health()
        now = clock()
        out = []
        for c in sorted(store().list_cameras(), key=lambda c: c.camera_id):
            h = health.get(c.camera_id)
            if h is not None:
                h = dict(h)
                if isinstance(h.get("last_frame_ts"), int | float):
                    h["last_frame_age_s"] = max(0.0, now - float(h["last_frame_ts"]))
            out.append(m.CameraOut(camera_id=c.camera_id, name=c.name, location=m.LocationOut(
                **c.location.model_dump()), fps=c.fps, enabled=c.enabled, timezone=c.timezone, health=h))
        return out

    map_image = s.console_map_image

    @r("GET", f"{API_PREFIX}/map", Permission.cameras_read, response_model=m.MapOut, tags=["cameras"])
    def get_map() -> m.MapOut:
        """How the console draws its camera map: whether an operator-supplied background image exists and the two
        reference points ``[x, y, lat, lon]`` (image pixels ↔ degrees) that place it; ``[]`` without an image."""
        refs = [[float(v) for v in ref] for ref in s.console_map_refs] if map_image is not None else []
        return m.MapOut(image=map_image is not None, refs=refs)

    @r("GET", f"{API_PREFIX}/map/image", Permission.cameras_read, response_class=Response,
       responses={200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                        "description": "The map's background image"}}, tags=["cameras"])
    def get_map_image() -> Response:
        """The configured background image (ARGUS_CONSOLE_MAP_IMAGE) with its content type; 404 without one."""
        if map_image is None:
            raise _NotFound("no map image is configured (ARGUS_CONSOLE_MAP_IMAGE)")
        try:
            data = map_image.read_bytes()
        except OSError as e:
            log.error("map image %s unreadable: %s", map_image, e.strerror or e)
            raise _NotFound("the configured map image cannot be read") from e
        kind = mimetypes.guess_type(map_image.name)[0] or ""
        return Response(data, media_type=kind if kind.startswith("image/") else "application/octet-stream")

    # -- alerts ----------------------------------------------------------------------------------------------------

    def alert_out(rec: Any) -> m.AlertOut:
        a = rec.alert
        return m.AlertOut(
            alert_id=a.alert_id, event_id=a.event_id, track_id=a.track_id, revision=a.revision,
            withdrawn=a.withdrawn, camera_id=a.camera_id, camera_name=a.camera_name,
            location=m.LocationOut(**a.location.model_dump()), person_id=a.person_id, display_name=a.display_name,
            watchlist=a.watchlist, score=a.score, threshold=a.threshold, margin=a.margin,
            candidates=[m.CandidateOut(**c.model_dump()) for c in a.candidates], emotion=a.emotion,
            emotion_path=a.emotion_path,
            emotion_timeline=[m.EmotionChangeOut(**c.model_dump()) for c in a.emotion_timeline],
            faces_seen=a.faces_seen, faces_embedded=a.faces_embedded, faces_supporting=a.faces_supporting,
            score_history=list(a.score_history), ts_capture=a.ts_capture, ts_alert=a.ts_alert,
            status=rec.status, acked_by=rec.acked_by, acked_at=rec.acked_at, note=rec.note, has_crop=bool(a.crop_jpeg))

    @r("GET", f"{API_PREFIX}/alerts", Permission.alerts_read, response_model=m.AlertPage, tags=["alerts"])
    def list_alerts(
        request: Request, camera: Cameras = None, zone: Str = None, person: Str = None, watchlist: Str = None,
        status: Str = None, since: Since = None, until: Until = None, limit: Limit = 50, cursor: Cursor = None,
    ) -> m.AlertPage:
        """Alerts newest first, filtered (AND); ``next_cursor`` fetches the next page. Audited."""
        flt = AlertFilter(camera_ids=ops.resolve_cameras(services(), camera_ids=camera, zone=zone),
                          person_id=person, watchlist=watchlist, status=status, since=since, until=until)
        page = ops.query_alerts(services(), flt, limit=limit, cursor=cursor, **actor_of(request))
        return m.AlertPage(items=[alert_out(a) for a in page.items], next_cursor=page.next_cursor)

    def stream_batch(lo: float) -> list[Any]:
        """Every alert with ts_alert >= ``lo``, oldest first (all pages: a stream must not skip any)."""
        recs: list[Any] = []
        cursor: str | None = None
        while True:
            page = store().page_alerts(AlertFilter(since=lo), limit=MAX_PAGE, cursor=cursor)
            recs.extend(page.items)
            cursor = page.next_cursor
            if cursor is None or not page.items:
                break
        recs.reverse()
        return recs

    @r("GET", f"{API_PREFIX}/alerts/stream", Permission.alerts_read, response_class=StreamingResponse,
       responses={200: {"content": {"text/event-stream": {"schema": _SSE_ALERT}},
                        "description": "Server-sent events: `event: alert`, `id: <alert_id>:<revision>:<status>`, "
                                       "`data: <AlertOut JSON>`; `: ping` comments keep it alive"}},
       tags=["alerts"])
    async def stream_alerts(
        request: Request,
        since: Annotated[float | None, Query(ge=0, allow_inf_nan=False,
                                             description="Epoch seconds (default: 5 minutes ago).")] = None,
    ) -> StreamingResponse:
        """Live alerts as server-sent events: every alert raised since ``since``, oldest first, then each new alert
        and each change of one (a revision, a triage) as it appears. It polls the event store every 0.5 s rather
        than listening to the bus, so it sees the same alerts whichever API replica serves it, and the same with
        ``argus up``'s in-process pipeline. Read it with ``fetch()`` and an Authorization header (EventSource
        cannot send one): no credential ever goes into a URL. Audited once when it opens (alerts.query with
        ``{"stream": true}``), not per message. Ends when the client goes or the server shuts down."""
        actor = actor_of(request)
        lo = since if since is not None else clock() - 300.0
        await run_in_threadpool(lambda: ops.audit(services(), action="alerts.query", subject=None,
                                                  details={"stream": True, "since": lo}, **actor))

        async def messages() -> AsyncIterator[str]:
            sent: dict[str, str] = {}
            last_ping = time.monotonic()
            window_lo = lo
            while not stopping.is_set() and not await request.is_disconnected():
                for rec in await run_in_threadpool(stream_batch, window_lo):
                    tag = f"{rec.alert.revision}:{rec.status}"
                    if sent.get(rec.alert_id) != tag:
                        sent[rec.alert_id] = tag
                        yield (f"event: alert\nid: {rec.alert_id}:{tag}\n"
                               f"data: {alert_out(rec).model_dump_json()}\n\n")
                window_lo = max(lo, clock() - STREAM_CHANGE_WINDOW_S)
                if time.monotonic() - last_ping >= STREAM_PING_S:
                    last_ping = time.monotonic()
                    yield ": ping\n\n"
                await asyncio.sleep(STREAM_POLL_S)

        return StreamingResponse(messages(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    def check_alert_id(alert_id: str) -> None:
        if len(alert_id) > 128:
            raise InputError(f"alert_id: expected at most 128 chars, got {len(alert_id)}")

    def alert(alert_id: str) -> Any:
        check_alert_id(alert_id)
        rec = store().get_alert(alert_id)
        if rec is None:
            raise _NotFound(f"alert {alert_id!r} not found")
        return rec

    @r("GET", f"{API_PREFIX}/alerts/{{alert_id}}", Permission.alerts_read, response_model=m.AlertOut,
       tags=["alerts"])
    def get_alert(request: Request, alert_id: str) -> m.AlertOut:
        """One alert with its triage state (crop and enrolled photo: the two image routes). Audited."""
        check_alert_id(alert_id)  # an unknown id: operations' AlertNotFoundError answers 404
        return alert_out(ops.view_alert(services(), alert_id, **actor_of(request)))

    @r("GET", f"{API_PREFIX}/alerts/{{alert_id}}/crop", Permission.alerts_crop, response_class=Response,
       responses=_JPEG, tags=["alerts"])
    def alert_crop(request: Request, alert_id: str) -> Response:
        """The face crop that raised the alert (JPEG). Audited: seeing a face is an access to biometric data."""
        rec = alert(alert_id)
        if not rec.alert.crop_jpeg:
            raise _NotFound(f"alert {alert_id!r} has no stored crop")
        return Response(ops.alert_crop(services(), alert_id, **actor_of(request)), media_type="image/jpeg")

    @r("GET", f"{API_PREFIX}/alerts/{{alert_id}}/photo", Permission.alerts_crop, response_class=Response,
       responses=_JPEG, tags=["alerts"])
    def alert_photo(request: Request, alert_id: str) -> Response:
        """The first enrolled thumbnail of the person the alert names, to compare with the crop. Audited."""
        check_alert_id(alert_id)
        return Response(ops.enrolled_photo(services(), alert_id, **actor_of(request)), media_type="image/jpeg")

    @r("POST", f"{API_PREFIX}/alerts/{{alert_id}}/triage", Permission.alerts_triage, response_model=m.AlertOut,
       tags=["alerts"])
    def triage_alert(request: Request, alert_id: str, body: m.TriageIn) -> m.AlertOut:
        """Acknowledge, dismiss, or dismiss as *not this person* — which also keeps the face as negative evidence
        for that person, so the matcher stops naming them for faces closer to it than to the enrolled ones."""
        check_alert_id(alert_id)
        return alert_out(ops.triage_alert(services(), alert_id, action=body.action, reason=body.reason,
                                          **actor_of(request)))

    # -- events ----------------------------------------------------------------------------------------------------

    def event_filter(camera: list[str] | None, zone: str | None, person: str | None, watchlist: str | None,
                     emotion: str | None, since: float | None, until: float | None) -> EventFilter:
        return EventFilter(camera_ids=ops.resolve_cameras(services(), camera_ids=camera, zone=zone),
                           person_id=person, watchlist=watchlist, emotion=emotion, since=since, until=until)

    def event_out(e: Any) -> m.EventOut:
        return m.EventOut(event_id=e.event_id, camera_id=e.camera_id, seq=e.seq, face_index=e.face_index,
                          person_id=e.person_id, display_name=e.display_name, watchlist=e.watchlist, score=e.score,
                          threshold=e.threshold, margin=e.margin, emotion=e.emotion,
                          emotion_path=e.emotion_path, det_score=e.det_score,
                          box=list(e.box), ts_capture=e.ts_capture, ts_match=e.ts_match, alert_id=e.alert_id,
                          track_id=e.track_id, revision=e.revision, matched=e.matched)

    @r("GET", f"{API_PREFIX}/events", Permission.events_read, response_model=m.EventPage, tags=["events"])
    def list_events(
        request: Request, camera: Cameras = None, zone: Str = None, person: Str = None, watchlist: Str = None,
        emotion: Str = None, since: Since = None, until: Until = None, limit: Limit = 50, cursor: Cursor = None,
    ) -> m.EventPage:
        """Sightings newest first, filtered (AND), cursor-paginated. Audited."""
        flt = event_filter(camera, zone, person, watchlist, emotion, since, until)
        page = ops.query_events(services(), flt, limit=limit, cursor=cursor, **actor_of(request))
        return m.EventPage(items=[event_out(e) for e in page.items], next_cursor=page.next_cursor)

    @r("GET", f"{API_PREFIX}/events/export", Permission.events_export, response_class=StreamingResponse,
       responses={200: {"content": {"text/csv": {"schema": {"type": "string"}},
                                    "application/x-ndjson": {"schema": {"type": "string"}}},
                        "description": "CSV with a header row, or JSON Lines (one object per line)"}},
       tags=["events"])
    def export_events(
        request: Request, format: Annotated[str, Query(pattern="^(csv|json)$")] = "csv",
        camera: Cameras = None, zone: Str = None, person: Str = None, watchlist: Str = None,
        emotion: Str = None, since: Since = None, until: Until = None,
    ) -> StreamingResponse:
        """Every matching sighting, streamed (no crops). Audited with the filter and the row count."""
        fmt: Literal["csv", "json"] = "csv" if format == "csv" else "json"
        flt = event_filter(camera, zone, person, watchlist, emotion, since, until)
        chunks = ops.export_events(services(), flt, fmt=fmt, **actor_of(request))
        media = "text/csv" if fmt == "csv" else "application/x-ndjson"
        return StreamingResponse((c.encode() for c in chunks), media_type=media,
                                 headers={"Content-Disposition": f'attachment; filename="events.{format}"'})

    # -- audit -----------------------------------------------------------------------------------------------------

    @r("GET", f"{API_PREFIX}/audit", Permission.audit_read, response_model=m.AuditPage, tags=["audit"])
    def list_audit(
        request: Request, actor: Str = None, action: Str = None, subject: Str = None, since: Since = None,
        until: Until = None, limit: Limit = 50, cursor: Cursor = None,
    ) -> m.AuditPage:
        """The audit trail newest first (reading it is itself audited)."""
        flt = AuditFilter(actor=actor, action=action, subject=subject, since=since, until=until)
        page = ops.query_audit(services(), flt, limit=limit, cursor=cursor, **actor_of(request))
        return m.AuditPage(items=[m.AuditOut(seq=a.seq, ts=a.ts, actor=a.actor, role=a.role, action=a.action,
                                             subject=a.subject, details=dict(a.details), hash=a.hash)
                                  for a in page.items], next_cursor=page.next_cursor)

    # -- API keys --------------------------------------------------------------------------------------------------

    def key_out(rec: Any) -> m.KeyOut:
        return m.KeyOut(key_id=rec.key_id, name=rec.name, role=rec.role, created_at=rec.created_at,
                        created_by=rec.created_by, revoked_at=rec.revoked_at)

    @r("GET", f"{API_PREFIX}/keys", Permission.keys_manage, response_model=list[m.KeyOut], tags=["keys"])
    def list_keys() -> list[m.KeyOut]:
        """API keys (never their secrets or hashes)."""
        return [key_out(k) for k in list_api_keys(store())]

    @r("POST", f"{API_PREFIX}/keys", Permission.keys_manage, response_model=m.KeyCreatedOut, status_code=201,
       tags=["keys"])
    def create_key(request: Request, body: m.KeyIn) -> m.KeyCreatedOut:
        """Make a key; the response is the only place the full key ever appears. Audited (key.create)."""
        p = who(request)
        rec, key = create_api_key(store(), name=body.name, role=body.role, actor=p.actor, actor_role=p.role.value)
        return m.KeyCreatedOut(**key_out(rec).model_dump(), key=key)

    @r("DELETE", f"{API_PREFIX}/keys/{{key_id}}", Permission.keys_manage, response_model=m.KeyOut, tags=["keys"])
    def revoke_key(request: Request, key_id: Annotated[str, Path(pattern="^[0-9a-f]{12}$")]) -> m.KeyOut:
        """Revoke a key: refused from its next request on. Audited (key.revoke)."""
        p = who(request)
        return key_out(revoke_api_key(store(), key_id, actor=p.actor, actor_role=p.role.value))

    # -- app -------------------------------------------------------------------------------------------------------

    # -- console -------------------------------------------------------------------------------------------------

    async def to_console(_req: Request) -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PREFIX}/", status_code=307)

    app.add_route("/", to_console, methods=["GET"], include_in_schema=False)
    app.mount(CONSOLE_PREFIX, StaticFiles(directory=console_dir or CONSOLE_DIR, html=True, check_dir=False),
              name="console")

    app.state.route_specs = tuple(reg.specs)
    app.state.limiter = limiter
    app.state.shutdown = stopping

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, e.detail, dict(e.headers) if e.headers else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_req: Request, e: RequestValidationError) -> JSONResponse:
        detail = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in e.errors()]
        return _error(422, detail)

    @app.exception_handler(ArgusError)
    async def argus_error(_req: Request, e: ArgusError) -> JSONResponse:
        if isinstance(e, AuthenticationError):
            return _error(401, str(e), {"WWW-Authenticate": 'Bearer realm="argus"'})
        if isinstance(e, PermissionDeniedError):
            return _error(403, str(e))
        if isinstance(e, _NotFound) or _is_not_found(e):
            return _error(404, str(e))
        if isinstance(e, InputError):
            return _error(400, str(e))
        if isinstance(e, TransientError):
            return _error(503, "a server the API depends on is unavailable; retry later", {"Retry-After": "5"})
        if isinstance(e, GalleryWriteError):
            # The operator can act on it (path and errno, nothing internal): the volume is read-only or full.
            log.error("API request failed: %s", e)
            return _error(507, str(e))
        log.error("API request failed: %s: %s", type(e).__name__, e)
        return _error(500, "internal error" if not isinstance(e, StoreError) else "the event store failed")

    @app.exception_handler(Exception)
    async def unexpected(_req: Request, e: Exception) -> JSONResponse:
        log.exception("API request failed unexpectedly")
        return _error(500, "internal error")

    app.add_middleware(BodyLimitMiddleware, max_bytes=int(s.api_max_body_mb * _MB))
    if s.api_cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(s.api_cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(ConsolePolicyMiddleware)  # outside SecurityHeaders: it replaces that CSP for the console
    app.add_middleware(AccessLogMiddleware, metrics=metrics)
    return app


class ConsolePolicyMiddleware:
    """The console's pages get :data:`CONSOLE_CSP` (its own scripts, styles and images, fetches to this origin
    only) instead of the API's ``default-src 'none'``, which would stop the page running at all."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"content-security-policy"]
                headers.append((b"content-security-policy", CONSOLE_CSP.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_csp)


class _ActorArgs(TypedDict):
    actor: str
    role: str


class _NotFound(ArgusError):
    """A route's own "no such thing" (404)."""


