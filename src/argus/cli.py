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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argus.errors import ArgusError, ConfigError, SchemaError
from argus.topology import CONSUMING_STAGES, STAGES


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _ts(value: str) -> float:
    """Accept epoch seconds or an ISO-8601 date/time (UTC if no zone)."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected epoch seconds or ISO-8601 time, got {value!r}") from e
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _refuse_in_memory(kind: str, why: str) -> None:
    """A command that reads state another process left (gallery files, a Kafka topic) cannot use an in-memory twin."""
    if kind == "memory":
        raise ConfigError(why)


# ---------------------------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from argus.demo import print_summary, run_demo, run_distributed_demo

    if args.distributed:
        from argus.cluster import Servers

        result = run_distributed_demo(servers=Servers.from_dev(), data_dir=Path(args.data_dir))
    else:
        result = run_demo(data_dir=Path(args.data_dir))

    print_summary(result)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from argus.config import load_settings
    from argus.runtime.http import OpsServer
    from argus.runtime.resources import Resources
    from argus.runtime.service import build_service

    settings = load_settings()
    _setup_logging(settings.log_level)
    if args.stage == "api":  # not a bus stage: uvicorn serves until SIGTERM/SIGINT (services/api)
        from services.api.stage import serve

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
            svc.run(stop, idle_exit_s=args.exit_when_idle)
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
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    settings = load_settings()
    _refuse_in_memory(settings.gallery.value, "argus gallery edits the persisted FAISS gallery (ARGUS_GALLERY=faiss); "
                      "an in-memory gallery lives only inside the process that built it")
    with Resources(settings) as res:
        g = res.gallery
        if args.gallery_cmd == "enroll":
            from argus.enroll import enroll_person
            from argus.gallery.base import Person

            person = Person(person_id=args.person_id, display_name=args.name or args.person_id,
                            watchlist=args.watchlist, notes=args.notes)
            threshold = res.settings.thresholds().for_watchlist(args.watchlist)
            r = enroll_person(pipeline=res.pipeline, gallery=g, person=person, images=[Path(p) for p in args.images],
                              actor=args.actor, reason=args.reason, store=res.store, threshold=threshold)
            for path, why in r.rejected.items():
                print(f"rejected {path}: {why}", file=sys.stderr)
            for other, score in r.look_alikes.items():
                print(f"warning: {r.person_id} already matches listed person {other} at cosine {score:.3f}: one "
                      "may be named for the other on camera", file=sys.stderr)
            print(json.dumps({"enrolled": r.person_id, "images": len(r.accepted), "rejected": len(r.rejected),
                              "look_alikes": r.look_alikes, "gallery_version": g.version}))
        elif args.gallery_cmd == "list":
            for p in g.persons():
                print(json.dumps(p.to_dict(), default=str))
        elif args.gallery_cmd == "remove":
            from argus.enroll import record_person

            gone = next((p for p in g.persons() if p.person_id == args.person_id), None)
            g.remove(args.person_id, actor=args.actor, reason=args.reason)
            if gone is not None:
                record_person(res.store, gone, gallery=g, actor=args.actor, reason=args.reason, removed=True)
            print(json.dumps({"removed": args.person_id, "gallery_version": g.version}))
        elif args.gallery_cmd == "audit":
            from argus.gallery.audit import read_audit

            for entry in read_audit(res.settings.gallery_dir):
                print(json.dumps(entry.to_dict() if hasattr(entry, "to_dict") else entry.__dict__, default=str))
    return 0


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
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    with Resources(load_settings()) as res:
        if args.kind == "alerts":
            rows: list[Any] = res.store.query_alerts(camera_id=args.camera, person_id=args.person, status=args.status,
                                                     since=args.since, until=args.until, limit=args.limit)
        else:
            rows = res.store.query_events(camera_id=args.camera, person_id=args.person, since=args.since,
                                          until=args.until, emotion=args.emotion, limit=args.limit)
        for r in rows:
            print(json.dumps(_doc(r), default=str))
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    with Resources(load_settings()) as res:
        res.store.set_alert_status(args.alert_id, args.status, actor=args.actor, note=args.note)
        print(json.dumps({"alert_id": args.alert_id, "status": args.status}))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """``argus audit verify``: walk the whole trail through the chain check; exit 1 naming the first bad record."""
    from argus.audit_trail import verify_chain
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    settings = load_settings()
    with Resources(settings) as res:
        rep = verify_chain(res.store.audit_records(), now=time.time(),
                           retention_days=settings.retention_audit_days or None)
    if rep.ok:
        print(f"audit chain OK: {rep.checked} records")
        return 0
    print(f"audit chain BROKEN at seq {rep.first_bad_seq}: {rep.problem}")
    return 1


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

        if args.what == "faces":
            out = evaluation.eval_faces(res.backend, res.pipeline.detect)
        else:
            if not args.data:
                raise ConfigError("argus eval emotion needs --data DIR (FER2013-style csv or a folder per class)")
            out = evaluation.eval_emotion(res.backend, Path(args.data))
        summary = {k: v for k, v in out.items() if k not in {"embeddings", "labels", "sources"}}
        print(json.dumps(summary, default=float))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    try:
        from bench.run import main as bench_main
    except ImportError as e:
        raise ConfigError("argus bench needs the repo's bench/ package (an editable install from a checkout)") from e

    return bench_main(list(args.bench_args))


def cmd_dev(args: argparse.Namespace) -> int:
    from argus.devservers import manager

    return int(manager.main([args.action, *args.names]) or 0)


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
    d.set_defaults(fn=cmd_demo)

    r = sub.add_parser("run", help="run one stage or the operator API (the container entry point)")
    r.add_argument("stage", choices=[*STAGES, "api"])
    r.add_argument("--metrics-port", type=int, default=None)
    r.add_argument("--exit-when-idle", type=float, default=None, metavar="S",
                   help="exit after S seconds without input (batch jobs, tests)")
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
    ge = gs.add_parser("enroll", help="enroll or re-enroll a person from photos with exactly one face each")
    ge.add_argument("person_id")
    ge.add_argument("images", nargs="+")
    ge.add_argument("--name", default="")
    ge.add_argument("--watchlist", default="default")
    ge.add_argument("--notes", default="")
    gs.add_parser("list", help="list enrolled persons")
    gr = gs.add_parser("remove", help="remove a person")
    gr.add_argument("person_id")
    gs.add_parser("audit", help="print the audit log of watch-list changes")
    for p in (ge, gr):
        p.add_argument("--actor", required=True, help="who makes this change (recorded in the audit log)")
        p.add_argument("--reason", required=True, help="why (recorded in the audit log)")
    g.set_defaults(fn=cmd_gallery)

    for kind in ("events", "alerts"):
        e = sub.add_parser(kind, help=f"query the {kind} history")
        e.add_argument("--camera")
        e.add_argument("--person")
        e.add_argument("--since", type=_ts)
        e.add_argument("--until", type=_ts)
        e.add_argument("--limit", type=int, default=100)
        if kind == "events":
            e.add_argument("--emotion")
        else:
            e.add_argument("--status", choices=["new", "acknowledged", "dismissed"])
        e.set_defaults(fn=cmd_events, kind=kind)

    a = sub.add_parser("ack", help="triage an alert: acknowledge or dismiss (false alarm)")
    a.add_argument("alert_id")
    a.add_argument("--status", choices=["acknowledged", "dismissed"], default="acknowledged")
    a.add_argument("--actor", required=True)
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
    ev.set_defaults(fn=cmd_eval, eval_args=[])

    dv = sub.add_parser("dev", help="install/start/stop the real servers for development and tests")
    dv.add_argument("action", choices=["up", "down", "status"])
    dv.add_argument("names", nargs="*", help="kafka, triton, mongo, prometheus (default: all)")
    dv.set_defaults(fn=cmd_dev)

    bn = sub.add_parser("bench", add_help=False, help="benchmarks: every stage and the pipeline against its limits "
                        "(argus bench --help)")
    bn.set_defaults(fn=cmd_bench, bench_args=[])

    c = sub.add_parser("config", help="validate and print the configuration (secrets masked)")
    c.add_argument("--list", action="store_true", help="list every ARGUS_* variable with its default")
    c.set_defaults(fn=cmd_config)
    return ap


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.cmd == "bench":
        args.bench_args = extra  # bench parses its own options (bench/run.py)
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
