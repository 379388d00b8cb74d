"""What the API backend puts in a request body for the repetition penalty (the HTTP path itself is covered end
to end in tests/rrd/test_cli.py against a loopback server)."""

from __future__ import annotations

from judges.backends.api import ApiBackend
from judges.types import Request, SamplingParams

MSGS = [{"role": "user", "content": "hi"}]


def _body(backend: ApiBackend, penalty: float) -> dict:
    return backend._kwargs(Request(MSGS, SamplingParams(repetition_penalty=penalty)))


def test_self_hosted_servers_get_the_penalty_under_both_names():
    for transport in ("openai", "litellm"):
        body = _body(ApiBackend("m", api_base="http://127.0.0.1:9/v1", transport=transport), 1.3)
        assert body["extra_body"] == {"repetition_penalty": 1.3, "repeat_penalty": 1.3}


def test_openai_itself_and_an_unset_penalty_send_nothing():
    assert "extra_body" not in _body(ApiBackend("gpt-4o", transport="openai"), 1.3)  # OpenAI refuses unknown fields
    assert "extra_body" not in _body(ApiBackend("m", api_base="http://127.0.0.1:9/v1"), 1.0)
