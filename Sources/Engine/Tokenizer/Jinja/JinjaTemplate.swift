// JinjaTemplate — a parsed Jinja template rendered the way transformers' `apply_chat_template`
// renders a model's `chat_template`: jinja2's ImmutableSandboxedEnvironment with trim_blocks,
// lstrip_blocks, loopcontrols, `raise_exception`, `strftime_now` and a `tojson` that is
// `json.dumps(ensure_ascii=False)`. Written from Jinja's documented semantics; only the subset chat
// templates use is implemented, and anything else fails at parse time naming its line.
//
//     let t = try JinjaTemplate(source)
//     let text = try t.render(["messages": .list([.object(["role": .string("user"), "content": .string("hi")])]),
//                              "add_generation_prompt": .bool(true)])

import Foundation

public struct JinjaTemplate: Sendable {
    public let source: String
    let nodes: [JinjaNode]

    /// Parses `source`. Throws `EngineError(.unsupported, "chat template line N: …")` for a construct
    /// outside the supported subset and `.format` for a syntax error.
    public init(_ source: String) throws {
        self.source = source
        do {
            nodes = try JinjaParser.parse(source)
        } catch let e as LocatedFailure {
            throw Self.engineError(e)
        }
    }

    /// Renders with `context` as the template's variables. `now`/`timeZone` are what
    /// `strftime_now` sees (transformers uses the local clock). A `raise_exception(msg)` in the
    /// template throws `EngineError(.invalidArgument, "chat template line N: msg")`.
    public func render(_ context: [String: JinjaValue], now: Date = Date(), timeZone: TimeZone = .current) throws -> String {
        let interpreter = JinjaInterpreter(context: context, now: now, timeZone: timeZone)
        do {
            return try interpreter.render(nodes)
        } catch let e as LocatedFailure {
            throw Self.engineError(e)
        }
    }

    static func engineError(_ e: LocatedFailure) -> EngineError {
        switch e.failure {
        case .syntax(let m): EngineError(.format, "chat template line \(e.line): syntax error: \(m)")
        case .unsupported(let m): EngineError(.unsupported, "chat template line \(e.line): \(m)")
        case .raised(let m): EngineError(.invalidArgument, "chat template line \(e.line): \(m)")
        case .runtime(let m): EngineError(.invalidArgument, "chat template line \(e.line): \(m)")
        }
    }
}
