#!/usr/bin/env python3
"""Drive `tune serve` with the official `openai` Python SDK, plainly, as any OpenAI user would.

Environment: OPENAI_BASE_URL (http://127.0.0.1:PORT/v1), OPENAI_API_KEY, TUNE_MODEL (the served base
model id), TUNE_TRAIN_FILE (a valid chat JSONL file). Exits 0 when every step behaved; prints each step.
Run by Tests/TuneServerTests/OpenAISDKTests.swift; also usable by hand against a running server.
"""
import os
import sys
import time

import openai
from openai import OpenAI


def step(msg):
    print(f"sdk-check: {msg}", flush=True)


def wait_for(client, job_id, states, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in states:
            return job
        time.sleep(0.2)
    raise SystemExit(f"job {job_id} did not reach {states} in {timeout}s (last: {job.status})")


def main():
    model = os.environ["TUNE_MODEL"]
    train_path = os.environ["TUNE_TRAIN_FILE"]
    client = OpenAI()  # OPENAI_BASE_URL and OPENAI_API_KEY from the environment

    # Authentication errors surface as the SDK's own exception type.
    bad = OpenAI(api_key="not-a-key", max_retries=0)
    try:
        bad.models.list()
        raise SystemExit("a wrong API key was accepted")
    except openai.AuthenticationError as e:
        step(f"wrong key -> {e.status_code}")

    models = [m.id for m in client.models.list()]
    assert model in models, models
    step(f"models: {models}")

    with open(train_path, "rb") as f:
        uploaded = client.files.create(file=f, purpose="fine-tune")
    assert uploaded.id.startswith("file-") and uploaded.bytes == os.path.getsize(train_path), uploaded
    assert client.files.retrieve(uploaded.id).filename == os.path.basename(train_path)
    step(f"uploaded {uploaded.id} ({uploaded.bytes} bytes)")

    job = client.fine_tuning.jobs.create(
        model=model, training_file=uploaded.id, suffix="sdk",
        hyperparameters={"n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 2.0},
        seed=7, metadata={"origin": "sdk-check"})
    step(f"created {job.id}: {job.status}")
    job = wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", (job.status, job.error)
    assert job.fine_tuned_model == f"ft:{model}:sdk:{job.id}", job.fine_tuned_model
    assert job.trained_tokens and job.trained_tokens > 0
    step(f"{job.id} succeeded: {job.fine_tuned_model}, {job.trained_tokens} tokens")

    events = client.fine_tuning.jobs.list_events(fine_tuning_job_id=job.id, limit=100)
    messages = [e.message for e in events.data]
    assert any(m.startswith("Step ") for m in messages), messages
    assert any("successfully completed" in m for m in messages), messages
    step(f"{len(events.data)} events, newest: {events.data[0].message!r}")

    checkpoints = client.fine_tuning.jobs.checkpoints.list(fine_tuning_job_id=job.id)
    assert checkpoints.data and checkpoints.data[0].step_number > 0, checkpoints
    step(f"{len(checkpoints.data)} checkpoints, latest at step {checkpoints.data[0].step_number}")

    listed = client.fine_tuning.jobs.list(limit=10, metadata={"origin": "sdk-check"})
    assert [j.id for j in listed.data] == [job.id], listed

    # Cancel: a long job, cancelled while queued or running.
    long_job = client.fine_tuning.jobs.create(model=model, training_file=uploaded.id,
                                              hyperparameters={"n_epochs": 50, "batch_size": 1})
    client.fine_tuning.jobs.cancel(long_job.id)
    long_job = wait_for(client, long_job.id, {"cancelled", "succeeded", "failed"})
    assert long_job.status == "cancelled", long_job.status
    step(f"{long_job.id} cancelled")

    ft = job.fine_tuned_model
    reply = client.chat.completions.create(model=ft, messages=[{"role": "user", "content": "item 1 please"}],
                                           max_tokens=8, temperature=0, seed=1)
    assert reply.object == "chat.completion" and reply.choices[0].message.role == "assistant", reply
    assert reply.usage.completion_tokens >= 1, reply.usage
    step(f"chat ({ft}): {reply.choices[0].message.content!r}, finish {reply.choices[0].finish_reason}")

    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi"}],
                                            max_tokens=8, temperature=0, stream=True)
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert finish in ("stop", "length"), finish
    whole = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Say hi"}],
                                           max_tokens=8, temperature=0)
    assert "".join(pieces) == whole.choices[0].message.content, ("".join(pieces), whole.choices[0].message.content)
    step(f"stream ({model}): {''.join(pieces)!r} == non-streamed")

    # Legacy completions as lm-evaluation-harness's local-completions sends a log-likelihood request:
    # token-id prompts, echo, logprobs=1, max_tokens=1, then its parse (sum of token_logprobs[ctxlen:-1]).
    ctxs, conts = [[3, 5, 7, 9], [11, 12]], [[4, 6], [13]]
    ll = client.completions.create(model=model, prompt=[c + d for c, d in zip(ctxs, conts)], echo=True, logprobs=1,
                                   max_tokens=1, temperature=0, seed=1234)
    assert ll.object == "text_completion" and len(ll.choices) == 2, ll
    for choice, ctx, cont in zip(sorted(ll.choices, key=lambda c: c.index), ctxs, conts):
        lp = choice.logprobs
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, lp
        assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == len(ctx) + len(cont) + 1
        part = lp.token_logprobs[len(ctx):-1]
        assert len(part) == len(cont) and all(isinstance(x, float) and x <= 0 for x in part), part
        greedy = all(t == max(top.values()) for t, top in zip(part, lp.top_logprobs[len(ctx):-1]))
        step(f"completions log-likelihood: {sum(part):.4f}, greedy {greedy}")
    text = client.completions.create(model=model, prompt="Say hi", max_tokens=6, temperature=0)
    streamed = "".join(c.choices[0].text for c in client.completions.create(model=model, prompt="Say hi", max_tokens=6,
                                                                             temperature=0, stream=True) if c.choices)
    assert streamed == text.choices[0].text, (streamed, text.choices[0].text)
    step(f"completions ({model}): {text.choices[0].text!r} == streamed")

    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        raise SystemExit("an unknown model was accepted")
    except openai.NotFoundError as e:
        step(f"unknown model -> {e.status_code}")

    client.files.delete(uploaded.id)
    step("ok")


if __name__ == "__main__":
    sys.exit(main())
