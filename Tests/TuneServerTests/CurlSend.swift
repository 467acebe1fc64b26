// CurlSend — one HTTP exchange through TuneKit's libcurl transport, kept in its own file because
// TuneKit's HTTPRequest/HTTPResponse share their names with Hummingbird's.
import Engine
import Foundation
import TuneKit

func curlSend(method: String, url: String, headers: [(String, String)], body: Data?) throws
    -> (status: Int, headers: [String: String], body: Data) {
    let request = TuneKit.HTTPRequest(method: method, url: url, headers: headers,
                                      body: body.map { .bytes($0) } ?? .none, timeout: 300, connectTimeout: 10)
    let r = try CurlHTTPTransport().send(request)
    return (r.status, r.headers, r.body)
}
