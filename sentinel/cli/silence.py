"""`sentinel silence add|list|expire`: manage silences through the running daemon's API."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sentinel.config.loader import ConfigError, default_path
from sentinel.display import table
from sentinel.notify.matchers import Matcher, MatcherError, parse_matchers
from sentinel.units import parse_duration


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    silence = sub.add_parser("silence", help="manage silences through the running daemon's API")
    actions = silence.add_subparsers(dest="action", required=True)
    api = argparse.ArgumentParser(add_help=False, parents=[common])
    api.add_argument(
        "--api",
        default=None,
        help="daemon URL (default: $SENTINEL_API, else server.listen of the config)",
    )
    api.add_argument(
        "--token", default=None, help="API token (default: $SENTINEL_API_TOKEN, else server.token)"
    )
    add = actions.add_parser("add", parents=[api], help="silence alerts matching all matchers")
    add.add_argument(
        "matchers",
        nargs="+",
        metavar="MATCHER",
        help="name=value, name!=value, name=~regex, name!~regex; quoted or not, one or several "
        'per argument (\'{alertname="X",queue=~"billing.*"}\'), as amtool takes them',
    )
    add.add_argument("--duration", default="1h", help="how long (default 1h)")
    add.add_argument("--comment", default="", help="why")
    add.add_argument("--author", default=None, help="who (default: the current user)")
    lst = actions.add_parser("list", parents=[api], help="list silences")
    lst.add_argument("--all", action="store_true", help="include expired silences")
    exp = actions.add_parser("expire", parents=[api], help="expire silences now")
    exp.add_argument("ids", nargs="+", metavar="ID")


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    api, token = args.api or os.environ.get("SENTINEL_API"), args.token
    token = token or os.environ.get("SENTINEL_API_TOKEN")
    if api is None or token is None:
        from sentinel.config import load

        try:
            config = load(args.config or default_path())
        except ConfigError:
            config = None
        if config is not None:
            if api is None:
                host, port = config.server.host_port
                host = "127.0.0.1" if host in ("0.0.0.0", "") else host
                api = f"http://{host}:{port}"
            if token is None and config.server.token is not None:
                token = config.server.token.get_secret_value() or None
    return (api or "http://127.0.0.1:9808").rstrip("/"), token


def _call(method: str, url: str, token: str | None, body: Any = None) -> Any:
    import requests  # here, not at the top: every `sentinel` command would pay its 0.2 s import

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = requests.request(method, url, json=body, headers=headers, timeout=10)
    except requests.RequestException as e:
        raise SystemExit(f"cannot reach the sentinel API at {url}: {type(e).__name__}") from None
    if response.status_code >= 400:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text
        raise SystemExit(f"sentinel API answered {response.status_code}: {reason}")
    return response.json() if response.content else None


def run(args: argparse.Namespace) -> int:
    api, token = _endpoint(args)
    if args.action == "add":
        try:
            matchers = [m for text in args.matchers for m in parse_matchers(text)]
            seconds = parse_duration(args.duration)
            if not matchers:
                raise MatcherError("at least one matcher is required")
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        now = datetime.now(UTC)
        body = {
            "matchers": [m.to_api() for m in matchers],
            "startsAt": now.isoformat().replace("+00:00", "Z"),
            "endsAt": (now + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z"),
            "createdBy": args.author or getpass.getuser(),
            "comment": args.comment,
        }
        reply = _call("POST", f"{api}/api/v1/silences", token, body)
        print(reply["silenceID"])
        return 0
    if args.action == "expire":
        for silence_id in args.ids:
            _call("DELETE", f"{api}/api/v1/silences/{silence_id}", token)
            print(f"expired {silence_id}")
        return 0
    silences = _call("GET", f"{api}/api/v1/silences", token) or []
    rows: list[tuple[str, ...]] = [("ID", "STATE", "MATCHERS", "ENDS", "CREATED BY", "COMMENT")]
    for s in silences:
        state = s["status"]["state"]
        if state == "expired" and not args.all:
            continue
        shown = " ".join(str(Matcher.from_api(m)) for m in s["matchers"])
        rows.append((s["id"], state, shown, s["endsAt"], s["createdBy"], s["comment"]))
    print("\n".join(table(rows)))
    return 0
