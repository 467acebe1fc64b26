// Routes+Models — `/v1/models`: the base model and every finished fine-tune of this server.

import Foundation
import Hummingbird

extension ServeRoutes {
    func addModelRoutes(to router: Router<ServeContext>) {
        router.get("/v1/models") { _, _ in
            try jsonResponse(ListPage(data: try state.host.list()))
        }
        router.get("/v1/models/:id") { _, context in
            let raw = try context.parameters.require("id")
            let id = raw.removingPercentEncoding ?? raw
            guard let m = try state.host.info(id) else {
                throw APIError(.notFound, "The model '\(id)' does not exist or you do not have access to it.", param: "model", code: "model_not_found")
            }
            return try jsonResponse(m)
        }
    }
}
