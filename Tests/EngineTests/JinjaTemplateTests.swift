// JinjaTemplateTests — the Jinja interpreter against python jinja2 as transformers configures it
// (fixture renders of real models' chat templates), plus lexer/parser/evaluator unit cases and the
// ChatTemplate integration (built-in forms kept where they match, the model's own template otherwise).

@testable import Engine
import Foundation
import Testing

struct ChatTemplateFixture {
    struct Case {
        let template: String
        let label: String
        let context: [String: JinjaValue]
        let messages: JinjaValue
        let addGenerationPrompt: Bool
        let extra: JinjaDict
        let expected: String?
        let error: String?
    }
    let sources: [String: (source: String, bos: String, eos: String)]
    let cases: [Case]
    let now: Date

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/chat-templates")

    static func load() throws -> ChatTemplateFixture {
        let text = try String(contentsOf: directory.appendingPathComponent("cases.json"), encoding: .utf8)
        guard case .dict(let doc) = try JinjaValue.parseJSON(text), case .dict(let templates)? = doc["templates"],
              case .list(let cases)? = doc["cases"], case .string(let nowText)? = doc["now"] else {
            throw EngineError(.format, "cases.json: unexpected layout")
        }
        var sources: [String: (String, String, String)] = [:]
        for (k, v) in zip(templates.keys, templates.values) {
            guard case .dict(let t) = v, case .string(let file)? = t["file"], case .string(let bos)? = t["bos_token"],
                  case .string(let eos)? = t["eos_token"] else { throw EngineError(.format, "cases.json: bad template entry") }
            let source = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            sources[k.pyStr] = (source, bos, eos)
        }
        var out: [Case] = []
        for c in cases {
            guard case .dict(let d) = c, case .string(let name)? = d["template"], case .string(let label)? = d["label"],
                  let messages = d["messages"], case .bool(let agp)? = d["add_generation_prompt"],
                  case .dict(let extra)? = d["extra"], let t = sources[name] else { throw EngineError(.format, "cases.json: bad case") }
            var context: [String: JinjaValue] = ["messages": messages, "add_generation_prompt": .bool(agp),
                                                 "bos_token": .string(t.1), "eos_token": .string(t.2)]
            for (k, v) in zip(extra.keys, extra.values) { context[k.pyStr] = v }
            let expected: String? = { if case .string(let s)? = d["expected"] { s } else { nil } }()
            let error: String? = { if case .string(let s)? = d["error"] { s } else { nil } }()
            out.append(Case(template: name, label: label, context: context, messages: messages, addGenerationPrompt: agp,
                            extra: extra, expected: expected, error: error))
        }
        let now = ISO8601DateFormatter().date(from: nowText)!
        return ChatTemplateFixture(sources: sources, cases: out, now: now)
    }
}

@Suite struct JinjaTemplateTests {
    let fixture = try! ChatTemplateFixture.load()
    static let utc = TimeZone(identifier: "UTC")!

    static func render(_ source: String, _ context: [String: JinjaValue] = [:]) throws -> String {
        try JinjaTemplate(source).render(context, now: Date(timeIntervalSince1970: 0), timeZone: utc)
    }

    // MARK: - Fixture parity

    @Test func everyFixtureCaseRendersLikePythonJinja2() throws {
        let f = fixture
        #expect(f.sources.count >= 8)
        var counts: [String: Int] = [:]
        for c in f.cases {
            let template = try JinjaTemplate(f.sources[c.template]!.source)
            do {
                let got = try template.render(c.context, now: f.now, timeZone: Self.utc)
                if let expected = c.expected {
                    #expect(got == expected, "\(c.template)/\(c.label):\n\(got.debugDescription)\n!=\n\(expected.debugDescription)")
                    if got == expected { counts[c.template, default: 0] += 1 }
                } else {
                    Issue.record("\(c.template)/\(c.label): python raised \(c.error ?? "an error"), Swift rendered \(got.debugDescription)")
                }
            } catch let e as EngineError {
                if c.expected != nil {
                    Issue.record("\(c.template)/\(c.label): \(e.message)")
                } else {
                    if let message = c.error {
                        #expect(e.kind == .invalidArgument && e.message.hasSuffix(": " + message), "\(c.template)/\(c.label): \(e.message)")
                    }
                    counts[c.template, default: 0] += 1
                }
            }
        }
        for (name, _) in f.sources {
            let total = f.cases.filter { $0.template == name }.count
            #expect(total >= 10, "\(name): only \(total) cases")
            #expect(counts[name, default: 0] == total, "\(name): \(counts[name, default: 0])/\(total) cases match")
        }
    }

