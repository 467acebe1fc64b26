// EngineError — the one error type Engine throws. Messages say where, what was found, what was expected.

/// An error from Engine. `message` is one line a user can act on; `file` names the input involved.
public struct EngineError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable { case io, format, unsupported, invalidArgument, `internal` }
    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func format(_ file: String, _ what: String) -> EngineError { .init(.format, "\(file): \(what)") }
    static func unsupported(_ what: String) -> EngineError { .init(.unsupported, what) }
}
