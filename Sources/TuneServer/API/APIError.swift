// APIError — errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the
// status code OpenAI uses for each case. Every error a route throws reaches the client as one of these.

import Foundation
import Hummingbird

/// HTTPTypes' status, named here once: TuneKit has its own `HTTPResponse` (the curl client's).
typealias Status = HTTPResponse.Status

/// An error returned to the client in OpenAI's JSON shape.
struct APIError: Error, HTTPResponseError, Sendable {
    var status: Status
    var message: String
    var type: String
    var param: String?
    var code: String?
    var headers: HTTPFields = [:]

    init(_ status: Status, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }
    static func notFound(_ message: String, param: String? = nil) -> APIError {
        APIError(.notFound, message, param: param, code: "not_found")
    }
    /// The one body every unauthenticated request gets: it says nothing about which keys exist.
    static let unauthorized = APIError(.unauthorized, "Invalid or missing API key. Pass it as 'Authorization: Bearer <key>'.",
                                       code: "invalid_api_key")
    static func server(_ message: String) -> APIError { APIError(.internalServerError, message, type: "server_error") }

    var body: [String: Any] {
        let error: [String: Any] = ["message": message, "type": type, "param": param.map { $0 as Any } ?? NSNull(),
                                    "code": code.map { $0 as Any } ?? NSNull()]
        return ["error": error]
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var h = headers
        h[.contentType] = "application/json"
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: h, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

// MARK: - JSON responses

/// A 200 (or `status`) response whose body is `value` encoded as JSON with the API's snake_case keys.
func jsonResponse<T: Encodable>(_ value: T, status: Status = .ok) throws -> Response {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = try enc.encode(value)
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// Decodes a JSON request body into `T`, turning a decoding failure into a 400 that names the field.
func decodeBody<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
    let data = Data(buffer.readableBytesView)
    do { return try JSONDecoder().decode(T.self, from: data) } catch let DecodingError.keyNotFound(key, ctx) {
        throw APIError.invalid("Missing required parameter: '\(path(ctx.codingPath + [key]))'.", param: path(ctx.codingPath + [key]),
                               code: "missing_required_parameter")
    } catch let DecodingError.typeMismatch(t, ctx) {
        throw APIError.invalid("Invalid type for '\(path(ctx.codingPath))': expected \(t).", param: path(ctx.codingPath), code: "invalid_type")
    } catch let DecodingError.valueNotFound(t, ctx) {
        throw APIError.invalid("Invalid value for '\(path(ctx.codingPath))': expected \(t), got null.", param: path(ctx.codingPath),
                               code: "invalid_type")
    } catch let DecodingError.dataCorrupted(ctx) {
        let p = path(ctx.codingPath)
        throw APIError.invalid(p.isEmpty ? "The request body is not valid JSON." : "Invalid value for '\(p)': \(ctx.debugDescription)",
                               param: p.isEmpty ? nil : p)
    } catch {
        throw APIError.invalid("The request body could not be decoded: \(error)")
    }
}

private func path(_ keys: [any CodingKey]) -> String {
    let joined: String = keys.map { (k: any CodingKey) -> String in
        if let i = k.intValue { return "[\(i)]" }
        return "." + k.stringValue
    }.joined()
    return joined.hasPrefix(".") ? String(joined.dropFirst()) : joined
}
