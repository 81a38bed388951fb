"""The ``argus`` command: demo, one stage (the Kubernetes entry point), gallery, history, evaluation, dev servers.

Configuration comes from ``ARGUS_*`` environment variables (see ``argus config``); a bad value stops the command
with one line per problem before anything starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from argus.errors import ArgusError, ConfigError, SchemaError
from argus.topology import CONSUMING_STAGES, STAGES


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _ts(value: str) -> float:
    """Accept epoch seconds or an ISO-8601 date/time (UTC if no zone)."""
    from argus.timefmt import parse_time

    try:
        return parse_time(value, "time")
    except ArgusError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def _refuse_in_memory(kind: str, why: str) -> None:
    """A command that reads state another process left (gallery files, a Kafka topic) cannot use an in-memory twin."""
    if kind == "memory":
        raise ConfigError(why)


# ---------------------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from argus.demo import print_summary, run_demo

    if args.distributed:  # the dev harness runs it (argus_dev.commands), found through an entry point
        result = _demo_mode("distributed")(data_dir=Path(args.data_dir))
    else:
        result = run_demo(data_dir=Path(args.data_dir))

    print_summary(result)
    if args.console:  # the demo's store and gallery stay on disk: serve them until Ctrl-C
        from argus.config import load_settings
        from argus.demo import DEMO_CAMERAS
        from argus.up import run_console

        settings = load_settings(**_up_overrides(args, data_dir=Path(args.data_dir), cameras_file=DEMO_CAMERAS))
        run_console(settings, stop=_stop_on_signals("argus demo --console"), on_ready=_print_up)
    return 0


def _up_overrides(args: argparse.Namespace, **over: Any) -> dict[str, Any]:
    """Settings for `argus up` / `demo --console`: one process, so no per-stage metrics port; --port wins."""
    over = {"metrics_port": 0, **over}
    if getattr(args, "port", None) is not None:
        over["api_port"] = args.port
    return over


def _stop_on_signals(what: str) -> threading.Event:
    """An event set by the first SIGINT/SIGTERM (stop cleanly); a second SIGINT interrupts at once."""
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logging.getLogger("argus").warning("signal %d: %s is stopping", signum, what)
        print(f"{what}: stopping…", file=sys.stderr, flush=True)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stop


def _print_up(info: Any) -> None:
    lines = [f"Argus is up: {info.cameras} camera(s)"
             + (f", {sum(e.enrolled for e in info.enrolled)} of {len(info.enrolled)} watch-list person(s) "
                "enrolled" if info.enrolled else "")]
    for e in info.enrolled:
        if not e.enrolled or e.rejected:
            lines.append(f"  {e.person_id}: {'enrolled' if e.enrolled else 'NOT enrolled'}, {e.accepted} photo(s) "
                         f"accepted, {e.rejected} rejected" + (f" ({'; '.join(e.reasons)})" if e.reasons else ""))
    lines += [f"  skipped {p}" for p in info.skipped]
    lines += [f"Console: {info.console_url}", f"API: {info.api_url} (docs at {info.api_url.removesuffix('/api/v1')}"
              "/docs)", f"Admin API key{' (new)' if info.key_is_new else ''}: {info.admin_key}",
              "Press Ctrl-C to stop."]
    print("\n".join(lines), flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    """``argus up``: the four stages, the API and the console in one process until Ctrl-C (argus.up)."""
    from argus.config import load_settings
    from argus.up import run_up

    over: dict[str, Any] = {"cameras_file": Path(args.cameras)}
    if args.data_dir is not None:
        over["data_dir"] = Path(args.data_dir)
    settings = load_settings(**_up_overrides(args, **over))
    stop = _stop_on_signals("argus up")
    result = run_up(settings, stop=stop, watchlist=Path(args.watchlist) if args.watchlist else None,
                    on_ready=_print_up)
    print(json.dumps({"events": result.events, "alerts": result.alerts, "seconds": round(result.seconds, 1),
                      **result.extra}, sort_keys=True), flush=True)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from argus.config import load_settings
    from argus.runtime.http import OpsServer
    from argus.runtime.resources import Resources
    from argus.runtime.service import build_service

    settings = load_settings()
    _setup_logging(settings.log_level)
    if args.stage == "api":  # not a bus stage: uvicorn serves until SIGTERM/SIGINT (services/api)
        from argus.runtime.service import load_api_server

        serve = load_api_server()
        with Resources(settings) as res:
            serve(res, metrics_port=args.metrics_port)
        return 0
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("argus").info("signal %d: draining %s", signum, args.stage)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    port = args.metrics_port if args.metrics_port is not None else settings.metrics_port
    with Resources(settings) as res:
        svc = build_service(args.stage, res)
        ops = OpsServer(port=port, registry=res.registry, health=svc.health).start() if port else None
        try:
            svc.run(stop, idle_exit_s=args.exit_when_idle, exit_when_drained=args.exit_when_drained)
        finally:
            svc.close()
            if ops:
                ops.stop()
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    """``argus api-key create|list|revoke``: the same library functions the API's key routes use, each audited."""
    from argus.api.auth import create_api_key, list_api_keys, revoke_api_key
    from argus.config import load_settings
    from argus.operations import Actor
    from argus.runtime.resources import Resources

    settings = load_settings()
    actor = Actor.cli(args.actor)
    with Resources(settings) as res:
        if args.key_cmd == "create":
            rec, key = create_api_key(res.store, name=args.name, role=args.role, actor=actor.name,
                                      actor_role=actor.role)
            print(json.dumps({"key_id": rec.key_id, "name": rec.name, "role": rec.role}))
            print(f"API key (shown once, store it now): {key}")
        elif args.key_cmd == "list":
            for r in list_api_keys(res.store):
                print(json.dumps({"key_id": r.key_id, "name": r.name, "role": r.role, "created_at": r.created_at,
                                  "created_by": r.created_by, "revoked_at": r.revoked_at}))
        else:
            r = revoke_api_key(res.store, args.key_id, actor=actor.name, actor_role=actor.role)
            print(json.dumps({"revoked": r.key_id, "revoked_at": r.revoked_at}))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    """Watch-list changes go through argus.operations, as the API's do: the same photo checks, the same store
    records and the same audit trail, with the CLI user as an admin (``--actor`` or the OS user)."""
    from argus import operations as ops
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    settings = load_settings()
    _refuse_in_memory(settings.gallery.value, "argus gallery edits the persisted FAISS gallery (ARGUS_GALLERY=faiss); "
                      "an in-memory gallery lives only inside the process that built it")
    with Resources(settings) as res:
        g = res.gallery
        if args.gallery_cmd == "enroll":
            from argus.enroll import read_photos

            actor = ops.Actor.cli(args.actor)
            out = ops.enroll_person(res, person_id=args.person_id, display_name=args.name or args.person_id,
                                    watchlist=args.watchlist, notes=args.notes, expires_at=args.expires,
                                    photos=read_photos(args.images), actor=actor.name, role=actor.role,
                                    reason=args.reason)
            _print_enrolment(out)
            return 0 if out.person is not None else 1
        if args.gallery_cmd == "enroll-bulk":
            return _enroll_bulk(res, args)
        if args.gallery_cmd == "list":
            for p in g.persons():
                print(json.dumps(p.to_dict(), default=str))
        elif args.gallery_cmd == "remove":
            actor = ops.Actor.cli(args.actor)
            if args.erase:
                receipt = ops.erase_person(res, args.person_id, actor=actor.name, role=actor.role,
                                           reason=args.reason)
                print(json.dumps(receipt.to_dict()))
            else:
                version = ops.remove_person(res, args.person_id, actor=actor.name, role=actor.role,
                                            reason=args.reason)
                print(json.dumps({"removed": args.person_id, "gallery_version": version}))
        elif args.gallery_cmd == "audit":
            from argus.gallery.audit import read_audit

            for entry in read_audit(res.settings.gallery_dir):
                print(json.dumps(entry.to_dict() if hasattr(entry, "to_dict") else entry.__dict__, default=str))
    return 0