    /// Plain role/content conversations through `ChatTemplate` (the path prepare, generate and serve use).
    @Test func chatTemplateRendersFixtureConversations() throws {
        let f = fixture
        var checked = 0
        for c in f.cases where c.extra.count == 0 {
            guard case .list(let raw) = c.messages else { continue }
            var messages: [ChatMessage] = []
            for m in raw {
                guard case .dict(let d) = m, d.count == 2, case .string(let role)? = d["role"], case .string(let content)? = d["content"] else { break }
                messages.append(ChatMessage(role: role, content: content))
            }
            guard messages.count == raw.count else { continue }
            let t = f.sources[c.template]!
            let template = try ChatTemplate(jinja: t.source, bosToken: t.bos, eosToken: t.eos)
            if let expected = c.expected {
                let got = try template.render(messages, addGenerationPrompt: c.addGenerationPrompt, extra: [:], now: f.now, timeZone: Self.utc)
                #expect(got == expected, "\(c.template)/\(c.label)")
            } else {
                #expect(throws: EngineError.self) { try template.render(messages, addGenerationPrompt: c.addGenerationPrompt) }
            }
            checked += 1
        }
        #expect(checked >= 80)
    }

    @Test func forModelKeepsBuiltinFormsAndFallsBackToJinja() throws {
        let f = fixture
        let smol = f.sources["smollm2"]!
        let s = try ChatTemplate.forModel(template: smol.source, bosToken: smol.bos, eosToken: smol.eos)
        #expect(s.kind == .chatml && s.defaultSystemPrompt == ChatTemplate.smolLMSystemPrompt)

        let qwen = f.sources["qwen2.5"]!
        let q = try ChatTemplate.forModel(template: qwen.source, bosToken: qwen.bos, eosToken: qwen.eos)
        #expect(q.kind == .jinja)  // ChatML-looking, but with its own default system prompt
        #expect(q.stopStrings.first == "<|im_end|>" && !q.rendersBOS)
        #expect(try q.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true)
            == "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")

        let llama = f.sources["llama3.1"]!
        let l = try ChatTemplate.forModel(template: llama.source, bosToken: llama.bos, eosToken: llama.eos)
        #expect(l.kind == .jinja && l.rendersBOS && l.stopStrings.first == "<|eot_id|>")

