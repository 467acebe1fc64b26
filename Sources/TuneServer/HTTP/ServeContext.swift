// ServeContext — the per-request context: Hummingbird's core storage plus a box the middlewares fill
// (the caller's key id) so the outermost access-log middleware can read it after the route ran.

import Hummingbird

/// Filled in while a request passes the middlewares; a class so every copy of the context shares it.
final class RequestInfo: @unchecked Sendable {
    var keyID: String?
}

struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let info = RequestInfo()

    init(source: Source) {
        coreContext = .init(source: source)
    }
}