def _print_enrolment(out: Any, *, prefix: str = "") -> None:
    """Each refused photo and look-alike on stderr (what the operator must act on), the summary on stdout."""
    for p in out.rejected:
        print(f"{prefix}rejected {p.reason}", file=sys.stderr)
    for other, score in out.look_alikes.items():
        print(f"{prefix}warning: already matches listed person {other} at cosine {score:.3f}: one may be named for "
              "the other on camera", file=sys.stderr)
    pid = out.person.person_id if out.person is not None else None
    print(json.dumps({"enrolled": pid, "accepted": len(out.accepted), "rejected": len(out.rejected),
                      "look_alikes": out.look_alikes, "gallery_version": out.gallery_version}))


class _Progress:
    """A one-line progress bar on stderr (no dependency): redrawn in place on a terminal, one line per step
    otherwise, so a log file still shows how far a long import got."""

    def __init__(self, total: int, *, label: str, width: int = 30) -> None:
        self.total, self.label, self.width, self.done = max(total, 0), label, width, 0
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * round(frac * self.width)
        line = (f"{self.label} [{bar:<{self.width}}] {self.done}/{self.total} "
                f"{time.monotonic() - self.started:.0f}s {what}")
        if self.tty:
            print("\r" + line[:160].ljust(160), end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def _enroll_bulk(res: Any, args: argparse.Namespace) -> int:
    """Enroll every person of a folder or manifest, one operations.enroll_person each: a bad row or a person whose
    photos all fail is reported and the rest go on. Exit 1 when anybody could not be enrolled."""
    from argus import operations as ops
    from argus.enroll import read_bulk_source, read_photos

    actor = ops.Actor.cli(args.actor)
    persons, problems = read_bulk_source(args.source, watchlist=args.watchlist, expires_at=args.expires)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    summary: list[dict[str, Any]] = []
    bar = _Progress(len(persons), label="enrolling")
    try:
        for bp in persons:
            try:
                out = ops.enroll_person(res, person_id=bp.person_id, display_name=bp.display_name,
                                        watchlist=bp.watchlist, expires_at=bp.expires_at,
                                        photos=read_photos(bp.photos), actor=actor.name, role=actor.role,
                                        reason=args.reason)
                row: dict[str, Any] = {"person_id": bp.person_id, "enrolled": out.person is not None,
                                       "accepted": len(out.accepted), "rejected": len(out.rejected),
                                       "reasons": [p.reason for p in out.rejected]}
                if out.look_alikes:
                    row["look_alikes"] = out.look_alikes
            except ArgusError as e:  # a bad id, a bad list name: this person only
                row = {"person_id": bp.person_id, "enrolled": False, "accepted": 0, "rejected": len(bp.photos),
                       "reasons": [f"{type(e).__name__}: {e}"]}
            summary.append(row)
            bar.step(bp.person_id)
    finally:
        bar.close()
    for row in summary:
        print(json.dumps(row))
    failed = [r["person_id"] for r in summary if not r["enrolled"]]
    print(f"enrolled {len(summary) - len(failed)} of {len(summary)} person(s), "
          f"{sum(r['accepted'] for r in summary)} photo(s) accepted, {sum(r['rejected'] for r in summary)} rejected"
          + (f", {len(problems)} manifest row(s) skipped" if problems else "")
          + (f"; not enrolled: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed or problems else 0


def _doc(obj: Any) -> dict[str, Any]:
    """One history row as JSON-able dict, without the crop bytes (use the API or MongoDB for evidence images)."""
    if hasattr(obj, "alert"):  # AlertRecord: the alert plus its triage state
        d = obj.alert.model_dump(mode="json", exclude={"crop_jpeg"})
        d.update(status=obj.status, acked_by=obj.acked_by, acked_at=obj.acked_at, note=obj.note)
        return d
    d = obj.to_doc()
    d.pop("crop_jpeg", None)
    return d


def cmd_events(args: argparse.Namespace) -> int:
    """History queries through argus.operations, so reading from the CLI is audited like reading from the API."""
    from argus import operations as ops
    from argus.config import load_settings
    from argus.runtime.resources import Resources
    from argus.store.base import AlertFilter, EventFilter

    actor = ops.Actor.cli(args.actor)
    name, role = actor.name, actor.role
    with Resources(load_settings()) as res:
        cams = ops.resolve_cameras(res, camera_ids=args.camera or None, zone=args.zone)
        if args.kind == "alerts":
            aflt = AlertFilter(camera_ids=cams, person_id=args.person, watchlist=args.watchlist, status=args.status,
                               since=args.since, until=args.until)
            rows: list[Any] = ops.query_alerts(res, aflt, limit=args.limit, actor=name, role=role).items
        else:
            eflt = EventFilter(camera_ids=cams, person_id=args.person, watchlist=args.watchlist,
                               emotion=args.emotion, since=args.since, until=args.until)
            if args.export:
                for chunk in ops.export_events(res, eflt, fmt=args.export, actor=name, role=role):
                    sys.stdout.write(chunk)
                return 0
            rows = ops.query_events(res, eflt, limit=args.limit, actor=name, role=role).items
        for r in rows:
            print(json.dumps(_doc(r), default=str))
    return 0


#: ``argus ack --status`` values and the triage actions they are.
_ACK_ACTIONS = {"acknowledged": "acknowledge", "dismissed": "dismiss", "not_this_person": "not_this_person"}


def cmd_ack(args: argparse.Namespace) -> int:
    from argus import operations as ops
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    actor = ops.Actor.cli(args.actor)
    with Resources(load_settings()) as res:
        rec = ops.triage_alert(res, args.alert_id, action=_ACK_ACTIONS[args.status], reason=args.note,
                               actor=actor.name, role=actor.role)
        print(json.dumps({"alert_id": rec.alert_id, "status": rec.status}))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``argus audit verify``: walk the whole trail through the chain check; exit 1 naming the first bad record."""
    from argus.audit_trail import cross_check_gallery, verify_chain
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    settings = load_settings()
    with Resources(settings) as res:
        records = list(res.store.audit_records())
        rep = verify_chain(records, now=time.time(), retention_days=settings.retention_audit_days or None)
        disagree = cross_check_gallery(res.gallery.audit(), records) if rep.ok else []
    if not rep.ok:
        print(f"audit chain BROKEN at seq {rep.first_bad_seq}: {rep.problem}")
        return 1
    if disagree:
        print(f"audit chain OK: {rep.checked} records, but the gallery's own log disagrees with it:")
        for line in disagree:
            print(f"  {line}")
        return 1
    print(f"audit chain OK: {rep.checked} records; the gallery's log agrees")
    return 0


def cmd_dead_letters(args: argparse.Namespace) -> int:
    """Read ``argus.deadletter.v1`` from the start (a throwaway consumer group that never commits, so the topic is
    left as it was); ``--replay`` sends the original payloads back to their source topics after a fix, which is
    safe because every downstream write is idempotent."""
    import uuid

    from argus.config import load_settings
    from argus.runtime.resources import Resources
    from argus.schemas import TOPIC_DEADLETTER, DeadLetterV1, decode

    settings = load_settings()
    _refuse_in_memory(settings.bus.value, "dead letters are kept on Kafka (ARGUS_BUS=kafka); the in-memory bus lives "
                      "only inside `argus demo`, whose summary counts them")
    with Resources(settings) as res:
        bus = res.bus
        bus.ensure_topics([TOPIC_DEADLETTER])
        consumer = bus.consumer([TOPIC_DEADLETTER], group=f"argus-dead-letters-{uuid.uuid4().hex[:8]}")
        shown = replayed = 0
        try:
            while shown < args.limit:
                records = consumer.poll(max_records=min(100, args.limit - shown), timeout_s=args.wait)
                if not records:
                    break
                for r in records:
                    try:
                        dl = decode(r.value, DeadLetterV1)
                    except SchemaError as e:  # written by something else: say where, keep listing the rest
                        print(f"argus dead-letters: skipped {r.topic}[{r.partition}]@{r.offset}: {e}", file=sys.stderr)
                        continue
                    if (args.stage and dl.stage != args.stage) or (args.camera and dl.camera_id != args.camera):
                        continue
                    shown += 1
                    print(json.dumps({"offset": f"{r.partition}@{r.offset}", "ts": dl.ts, "stage": dl.stage,
                                      "camera_id": dl.camera_id, "source": f"{dl.source_topic}[{dl.source_partition}]"
                                      f"@{dl.source_offset}", "error_kind": dl.error_kind, "error": dl.error,
                                      "payload_bytes": len(dl.payload)}))
                    if args.replay:
                        bus.publish(dl.source_topic, key=dl.camera_id.encode() or None, value=dl.payload)
                        replayed += 1
            if replayed:
                bus.flush()
                print(json.dumps({"replayed": replayed}))
        finally:
            consumer.close()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    if args.what == "tracks":  # its own options: python -m argus.trackeval --help
        from argus import trackeval

        return trackeval.main(list(args.eval_args))

    with Resources(load_settings()) as res:
        from argus import evaluation

        if args.what == "emotion":  # per variant, then one JSON line (argus.emotion_eval)
            from argus import emotion_eval
            from argus.faces.emotion import EmotionClassifier
            from argus.faces.mesh import FaceMesh

            if not args.data and not args.clips:
                raise ConfigError("argus eval emotion needs --data (FER2013 csv or a folder per class) or --clips")
            report = emotion_eval.run_evaluation(
                classifier=EmotionClassifier(res.backend), mesh=FaceMesh(res.backend), detect=res.pipeline.detect,
                process=res.pipeline.process, data=Path(args.data) if args.data else None, usage=args.usage,
                views=res.settings.emotion_tta_views if args.views is None else args.views,
                clips=[Path(c) for c in args.clips or ()])
            for line in emotion_eval.format_report(report):
                print(line)
            return 0
        out = evaluation.eval_faces(res.backend, res.pipeline.detect)
        summary = {k: v for k, v in out.items() if k not in {"embeddings", "labels", "sources"}}
        print(json.dumps(summary, default=float))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``argus train emotion``: a new head on the frozen emotion model, written as a new model version."""
    from argus.config import load_settings
    from argus.runtime.resources import Resources
    from argus.train_emotion import TrainConfig, format_report, train_emotion

    settings = load_settings()
    cfg = TrainConfig(holdout=args.holdout, epochs=args.epochs, learning_rate=args.lr, l2=args.l2,
                      views=args.views, seed=args.seed)
    classes = [c for c in (args.classes or "").split(",") if c.strip()] or None
    with Resources(settings) as res:  # the detector is built only if a photo larger than a crop needs it
        result = train_emotion(Path(args.data), Path(args.model_repository or settings.model_repository),
                               out_version=args.out_version, config=cfg, classes=classes,
                               detect=lambda frame: res.pipeline.detect(frame))
    for line in format_report(result):
        print(line)
    return 0


#: Entry-point groups through which other distributions add to ``argus`` without the runtime importing them: the
#: dev harness (argus_dev.commands) supplies ``argus bench``, ``argus dev`` and ``argus demo --distributed``.
COMMANDS_GROUP = "argus.commands"  # name = the sub-command; value = a function that adds its sub-parser
DEMO_MODES_GROUP = "argus.demo_modes"  # name = the demo flag; value = a function(*, data_dir) -> DemoResult


def _add_plugin_commands(sub: Any) -> None:
    """Each ``argus.commands`` entry point adds its sub-parser; one that fails to load is skipped with a warning, so a
    broken dev harness can never stop ``argus run``. A built-in command of the same name wins."""
    from importlib.metadata import entry_points

    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        if ep.name in sub.choices:
            continue
        try:
            ep.load()(sub)
        except Exception as e:  # a plugin's bug or missing dependency is its own problem, not the runtime's
            logging.getLogger("argus").warning("argus: command %r (%s) not available: %s: %s", ep.name, ep.value,
                                               type(e).__name__, e)


def _demo_mode(name: str) -> Any:
    from importlib.metadata import entry_points

    found = entry_points(group=DEMO_MODES_GROUP, name=name)
    if not found:
        raise ConfigError(f"argus demo --{name}: expected the dev harness (argus_dev, entry point "
                          f"{DEMO_MODES_GROUP}:{name}) to be installed, got none; install Argus with its dev harness "
                          "(scripts/setup.sh --dev in a checkout)")
    return next(iter(found)).load()


def cmd_config(args: argparse.Namespace) -> int:
    from argus.config import Settings, load_settings

    if args.list:
        for name, f in Settings.model_fields.items():
            default = f.get_default(call_default_factory=True)
            print(f"ARGUS_{name.upper():28s} default={default!s:32.32s} {f.description}")
        return 0
    s = load_settings()
    print(json.dumps(s.redacted(), indent=1, default=str))
    return 0


# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="argus", description=__doc__.splitlines()[0])
    ap.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR (default: ARGUS_LOG_LEVEL)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("demo", help="run the whole pipeline on real clips and print the alerts")
    d.add_argument("--data-dir", default=".argus/demo", help="where the demo keeps its gallery and history")
    d.add_argument("--distributed", action="store_true",
                   help="run the four stages as separate processes over the servers `argus dev up` started "
                        "(Kafka, Triton, MongoDB; registered with its Prometheus when running)")
    d.add_argument("--console", action="store_true",
                   help="then keep the operator console open on the demo's alerts until Ctrl-C")
    d.add_argument("--port", type=int, default=None, help="the console's port (default: ARGUS_API_PORT)")
    d.set_defaults(fn=cmd_demo)

    u = sub.add_parser("up", help="watch your cameras: the four stages, the operator API and the console in one "
                                  "process until Ctrl-C")
    u.add_argument("--cameras", required=True, metavar="FILE", help="the camera registry (TOML)")
    u.add_argument("--watchlist", default=None, metavar="DIR",
                   help="enroll at start: one sub-folder per person id holding that person's photos")
    u.add_argument("--data-dir", default=None, help="gallery, SQLite history and admin.key (default: ARGUS_DATA_DIR)")
    u.add_argument("--port", type=int, default=None, help="the API and console port (default: ARGUS_API_PORT)")
    u.set_defaults(fn=cmd_up)

    r = sub.add_parser("run", help="run one stage or the operator API (the container entry point)")
    r.add_argument("stage", choices=[*STAGES, "api"])
    r.add_argument("--metrics-port", type=int, default=None)
    r.add_argument("--exit-when-idle", type=float, default=None, metavar="S",
                   help="exit after S seconds without input (batch jobs, tests)")
    r.add_argument("--exit-when-drained", action="store_true",
                   help="recorded footage: exit (status 0, after flushing and committing) once the input is "
                        "finished: ingest at the end of its files; a consumer when ingest has finished and every "
                        "consumer group up to its own has committed its whole input (argus.control.v1)")
    r.set_defaults(fn=cmd_run)

    k = sub.add_parser("api-key", help="create, list or revoke operator API keys (audited)")
    ks = k.add_subparsers(dest="key_cmd", required=True)
    kc = ks.add_parser("create", help="make a key; it is printed once and only its hash is stored")
    kc.add_argument("--role", required=True, choices=["admin", "operator", "analyst", "auditor"])
    kc.add_argument("--name", required=True, help="what the key is for (a system, a person)")
    kl = ks.add_parser("list", help="list keys (never their secrets)")
    kr = ks.add_parser("revoke", help="refuse a key from its next request on")
    kr.add_argument("key_id")
    for p in (kc, kl, kr):
        p.add_argument("--actor", default=None, help="who does this (recorded in the audit trail; default: OS user)")
    k.set_defaults(fn=cmd_api_key)

    g = sub.add_parser("gallery", help="manage the watch-list (every change is audited)")
    gs = g.add_subparsers(dest="gallery_cmd", required=True)
    ge = gs.add_parser("enroll", help="enroll or re-enroll a person from photos (each checked: one face, large and "
                       "sharp enough, the same person as the others)")
    ge.add_argument("person_id")
    ge.add_argument("images", nargs="+")
    ge.add_argument("--name", default="")
    ge.add_argument("--notes", default="")
    gb = gs.add_parser("enroll-bulk", help="enroll many persons from a folder (one sub-folder of photos per person "
                       "id) or a CSV manifest (person_id,display_name,watchlist,photo_path[,expires_at])")
    gb.add_argument("source", help="folder or manifest.csv")
    for p in (ge, gb):
        p.add_argument("--watchlist", default="default", help="the list (bulk: for folders and empty cells)")
        p.add_argument("--expires", type=_ts, default=None, metavar="TIME",
                       help="when the authorization to search ends (epoch seconds or ISO-8601)")
    gs.add_parser("list", help="list enrolled persons")
    gr = gs.add_parser("remove", help="remove a person (--erase: delete every trace, with a receipt)")
    gr.add_argument("person_id")
    gr.add_argument("--erase", action="store_true",
                    help="erasure: also delete their events, alerts, crops, photos and audit mentions")
    gs.add_parser("audit", help="print the audit log of watch-list changes")
    for p in (ge, gb, gr):
        p.add_argument("--actor", default=None, help="who makes this change (audited; default: the OS user)")
        p.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    g.set_defaults(fn=cmd_gallery)

    for kind in ("events", "alerts"):
        e = sub.add_parser(kind, help=f"query the {kind} history (audited)")
        e.add_argument("--camera", action="append", help="a camera id (repeatable)")
        e.add_argument("--zone", help="only cameras whose location is in this zone")
        e.add_argument("--person")
        e.add_argument("--watchlist")
        e.add_argument("--since", type=_ts)
        e.add_argument("--until", type=_ts)
        e.add_argument("--limit", type=int, default=100)
        e.add_argument("--actor", default=None, help="who reads (audited; default: the OS user)")
        if kind == "events":
            e.add_argument("--emotion")
            e.add_argument("--export", choices=["csv", "json"], default=None,
                           help="stream every matching sighting (no limit) as CSV or JSON Lines")
        else:
            e.add_argument("--status", choices=["new", "acknowledged", "dismissed", "not_this_person"])
        e.set_defaults(fn=cmd_events, kind=kind)

    a = sub.add_parser("ack", help="triage an alert: acknowledge, dismiss (false alarm) or not_this_person (a "
                       "dismissal that keeps the face as negative evidence; needs --note)")
    a.add_argument("alert_id")
    a.add_argument("--status", choices=list(_ACK_ACTIONS), default="acknowledged")
    a.add_argument("--actor", default=None, help="who triages (audited; default: the OS user)")
    a.add_argument("--note", default="")
    a.set_defaults(fn=cmd_ack)

    au = sub.add_parser("audit", help="the operator audit trail in the event store")
    aus = au.add_subparsers(dest="audit_cmd", required=True)
    aus.add_parser("verify", help="check the hash chain; exit 1 naming the first edited, deleted or moved record")
    au.set_defaults(fn=cmd_audit)

    dl = sub.add_parser("dead-letters", help="list the messages a stage could not process (and why); replay them")
    dl.add_argument("--stage", choices=CONSUMING_STAGES)
    dl.add_argument("--camera")
    dl.add_argument("--limit", type=int, default=100)
    dl.add_argument("--wait", type=float, default=5.0, help="seconds to wait for more before stopping")
    dl.add_argument("--replay", action="store_true",
                    help="republish each listed payload to its source topic (after the cause was fixed)")
    dl.set_defaults(fn=cmd_dead_letters)

    ev = sub.add_parser("eval", help="measure the models on real labelled data")
    ev.add_argument("what", choices=["faces", "emotion", "tracks"],
                    help="tracks: false alerts / missed visits per generated scene, today's rule vs tracks "
                         "(options: python -m argus.trackeval --help)")
    ev.add_argument("--data", help="emotion: FER2013-style csv or a folder per class")
    ev.add_argument("--usage", help="emotion: only FER2013 rows of this Usage (PublicTest, PrivateTest, Training)")
    ev.add_argument("--views", type=int, help="emotion: TTA views (default: the emotion_tta_views setting)")
    ev.add_argument("--clips", nargs="+", metavar="FILE", help="emotion: clips for +smoothing (label flips per track)")
    ev.set_defaults(fn=cmd_eval, eval_args=[])

    tr = sub.add_parser("train", help="fine-tune a model on your own labels (emotion: new head, new model version)")
    tr.add_argument("what", choices=["emotion"])
    tr.add_argument("--data", required=True, help="a folder per class (angry, disgust, fear, happy, sad, surprise, "
                    "neutral) of face crops (<= 64 px) or photos (the detector crops the face)")
    tr.add_argument("--out-version", type=int, default=None, help="version directory to write (default: next free)")
    tr.add_argument("--model-repository", default=None, help="default: ARGUS_MODEL_REPOSITORY")
    tr.add_argument("--classes", default=None, help="comma-separated classes that must be present")
    tr.add_argument("--holdout", type=float, default=0.2, help="fraction of each class held out for the report")
    tr.add_argument("--epochs", type=int, default=300, help="full-batch Adam steps")
    tr.add_argument("--lr", type=float, default=0.05)
    tr.add_argument("--l2", type=float, default=1e-3)
    tr.add_argument("--views", type=int, default=10, help="augmented views per training face (1 = none)")
    tr.add_argument("--seed", type=int, default=0, help="draws the held-out split")
    tr.set_defaults(fn=cmd_train)

    c = sub.add_parser("config", help="validate and print the configuration (secrets masked)")
    c.add_argument("--list", action="store_true", help="list every ARGUS_* variable with its default")
    c.set_defaults(fn=cmd_config)

    _add_plugin_commands(sub)  # argus bench, argus dev: the dev harness's (argus_dev.commands)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "pass_through", False):
        args.extra_args = extra  # the command parses its own options (argus bench: bench/run.py)
    elif args.cmd == "eval" and args.what == "tracks":
        args.eval_args = extra  # argus.trackeval parses its own options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd != "run":
        _setup_logging(args.log_level or "WARNING")
    started = time.monotonic()
    try:
        return int(args.fn(args))
    except ConfigError as e:
        print(f"argus {args.cmd}: configuration error: {e}", file=sys.stderr)
        return 2
    except ArgusError as e:
        print(f"argus {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"argus {args.cmd}: interrupted after {time.monotonic() - started:.1f}s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
