"""``python -m biometrics.reference_holder``: the command line and :func:`serve` (stdlib only).

One tenant's secret comes from ``--secret``, ``--secret-file``, ``$HOLDER_SECRET`` or
``$HOLDER_SECRET_FILE``, in that order (the tenant ``default``); ``--tenant NAME=FILE``
(repeatable) adds a tenant with the secret in FILE, so one holder serves several schools, each
seeing only its own subjects. SIGTERM is a clean shutdown (exit status 0).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys

from .http import make_server

__all__ = ["build_parser", "main", "serve"]

log = logging.getLogger(__name__)


def serve(
    host: str,
    port: int,
    db_path: str | os.PathLike[str],
    secret: str | None,
    *,
    tenants: dict[str, str] | None = None,
    fail_first: int = 0,
    delay_ms: int = 0,
) -> None:
    """Run the reference holder until interrupted (KeyboardInterrupt / SystemExit)."""
    server = make_server(
        host, port, db_path, secret, tenants=tenants, fail_first=fail_first, delay_ms=delay_ms
    )
    log.info(
        "reference holder listening on %s (db %s, %d tenant(s)%s%s)",
        server.url,
        server.store.db_path,
        len(server.keys),
        f", failing the first {fail_first} requests" if fail_first else "",
        f", answering after {delay_ms} ms" if delay_ms else "",
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("reference holder stopped")


def _read_secret_file(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m biometrics.reference_holder",
        description="Guardian reference holder: keeps template copies, erases them on request.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port (default 8765)")
    parser.add_argument(
        "--db",
        default=os.environ.get("HOLDER_DB", "reference_holder.sqlite3"),
        help="SQLite file (default $HOLDER_DB or ./reference_holder.sqlite3)",
    )
    secret = parser.add_mutually_exclusive_group()
    secret.add_argument("--secret", help="shared HMAC secret (visible in ps; prefer --secret-file)")
    secret.add_argument("--secret-file", help="file whose content is the shared secret")
    parser.add_argument(
        "--tenant",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a tenant (a school) whose secret is in FILE; repeat for each",
    )
    parser.add_argument(
        "--fail-first",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="answer 500 to the first N requests other than /health (default $HOLDER_FAIL_FIRST)",
    )
    parser.add_argument(
        "--delay-ms",
        type=_non_negative_int,
        default=0,
        metavar="MS",
        help="answer every request other than /health after MS milliseconds (fault drills)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.secret:
        secret = args.secret
    elif args.secret_file:
        try:
            secret = _read_secret_file(args.secret_file)
        except OSError as exc:
            parser.error(f"cannot read --secret-file: {exc.strerror}")
    else:
        secret = os.environ.get("HOLDER_SECRET", "")
        if not secret and os.environ.get("HOLDER_SECRET_FILE"):
            try:
                secret = _read_secret_file(os.environ["HOLDER_SECRET_FILE"])
            except OSError as exc:
                parser.error(f"cannot read $HOLDER_SECRET_FILE: {exc.strerror}")
    tenants: dict[str, str] = {}
    for spec in args.tenant:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--tenant takes NAME=FILE, not {spec!r}")
        try:
            tenants[name] = _read_secret_file(path)
        except OSError as exc:
            parser.error(f"cannot read the secret of tenant {name!r}: {exc.strerror}")
    if not secret and not tenants:
        parser.error(
            "a secret is required: --secret, --secret-file, $HOLDER_SECRET or --tenant NAME=FILE"
        )

    fail_first = args.fail_first
    if fail_first is None:
        try:
            fail_first = _non_negative_int(os.environ.get("HOLDER_FAIL_FIRST", "0") or "0")
        except argparse.ArgumentTypeError as exc:
            parser.error(f"$HOLDER_FAIL_FIRST: {exc}")

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )

    def _terminate(signum: int, frame: object) -> None:
        raise SystemExit(0)

    with contextlib.suppress(ValueError):  # not in the main thread
        signal.signal(signal.SIGTERM, _terminate)

    try:
        serve(
            args.host,
            args.port,
            args.db,
            secret or None,
            tenants=tenants,
            fail_first=fail_first,
            delay_ms=args.delay_ms,
        )
    except ValueError as exc:  # two tenants with one secret, an empty secret
        log.error("cannot start the reference holder: %s", exc)
        return 2
    except OSError as exc:
        log.error("cannot start the reference holder: %s", exc)
        return 1
    except SystemExit:
        return 0
    return 0
