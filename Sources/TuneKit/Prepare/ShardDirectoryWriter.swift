// ShardDirectoryWriter — writes a prepared dataset's files into a staging folder inside the output
// directory, then swaps them in, so a crash never leaves a manifest pointing at half-written shards.

import Foundation

/// Stages files, then replaces the output directory's previous shards and manifest in one step.
struct ShardDirectoryWriter {
    let outputDir: String
    let staging: String
    private let fm = FileManager.default

    init(outputDir: String) throws {
        self.outputDir = outputDir
        staging = (outputDir as NSString).appendingPathComponent(".prepare-staging")
        do {
            try fm.createDirectory(atPath: outputDir, withIntermediateDirectories: true)
            if fm.fileExists(atPath: staging) { try fm.removeItem(atPath: staging) }
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        } catch {
            throw TuneError(.fileAccess, "\(outputDir): cannot create output directory (\(error.localizedDescription))")
        }
    }

    func write(_ bytes: [UInt8], name: String) throws {
        let path = (staging as NSString).appendingPathComponent(name)
        guard fm.createFile(atPath: path, contents: Data(bytes)) else { throw TuneError(.fileAccess, "\(path): cannot write") }
    }

    /// Removes the old manifest first (so a crash mid-swap leaves no stale manifest), then old
    /// shards, then moves the staged files in, manifest last.
    func commit() throws {
        do {
            let old = (outputDir as NSString).appendingPathComponent(PrepareStage.manifestFile)
            if fm.fileExists(atPath: old) { try fm.removeItem(atPath: old) }
            for f in try fm.contentsOfDirectory(atPath: outputDir) where f.hasSuffix("." + DatasetShard.fileExtension) {
                try fm.removeItem(atPath: (outputDir as NSString).appendingPathComponent(f))
            }
            let staged = try fm.contentsOfDirectory(atPath: staging).sorted { a, _ in a != PrepareStage.manifestFile }
            for f in staged {
                try fm.moveItem(atPath: (staging as NSString).appendingPathComponent(f), toPath: (outputDir as NSString).appendingPathComponent(f))
            }
            try fm.removeItem(atPath: staging)
        } catch {
            throw TuneError(.fileAccess, "\(outputDir): cannot move prepared files into place (\(error.localizedDescription))")
        }
    }
}
