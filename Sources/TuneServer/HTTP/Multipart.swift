// Multipart — a small multipart/form-data reader (RFC 7578) for `POST /v1/files`: splits the body at
// the boundary and reads each part's Content-Disposition name/filename and Content-Type.

import Foundation

struct MultipartPart {
    var name: String
    var filename: String?
    var contentType: String?
    var data: Data
}

enum Multipart {
    /// The boundary parameter of a `multipart/form-data` Content-Type, or nil.
    static func boundary(contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() where p.lowercased().hasPrefix("boundary=") {
            var b = String(p.dropFirst("boundary=".count))
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            return b.isEmpty ? nil : b
        }
        return nil
    }

    /// The parts of `body`; throws a 400 naming what is malformed.
    static func parse(_ body: Data, boundary: String) throws -> [MultipartPart] {
        let delimiter = Data("--\(boundary)".utf8)
        let crlf = Data("\r\n".utf8), headerEnd = Data("\r\n\r\n".utf8)
        guard var cursor = body.range(of: delimiter)?.upperBound else {
            throw APIError.invalid("The multipart body has no part delimited by its boundary.")
        }
        var parts: [MultipartPart] = []
        while true {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            if body[cursor...].starts(with: Data("--".utf8)) { break }
            guard body[cursor...].starts(with: crlf) else { throw APIError.invalid("Malformed multipart body: expected CRLF after the boundary.") }
            cursor += 2
            guard let hEnd = body.range(of: headerEnd, in: cursor..<body.endIndex) else {
                throw APIError.invalid("Malformed multipart body: a part's headers do not end.")
            }
            let headers = String(decoding: body[cursor..<hEnd.lowerBound], as: UTF8.self)
            guard let next = body.range(of: crlf + delimiter, in: hEnd.upperBound..<body.endIndex) else {
                throw APIError.invalid("Malformed multipart body: a part is not closed by the boundary.")
            }
            var part = MultipartPart(name: "", data: Data(body[hEnd.upperBound..<next.lowerBound]))
            for line in headers.components(separatedBy: "\r\n") {
                let lower = line.lowercased()
                if lower.hasPrefix("content-disposition:") {
                    part.name = param("name", in: line) ?? ""
                    part.filename = param("filename", in: line)
                } else if lower.hasPrefix("content-type:") {
                    part.contentType = line.dropFirst("content-type:".count).trimmingCharacters(in: .whitespaces)
                }
            }
            parts.append(part)
            cursor = next.upperBound
        }
        return parts
    }

    /// `name="value"` (or unquoted) in a header line.
    private static func param(_ name: String, in line: String) -> String? {
        for piece in line.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard piece.lowercased().hasPrefix(name + "=") else { continue }
            var v = String(piece.dropFirst(name.count + 1))
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v.replacingOccurrences(of: "\\\"", with: "\"")
        }
        return nil
    }
}
