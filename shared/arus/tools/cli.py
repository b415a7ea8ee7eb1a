"""The `arus` command (SPEC §5): an adapter over the same use cases the functions call."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arus.admin import keys, ledgers, migrate
from arus.admin.grants import ROLES
from arus.errors import ArusError
from arus.jobs import verify
from arus.ledger import commands
from arus.ledger.access import SCOPES
from arus.platform import logs
from arus.platform.config import (
    MAIN_PLACEMENT,
    ConfigError,
    Settings,
    UnknownPlacement,
    load_settings,
)
from arus.platform.db import get_engine
from arus.platform.placements import everywhere
from arus.tools import devserver, progress

log = logging.getLogger("arus.tools.cli")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=None, default=str), flush=True)


def _placement(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings of the placement `--placement` names (SPEC §9)."""
    try:
        return settings.for_placement(args.placement)
    except UnknownPlacement:
        known = ", ".join(settings.placement_names)
        raise ConfigError(f"--placement: no placement {args.placement} (ARUS_PLACEMENTS has "
                          f"{known})") from None  # fmt: skip


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Every placement's schema up to date; one that cannot be reached is reported, the others
    are migrated."""
    migrated = everywhere(settings, lambda p: migrate.upgrade(get_engine(p)), what="migrate")
    revisions = set(migrated.done.values())
    _print_json({"schema_revision": revisions.pop() if len(revisions) == 1 else None,
                 "placements": {**migrated.done, **migrated.failed}})  # fmt: skip
    return 0 if migrated.ok else 1


def cmd_app_user(settings: Settings, args: argparse.Namespace) -> int:
    from arus.admin import roles

    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and password is None:
        print(f"arus: {args.password_env} is not set", file=sys.stderr)
        return 2
    engine = get_engine(_placement(settings, args))
    created = roles.ensure_app_user(engine, args.name, password, role=args.role)
    with engine.connect() as conn:
        large_objects = roles.large_object_functions(conn, args.name)
    if large_objects:
        print(
            f"arus: warning: {args.name} may still create large objects through PUBLIC "
            f"({', '.join(large_objects)}); only a superuser can revoke that",
            file=sys.stderr,
        )
    _print_json({"user": args.name, "created": created, "member_of": ROLES[args.role]})
    return 0


def cmd_ledger_create(settings: Settings, args: argparse.Namespace) -> int:
    placement = _placement(settings, args)
    created = ledgers.create_ledger_with_keys(get_engine(placement), args.name, placement.placement)
    _print_json({**created, "placement": placement.placement})
    return 0


def cmd_key_create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        ledger_id = uuid.UUID(args.ledger)
    except ValueError:
        print(f"arus: --ledger must be a ledger id, not {args.ledger!r}", file=sys.stderr)
        return 2
    placement = _placement(settings, args)
    with get_engine(placement).begin() as conn:
        issued = keys.issue_key(
            conn, ledger_id=ledger_id, scope=args.scope, placement=placement.placement
        )
    _print_json({"key_id": issued.key_id, "key": issued.key, "scope": issued.scope})
    return 0


def cmd_key_revoke(settings: Settings, args: argparse.Namespace) -> int:
    with get_engine(_placement(settings, args)).begin() as conn:
        revoked = keys.revoke_key(conn, args.key_id)
    if not revoked:
        print(f"arus: no active key {args.key_id}", file=sys.stderr)
        return 1
    _print_json({"key_id": args.key_id, "revoked": True})
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    print(f"arus: serving the ledger on http://{args.host}:{args.port}", flush=True)
    devserver.serve(settings, args.host, args.port, workers=args.workers, threads=args.threads)
    return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    report = verify.verify_everywhere(settings, progress=progress.track)
    _print_json(report)
    for ledger in report["ledgers"]:
        if ledger["seal_broken_at"] is not None:
            broken = ledger["seal_broken_at"]
            print(f"ledger {ledger['ledger_id']}: the journal sealed by the close of {broken} "
                  "no longer matches its seal", file=sys.stderr)  # fmt: skip
    return 0 if report["ok"] else 1


def cmd_relay(settings: Settings, args: argparse.Namespace) -> int:
    from arus.outbox import relay

    if args.once:
        outcome = relay.run_once(settings)
        _print_json(outcome.to_json())
        return 0 if outcome.error is None else 1
    relay.run_forever(settings, interval_s=args.interval)
    return 0


def cmd_openapi(settings: Settings, args: argparse.Namespace) -> int:
    from arus.web import openapi

    print(json.dumps(openapi.document(), indent=2, sort_keys=False))
    return 0


def cmd_prune(settings: Settings, args: argparse.Namespace) -> int:
    from arus.jobs import prune

    with progress.status("pruning"):
        counts = prune.prune_everywhere(settings)
    _print_json(counts)
    return 0 if counts["ok"] else 1


def cmd_close(settings: Settings, args: argparse.Namespace) -> int:
    from arus.jobs import close

    day = commands.parse_as_of(args.date, field="--date") if args.date else None
    reports = close.close_all(settings, day, progress=progress.track)
    _print_json(reports)
    return 0 if all(r["ok"] for r in reports) else 1


def cmd_bundle(settings: Settings, args: argparse.Namespace) -> int:
    from arus.tools.bundle import build_bundles

    for result in build_bundles(Path(args.out), functions=args.function):
        _print_json(result.to_json())
    return 0


def cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    return devserver.run(settings, args)


def _placement_option(parser: argparse.ArgumentParser, what: str = "its database") -> None:
    parser.add_argument(
        "--placement", default=MAIN_PLACEMENT,
        help=f"the placement of {what} (ARUS_PLACEMENTS; default {MAIN_PLACEMENT})",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arus", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="bring the schema up to date").set_defaults(func=cmd_migrate)

    app_user = sub.add_parser(
        "app-user", help="create a runtime's login user (member of its job's role only)"
    )
    app_user.add_argument("name")
    app_user.add_argument(
        "--role", choices=tuple(ROLES), default="api",
        help="the job it runs: api (default, arus_app), relay (arus_relay), close (arus_close)",
    )  # fmt: skip
    app_user.add_argument("--password-env", help="environment variable holding its password")
    _placement_option(app_user)
    app_user.set_defaults(func=cmd_app_user)

    ledger = sub.add_parser("ledger", help="ledgers").add_subparsers(dest="action", required=True)
    create = ledger.add_parser("create", help="create a ledger and print its keys")
    create.add_argument("name")
    _placement_option(create, "the database the ledger lives in")
    create.set_defaults(func=cmd_ledger_create)

    key = sub.add_parser("key", help="API keys").add_subparsers(dest="action", required=True)
    key_create = key.add_parser("create", help="issue a key for a ledger")
    key_create.add_argument("--ledger", required=True)
    key_create.add_argument("--scope", required=True, choices=SCOPES)
    _placement_option(key_create)
    key_create.set_defaults(func=cmd_key_create)
    key_revoke = key.add_parser("revoke", help="revoke a key at once")
    key_revoke.add_argument("key_id")
    _placement_option(key_revoke)
    key_revoke.set_defaults(func=cmd_key_revoke)

    serve_p = sub.add_parser("serve", help="serve every function's routes over HTTP")
    serve_p.add_argument("--host", default="127.0.0.1")
    serve_p.add_argument("--port", type=int, default=8080)
    serve_p.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="processes (gunicorn over waitress when more than 1; default 1)",
    )
    serve_p.add_argument(
        "--threads",
        type=_positive,
        default=devserver.SERVE_THREADS,
        help=f"threads per process (default {devserver.SERVE_THREADS})",
    )
    serve_p.set_defaults(func=cmd_serve)

    dev = sub.add_parser("dev", help="the one-command local ledger")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--data-dir", default=os.environ.get("ARUS_DEV_DIR", ".arus"))
    dev.add_argument("--no-relay", action="store_true", help="do not run the relay every second")
    dev.set_defaults(func=cmd_dev)

    sub.add_parser("verify", help="trial balance and drift of every ledger").set_defaults(
        func=cmd_verify
    )

    relay_p = sub.add_parser("relay", help="drain the outbox to the configured transport")
    relay_p.add_argument("--once", action="store_true", help="one run, then exit")
    relay_p.add_argument("--interval", type=float, default=1.0, help="seconds between runs")
    relay_p.set_defaults(func=cmd_relay)

    bundle_p = sub.add_parser("bundle", help="build each function's deployable source and zip")
    bundle_p.add_argument("--out", default="build/bundles", help="output directory")
    bundle_p.add_argument(
        "--function",
        action="append",
        choices=("post_entry", "query", "relay", "daily_close"),
        help="only this function (repeatable); default all four",
    )
    bundle_p.set_defaults(func=cmd_bundle)

    sub.add_parser("openapi", help="print the OpenAPI 3.1 document").set_defaults(func=cmd_openapi)
    sub.add_parser(
        "prune", help="delete idempotency claims and published events past their retention"
    ).set_defaults(func=cmd_prune)

    close_p = sub.add_parser("close", help="the daily close of every ledger")
    close_p.add_argument("--date", help="YYYY-MM-DD (UTC); default yesterday")
    close_p.set_defaults(func=cmd_close)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(log_format=settings.log_format, level=settings.log_level)
        status: int = args.func(settings, args)
    except (ConfigError, ArusError) as exc:
        print(f"arus: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