        let gemma = f.sources["gemma2"]!
        let g = try ChatTemplate.forModel(template: gemma.source, bosToken: gemma.bos, eosToken: gemma.eos)
        #expect(g.kind == .jinja && g.rendersBOS && g.stopStrings == ["<end_of_turn>", "<eos>"])
        do {
            _ = try g.render([ChatMessage(role: "system", content: "x"), ChatMessage(role: "user", content: "y")], addGenerationPrompt: true)
            Issue.record("gemma accepted a system message")
        } catch let e as EngineError {
            #expect(e.message == "chat template line 1: System role not supported")
        }
        // Templates the interpreter cannot parse and that are not built-in forms still fail.
        #expect(throws: EngineError.self) { try ChatTemplate.forModel(template: "{% include 'x' %}", bosToken: "", eosToken: "") }
        #expect(throws: EngineError.self) { try ChatTemplate.forModel(template: nil, bosToken: "", eosToken: "") }
    }

    /// The tokenizer fixture's renders came from transformers' own `apply_chat_template`: the
    /// interpreter matches them too, and `forModel` keeps the native renderer for those templates.
    @Test func matchesTransformersApplyChatTemplateRenders() throws {
        let tf = try TokenizerFixture.load()
        let smol = try ChatTemplate(jinja: tf.chat_template, bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        for chat in tf.chats {
            #expect(try smol.render(chat.messages, addGenerationPrompt: chat.add_generation_prompt) == chat.text)
        }
        for t in tf.templates {
            let bos = t.name == "llama3" ? "<|begin_of_text|>" : ""
            let jinja = try ChatTemplate(jinja: t.template, bosToken: bos, eosToken: "")
            for r in t.renders {
                #expect(try jinja.render(r.messages, addGenerationPrompt: r.add_generation_prompt) == r.text, "\(t.name)")
            }
            #expect(try ChatTemplate.forModel(template: t.template, bosToken: bos, eosToken: "").kind.rawValue == t.name)
        }
    }

    // MARK: - Lexer

    @Test func whitespaceControlMatchesJinja() throws {
        // trim_blocks drops the newline after a block tag; lstrip_blocks drops indentation before it.
        #expect(try Self.render("a\n  {% if true %}\n    b\n  {% endif %}\nc") == "a\n    b\nc")
        // "-" strips all whitespace on that side, including newlines; outputs are not lstripped.
        #expect(try Self.render("a  \n {{- 'b' -}} \n c") == "abc")
        #expect(try Self.render("  {{ 'x' }}\n") == "  x")  // one trailing newline dropped (keep_trailing_newline=False)
        #expect(try Self.render("x\n\n") == "x\n")
        // "+" keeps the indentation lstrip_blocks would remove; comments are trimmed like blocks.
        #expect(try Self.render("  {%+ if true %}y{% endif %}") == "  y")
        #expect(try Self.render("a\n  {# note #}\nb") == "a\nb")
        #expect(try Self.render("{{ 'p' }}\n{% set x = 1 %}  \nq") == "p\n  \nq")
        // A tag ending its line right after an output keeps text before it (not at line start).
        #expect(try Self.render("{{ 'p' }}  {% if true %}z{% endif %}") == "p  z")
    }

    @Test func stringLiteralsUsePythonEscapes() throws {
        #expect(try Self.render(#"{{ 'a\nb\t\'c\' \x41\u00e9 \d' }}"#) == "a\nb\t'c' Aé \\d")
        #expect(try Self.render(#"{{ "x" 'y' }}"#) == "xy")
        #expect(try Self.render("{{ '{{ not a tag }}' }}") == "{{ not a tag }}")
        #expect(try Self.render("{{ {'a': {'b': 1}}['a']['b'] }}") == "1")
    }

    // MARK: - Evaluator

    @Test func expressionsFollowPython() throws {
        #expect(try Self.render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }}") == "3 -4 3.5 2 1024 7")
        #expect(try Self.render("{{ 'a' ~ 1 ~ none }} {{ [1, 2] + [3] }} {{ 'ab' * 2 }}") == "a1None [1, 2, 3] abab")
        #expect(try Self.render("{{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ not 0 }}") == "True True True True")
        #expect(try Self.render("{{ 'y' if x is defined else 'n' }}{{ x or 'd' }}{{ 0 and 1 }}") == "nd0")
        #expect(try Self.render("{{ m[1:] }} {{ m[-1] }} {{ m[::-1] }} {{ 'hello'[1:3] }}", ["m": .list([.int(1), .int(2), .int(3)])])
            == "[2, 3] 3 [3, 2, 1] el")
        #expect(try Self.render("{{ {'k': 'v', 'n': none, 't': true, 'f': 1.5} }}") == "{'k': 'v', 'n': None, 't': True, 'f': 1.5}")
        #expect(try Self.render("{{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e-5 }} {{ 3.0 }}") == "1e+20 0.30000000000000004 1e-05 3.0")
    }

    @Test func methodsFiltersAndTests() throws {
        #expect(try Self.render("{{ ' x\n'.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}")
            == "x|ay|['a', 'b', '', 'c']|['a', 'b']")
        #expect(try Self.render("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'hello world'.title() }}{{ 'aBC'.capitalize() }}")
            == "TrueTrueHello WorldAbc")
        #expect(try Self.render("{{ d.get('a') }}{{ d.get('z', 'dflt') }}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys() | list }}",
                                ["d": .object(["a": .int(1), "b": .int(2)])]) == "1dflta=1;b=2;['a', 'b']")
        #expect(try Self.render("{{ '  t  ' | trim }}|{{ [1, 2] | length }}|{{ 'ab' | upper }}|{{ [1, 2] | join('-') }}|{{ x | default('d') }}|{{ [3, 4] | first }}{{ [3, 4] | last }}")
            == "t|2|AB|1-2|d|34")
        #expect(try Self.render("{{ 'a-b' | replace('-', '+') }}|{{ '42' | int + 1 }}|{{ 5 | string ~ '!' }}|{{ 'ab' | list }}|{{ 'x\ny' | indent(2) }}|{{ 'x\ny' | indent(2, true) }}")
            == "a+b|43|5!|['a', 'b']|x\n  y|  x\n  y")
        let people: JinjaValue = .list([.object(["n": .string("a"), "r": .string("user")]), .object(["n": .string("b"), "r": .string("bot")])])
        #expect(try Self.render("{{ p | selectattr('r', 'equalto', 'user') | map(attribute='n') | list }}{{ p | rejectattr('r', 'eq', 'user') | map(attribute='n') | join }}", ["p": people])
            == "['a']b")
        #expect(try Self.render("{{ {'b': 'é', 'a': [1, none, true]} | tojson }}|{{ {'a': {}} | tojson(indent=2) }}|{{ 'x' | tojson(ensure_ascii=true) }}")
            == "{\"b\": \"é\", \"a\": [1, null, true]}|{\n  \"a\": {}\n}|\"x\"")
        #expect(try Self.render("{{ x is none }}{{ 's' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 's' is sequence }}{{ 1 is number }}{{ true is boolean }}{{ false is false }}{{ 3 is odd }}{{ 1 is not string }}",
                                ["x": .none]) == "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrue")
    }

    @Test func loopsScopesNamespacesAndMacros() throws {
        #expect(try Self.render("{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ x }}{{ '|' if loop.last }}{% endfor %}") == "10a21b32c|")
        #expect(try Self.render("{% for x in [1, 2, 3, 4] if x is even %}{{ x }}/{{ loop.length }} {% else %}none{% endfor %}") == "2/2 4/2 ")
        #expect(try Self.render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}") == "empty")
        #expect(try Self.render("{% for x in range(5) %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}") == "02")
        // `set` inside a loop does not leak out; a namespace does.
        #expect(try Self.render("{% set c = 0 %}{% set ns = namespace(c=0) %}{% for x in [1, 2] %}{% set c = c + x %}{% set ns.c = ns.c + x %}{% endfor %}{{ c }} {{ ns.c }}") == "0 3")
        #expect(try Self.render("{% macro tag(name, body='-') %}<{{ name }}>{{ body }}{% endmacro %}{{ tag('a') }}{{ tag('b', body='x') }}") == "<a>-<b>x")
        #expect(try Self.render("{% set block %}in{{ 1 + 1 }}{% endset %}[{{ block }}]") == "[in2]")
        #expect(try Self.render("{{ strftime_now('%d %b %Y %H:%M') }}") == "01 Jan 1970 00:00")
        #expect(try Self.render("{% filter upper %}a{{ 'b' }}{% endfilter %}|{{ '<{}|{}|{n}>{{x}}'.format(1, 2, n='k') }}") == "AB|<1|2|k>{x}")
        #expect(try Self.render("{{ x | selectattr('a') | list }}{{ x | map('upper') | list }}", ["x": .none]) == "[][]")
    }

    // MARK: - Errors

    @Test func unsupportedConstructsNameTheirLine() throws {
        for (source, line, what) in [("a\n{% include 'x.j2' %}", 2, "include"), ("{{ x }}\n\n{{ x | wordwrap }}", 3, "wordwrap"),
                                     ("\n{{ x is divisible }}", 2, "divisible"), ("{% raw %}{{ x }}{% endraw %}", 1, "raw")] {
            do {
                _ = try JinjaTemplate(source)
                Issue.record("accepted \(source.debugDescription)")
            } catch let e as EngineError {
                #expect(e.kind == .unsupported && e.message.hasPrefix("chat template line \(line): ") && e.message.contains(what), "\(e.message)")
            } catch { Issue.record("unexpected \(error)") }
        }
        // Inside an `if`, Jinja reports an unknown filter only when it runs (so does the interpreter).
        #expect(try Self.render("{% if false %}{{ x | from_json }}{% endif %}ok") == "ok")
        #expect(try Self.render("{{ 1 if true else x | from_json }}{% set a = x | nope if false else 2 %}{{ a }}") == "12")
        #expect(throws: EngineError.self) { try JinjaTemplate("{{ (x | nope if y else 1) ~ z | nope2 }}") }
        #expect(throws: EngineError.self) { try JinjaTemplate("{% for a in b if a | nope %}{% endfor %}") }
        do {
            _ = try Self.render("{% if true %}\n{{ 'x' | from_json }}{% endif %}")
            Issue.record("no error")
        } catch let e as EngineError {
            #expect(e.kind == .unsupported && e.message == "chat template line 2: filter 'from_json' is not supported")
        } catch { Issue.record("unexpected \(error)") }
        for (source, line) in [("{% if x %}", 1), ("ok\n{{ (1 }}", 2), ("{% for %}", 1), ("{% endfor %}", 1)] {
            #expect(throws: EngineError.self, "line \(line)") { try JinjaTemplate(source) }
        }
    }

    @Test func runtimeErrorsNameTheirLine() throws {
        do {
            _ = try Self.render("a\n{{ raise_exception('bad order') }}")
            Issue.record("no error")
        } catch let e as EngineError {
            #expect(e.kind == .invalidArgument && e.message == "chat template line 2: bad order")
        }
        #expect(throws: EngineError.self) { try Self.render("{{ x.y }}") }        // attribute of undefined
        #expect(throws: EngineError.self) { try Self.render("{{ 1 + 'a' }}") }    // TypeError
        #expect(throws: EngineError.self) { try Self.render("{{ [].append(1) }}") }  // the sandbox forbids mutation
        #expect(try Self.render("{{ x }}{{ x | length }}{% for i in x %}{% endfor %}") == "0")  // lenient Undefined
    }
}
