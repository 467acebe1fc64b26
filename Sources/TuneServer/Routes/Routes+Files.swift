// Routes+Files — `/v1/files`: upload (multipart `file` + `purpose`), list, retrieve, content, delete.

import Foundation
import Hummingbird

extension ServeRoutes {
    func addFileRoutes(to router: Router<ServeContext>) {
        router.post("/v1/files") { request, context in
            let contentType = request.headers[.contentType] ?? ""
            guard let boundary = Multipart.boundary(contentType: contentType) else {
                throw APIError.invalid("Expected a multipart/form-data body with 'file' and 'purpose' fields.", code: "invalid_content_type")
            }
            var request = request
            let body = try await request.collectBody(upTo: state.config.maxUploadBytes)
            let parts = try Multipart.parse(Data(body.readableBytesView), boundary: boundary)
            guard let file = parts.first(where: { $0.name == "file" }) else {
                throw APIError.invalid("Missing required parameter: 'file'.", param: "file", code: "missing_required_parameter")
            }
            guard let purposePart = parts.first(where: { $0.name == "purpose" }) else {
                throw APIError.invalid("Missing required parameter: 'purpose'.", param: "purpose", code: "missing_required_parameter")
            }
            let purpose = String(decoding: purposePart.data, as: UTF8.self)
            guard purpose == "fine-tune" else {
                throw APIError.invalid("Invalid purpose '\(purpose)': tune serve stores files for purpose 'fine-tune' only.", param: "purpose")
            }
            let name = (file.filename ?? "upload.jsonl").split(separator: "/").last.map(String.init) ?? "upload.jsonl"
            return try jsonResponse(try state.store.addFile(filename: name, purpose: purpose, bytes: file.data))
        }
        router.get("/v1/files") { request, _ in
            let purpose = request.uri.queryParameters["purpose"].map(String.init)
            let files = try state.store.files(purpose: purpose)
            return try jsonResponse(ListPage(data: files, ids: files.map(\.id)))
        }
        router.get("/v1/files/:id") { _, context in
            try jsonResponse(try file(context))
        }
        router.get("/v1/files/:id/content") { _, context in
            let f = try file(context)
            guard let data = FileManager.default.contents(atPath: state.store.filePath(f.id)) else {
                throw APIError.server("The content of file \(f.id) cannot be read.")
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
        }
        router.delete("/v1/files/:id") { _, context in
            let id = try context.parameters.require("id")
            guard try state.store.deleteFile(id) else { throw APIError.notFound("No such File object: \(id)", param: "id") }
            return try jsonResponse(DeletedObject(id: id, object: "file"))
        }
    }

    private func file(_ context: ServeContext) throws -> FileObject {
        let id = try context.parameters.require("id")
        guard let f = try state.store.file(id) else { throw APIError.notFound("No such File object: \(id)", param: "id") }
        return f
    }
}
