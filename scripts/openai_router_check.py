#!/usr/bin/env python3
"""Ask a router served by `tune serve --router` through the official `openai` Python SDK.

Environment: OPENAI_BASE_URL (http://127.0.0.1:PORT/v1), OPENAI_API_KEY, TUNE_ROUTER (the router's
model id), TUNE_REQUESTS (a JSON file: a list of {"messages": [...], "route": "local" | "reference" |
null (either)}). For each request: the SDK's completion, its `tune_route` field, the `x-tune-route`
header (raw response) and a streamed copy must agree, and the route must be the expected one.
Prints one line per request and `routes: {...}`; exits 0 when every request behaved.
Run by Tests/TuneServerTests/ServeRouterTests.swift; also usable by hand (docs/routing.md).
"""
import json
import os
import sys

from openai import OpenAI


def main():
    client = OpenAI()
    router = os.environ["TUNE_ROUTER"]
    with open(os.environ["TUNE_REQUESTS"]) as f:
        requests = json.load(f)
    assert any(m.id == router for m in client.models.list().data), f"{router} is not in /v1/models"
    routes = {}
    for i, req in enumerate(requests):
        raw = client.chat.completions.with_raw_response.create(model=router, messages=req["messages"])
        completion = raw.parse()
        info = completion.tune_route  # tune's extension field, kept by the SDK's models
        header = raw.headers.get("x-tune-route")
        text = completion.choices[0].message.content
        assert info["route"] == header, f"request {i}: tune_route {info} but header {header}"
        if req.get("route") is not None:
            assert header == req["route"], f"request {i}: routed {header}, expected {req['route']} ({info})"
        streamed, last = "", None
        for chunk in client.chat.completions.create(model=router, messages=req["messages"], stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                streamed += chunk.choices[0].delta.content
            last = chunk
        assert streamed == text, f"request {i}: streamed {streamed!r} != {text!r}"
        assert last.tune_route["route"] == header, f"request {i}: streamed route {last.tune_route} != {header}"
        routes[header] = routes.get(header, 0) + 1
        print(f"router-check: request {i}: {header} (confidence {info.get('confidence')}, tau {info.get('tau')}): {text!r}", flush=True)
    print(f"routes: {json.dumps(routes, sort_keys=True)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
