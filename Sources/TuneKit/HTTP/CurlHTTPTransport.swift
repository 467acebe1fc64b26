// CurlHTTPTransport — HTTPTransport over libcurl's easy interface (one handle per request; libcurl
// is initialized once per process). Redirects are not followed: an API that redirects is reported.

import CCurl
import Foundation

private let curlGlobalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

/// The real transport. Thread-safe: every call uses its own curl handle.
public struct CurlHTTPTransport: HTTPTransport {
    public init() { _ = curlGlobalInit }

    public func send(_ request: HTTPRequest, onData: ((Data) -> Bool)?) throws -> HTTPResponse {
        guard let handle = curl_easy_init() else {
            throw HTTPTransportError(kind: .other, message: "libcurl could not create a handle")
        }
        defer { curl_easy_cleanup(handle) }
        let sink = ResponseSink(onData: onData)
        let sinkPointer = Unmanaged.passRetained(sink)
        defer { sinkPointer.release() }

        tune_curl_set_str(handle, CURLOPT_URL, request.url)
        tune_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        tune_curl_set_long(handle, CURLOPT_TIMEOUT_MS, Int(max(request.timeout, 0.001) * 1000))
        tune_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Int(max(request.connectTimeout, 0.001) * 1000))
        tune_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        tune_curl_set_str(handle, CURLOPT_USERAGENT, "tune/\(TuneKitInfo.version)")
        tune_curl_set_str(handle, CURLOPT_ACCEPT_ENCODING, "")  // any encoding libcurl can decode

        var headerList: UnsafeMutablePointer<curl_slist>? = nil
        for (name, value) in request.headers { headerList = curl_slist_append(headerList, "\(name): \(value)") }
        // libcurl adds "Expect: 100-continue" to large uploads; servers here answer at once.
        headerList = curl_slist_append(headerList, "Expect:")
        defer { curl_slist_free_all(headerList) }
        tune_curl_set_slist(handle, CURLOPT_HTTPHEADER, headerList)

        var mime: OpaquePointer? = nil
        defer { if let mime { curl_mime_free(mime) } }
        var bodyCopy = Data()
        switch request.body {
        case .none:
            if request.method != "GET" { tune_curl_set_str(handle, CURLOPT_CUSTOMREQUEST, request.method) }
        case .bytes(let data):
            bodyCopy = data
            tune_curl_set_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(data.count))
            tune_curl_set_str(handle, CURLOPT_CUSTOMREQUEST, request.method)
        case .multipart(let fields):
            mime = curl_mime_init(handle)
            for field in fields {
                let part = curl_mime_addpart(mime)
                curl_mime_name(part, field.name)
                field.value.withUnsafeBytes { raw in
                    _ = curl_mime_data(part, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count)
                }
                if let filename = field.filename { curl_mime_filename(part, filename) }
                if let type = field.contentType { curl_mime_type(part, type) }
            }
            tune_curl_set_mime(handle, mime)
            if request.method != "POST" { tune_curl_set_str(handle, CURLOPT_CUSTOMREQUEST, request.method) }
        }

        let code: CURLcode = bodyCopy.withUnsafeBytes { raw in
            if case .bytes = request.body {
                // POSTFIELDS is not copied by libcurl: the buffer lives until perform returns.
                tune_curl_set_ptr(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            tune_curl_set_data_cb(handle, CURLOPT_WRITEFUNCTION, curlWrite)
            tune_curl_set_ptr(handle, CURLOPT_WRITEDATA, sinkPointer.toOpaque())
            tune_curl_set_data_cb(handle, CURLOPT_HEADERFUNCTION, curlHeader)
            tune_curl_set_ptr(handle, CURLOPT_HEADERDATA, sinkPointer.toOpaque())
            return curl_easy_perform(handle)
        }
        if code != CURLE_OK && !(code == CURLE_WRITE_ERROR && sink.stoppedByCaller) {
            throw Self.error(code, url: request.url)
        }
        var status = 0
        tune_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: sink.headers, body: sink.body)
    }

    private static func error(_ code: CURLcode, url: String) -> HTTPTransportError {
        let text = String(cString: curl_easy_strerror(code))
        let kind: HTTPTransportError.Kind
        switch code {
        case CURLE_OPERATION_TIMEDOUT: kind = .timeout
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .connect
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE: kind = .dropped
        default: kind = .other
        }
        return HTTPTransportError(kind: kind, message: "\(redactedURL(url)): \(text) (curl error \(code.rawValue))")
    }
}

/// Collects one response; lives for one `curl_easy_perform`.
private final class ResponseSink {
    let onData: ((Data) -> Bool)?
    var body = Data()
    var headers: [String: String] = [:]
    var stoppedByCaller = false

    init(onData: ((Data) -> Bool)?) { self.onData = onData }
}

private func curlWrite(_ pointer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let pointer, let context else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
    let bytes = size * count
    let chunk = Data(bytes: pointer, count: bytes)
    if let onData = sink.onData {
        if !onData(chunk) {
            sink.stoppedByCaller = true
            return 0  // makes libcurl stop with CURLE_WRITE_ERROR
        }
    } else {
        sink.body.append(chunk)
    }
    return bytes
}

private func curlHeader(_ pointer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let pointer, let context else { return 0 }
    let sink = Unmanaged<ResponseSink>.fromOpaque(context).takeUnretainedValue()
    let bytes = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: pointer, count: bytes), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        sink.headers = [:]  // a new response (after 100 Continue): start over
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        sink.headers[name] = value
    }
    return bytes
}
