// Output — the CLI's only ways to print: text to stdout, JSON to stdout, errors to stderr with exit codes.
import ArgumentParser
import Engine
import Foundation
import TuneKit

enum Output {
    /// Writes `value` as one line of JSON (sorted keys) to stdout.
    static func json<T: Encodable>(_ value: T) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try enc.encode(value)
        FileHandle.standardOutput.write(data)
        FileHandle.standardOutput.write(Data("\n".utf8))
    }

    /// A pipeline's validation warnings on stderr, one `warning: FILE:LINE:COL: FIELD: MESSAGE` each
    /// (with `json`: one `{"event":"warning","message":…}` line each, so NDJSON on stderr stays NDJSON).
    static func warnings(_ ws: [Diagnostic], json: Bool = false) {
        for w in ws {
            let line = json ? ((try? JSONValue.object(["event": .string("warning"), "message": .string(w.description)]).canonicalJSON()) ?? "")
                            : "warning: \(w)"
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    static func text(_ s: String, terminator: String = "\n") {
        FileHandle.standardOutput.write(Data((s + terminator).utf8))
    }

    static func error(_ s: String) {
        FileHandle.standardError.write(Data("error: \(s)\n".utf8))
    }
}

/// Runs a command body, turning library errors into one `error:` line on stderr and an exit code:
/// 65 (EX_DATAERR) for bad input files or arguments (and registry conflicts or failed verification),
/// 66 (EX_NOINPUT) for missing files or artifacts, 74 (EX_IOERR) for registry I/O, 69 (EX_UNAVAILABLE)
/// when a managed provider refused or could not be reached, 1 otherwise.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try requireValidUTF8Arguments()
        try body()
    } catch let e as EngineError {
        Output.error(e.message)
        throw exitCode(for: e)
    } catch let e as ConfigError {
        FileHandle.standardError.write(Data((e.description + "\n").utf8))
        throw ExitCode(65)
    } catch let e as TuneError {
        Output.error(e.message)
        switch e.kind {
        case .notFound, .fileAccess: throw ExitCode(66)
        case .invalidArgument, .badData, .conflict, .integrity: throw ExitCode(65)
        case .io, .database: throw ExitCode(74)
        case .interrupted: throw ExitCode(130)
        case .gateFailed, .stageFailed: throw ExitCode(1)
        case .internal: throw ExitCode(70)
        case .remote: throw ExitCode(69)
        }
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        Output.error("\(error)")
        throw ExitCode(1)
    }
}

/// 66 for missing/unreadable files, 65 for bad input or arguments, 70 for internal errors.
func exitCode(for e: EngineError) -> ExitCode {
    switch e.kind {
    case .io: ExitCode(66)
    case .format, .invalidArgument, .unsupported: ExitCode(65)
    case .internal: ExitCode(70)
    }
}

/// Swift repairs invalid UTF-8 in arguments silently (U+FFFD); tune refuses such input instead,
/// since tokenizing a repaired string would score text the user never wrote.
func requireValidUTF8Arguments() throws {
    for i in 1..<Int(CommandLine.argc) {
        guard let raw = CommandLine.unsafeArgv[i] else { continue }
        if String(validatingCString: raw) == nil {
            let shown = String(decoding: UnsafeRawBufferPointer(start: raw, count: strlen(raw)), as: UTF8.self)
            throw EngineError(.invalidArgument, "argument \(i) (\"\(shown)\") is not valid UTF-8")
        }
    }
}
