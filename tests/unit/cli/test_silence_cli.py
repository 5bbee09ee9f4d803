"""`sentinel silence add` reads matchers as amtool does (Alertmanager's syntax), against a
local HTTP server standing in for the daemon."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from sentinel.cli import _parser
from sentinel.cli import silence as silence_cli


def add(httpserver: HTTPServer, *matchers: str) -> tuple[int, list[dict[str, Any]]]:
    bodies: list[dict[str, Any]] = []

    def answer(request: Request) -> Response:
        bodies.append(json.loads(request.data))
        return Response(json.dumps({"silenceID": "s1"}), content_type="application/json")

    httpserver.expect_request("/api/v1/silences", method="POST").respond_with_handler(answer)
    argv = ["silence", "add", "--api", httpserver.url_for("/"), "--token", "t", *matchers]
    code = silence_cli.run(_parser().parse_args(argv))
    return code, bodies[0]["matchers"] if bodies else []


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        (["alertname=IdleWorker"], [("alertname", "IdleWorker", False, True)]),
        (['queue=~"billing.*"', "env!=dev"], [("queue", "billing.*", True, True),
                                              ("env", "dev", False, False)]),
        (['{alertname="A",task!~"tmp.*"}'], [("alertname", "A", False, True),
                                              ("task", "tmp.*", True, False)]),
        (['summary="a, b"'], [("summary", "a, b", False, True)]),
    ],
)  # fmt: skip
def test_matchers_in_alertmanagers_syntax(
    httpserver: HTTPServer, matchers: list[str], expected: list[tuple[str, str, bool, bool]]
) -> None:
    code, sent = add(httpserver, *matchers)
    assert code == 0
    assert [(m["name"], m["value"], m["isRegex"], m["isEqual"]) for m in sent] == expected


@pytest.mark.parametrize("bad", ["{}", "1a=b", 'a=~"("', 'a="unclosed'])
def test_a_bad_matcher_is_refused_before_calling_the_daemon(
    httpserver: HTTPServer, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, sent = add(httpserver, bad)
    assert code == 2 and sent == []
    assert capsys.readouterr().err.startswith("error: ")
