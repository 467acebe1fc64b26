// BackendCLITests — `tune train` and the backend seam: without a usable CUDA library, auto trains on the
// CPU after exactly one stderr line saying why; cpu says nothing; cuda fails with the reason (with a GPU
// it trains there: docs/cuda.md); a bad TUNE_BACKEND is one error line.
import Foundation
import Testing
import Engine

private func inputs() throws -> (model: String, data: String, out: String) {
    let dir = try makeTempDir()
    let model = dir.appendingPathComponent("tiny.gguf").path
    try TinyLlama.writeGGUF(to: model, config: .tiny, seed: 4, weightType: .q4_1)
    let rows = (0..<4).map { i in #"{"prompt": "item \#(i) is", "completion": " class \#(i % 3)"}"# }
    let data = dir.appendingPathComponent("train.jsonl").path
    try (rows.joined(separator: "\n") + "\n").write(toFile: data, atomically: true, encoding: .utf8)
    return (model, data, dir.appendingPathComponent("out").path)
}

private func train(_ i: (model: String, data: String, out: String), _ extra: [String] = []) -> [String] {
    ["train", "--model", i.model, "--data", i.data, "--out", i.out, "--steps", "1", "--batch", "1", "--seq-len", "128", "--threads", "1"] + extra
}

@Suite struct BackendCLITests {
    @Test func autoFallsBackWithExactlyOneLine() throws {
        let i = try inputs()
        let r = try tune(train(i), env: ["TUNE_CUDA_LIB": "/nonexistent/libtunecuda.so"])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("CUDA") }
        #expect(lines.count == 1, "\(r.stderr)")
        #expect(lines.first?.hasPrefix("tune: CUDA backend unavailable (cannot load /nonexistent/libtunecuda.so: ") == true, "\(r.stderr)")
        #expect(lines.first == "tune: CUDA backend unavailable (cannot load /nonexistent/libtunecuda.so: cannot open shared object file: No such file or directory); running on CPU")
    }

    @Test func cpuIsSilentAndCudaFailsWithTheReason() throws {
        let i = try inputs()
        let cpu = try tune(train(i, ["--backend", "cpu"]), env: ["TUNE_CUDA_LIB": "/nonexistent/libtunecuda.so"])
        #expect(cpu.status == 0, "\(cpu.stderr)")
        #expect(!cpu.stderr.contains("CUDA"), "\(cpu.stderr)")

        let cuda = try tune(train(i), env: ["TUNE_BACKEND": "cuda", "TUNE_CUDA_LIB": "/nonexistent/libtunecuda.so"])
        #expect(cuda.status != 0)
        #expect(cuda.stderr.hasPrefix("error: backend cuda requested but the CUDA backend is unavailable (cannot load /nonexistent/libtunecuda.so"), "\(cuda.stderr)")
        #expect(cuda.stderr.split(separator: "\n").count == 1)

        let bad = try tune(train(i), env: ["TUNE_BACKEND": "gpu"])
        #expect(bad.status != 0)
        #expect(bad.stderr == "error: TUNE_BACKEND: expected cpu, cuda or auto, got 'gpu'\n", "\(bad.stderr)")
    }

    /// On a machine without an NVIDIA driver, auto's CPU is the expected backend: nothing is said. With a
    /// driver (or a library named by TUNE_CUDA_LIB, above) the fall back is one line.
    @Test func autoIsSilentWithoutAnNVIDIADriver() throws {
        let i = try inputs()
        // TUNE_CUDA_LIB empty = unset: the default places are searched (cuda/build/ may hold a built library).
        let r = try tune(train(i), env: ["TUNE_BACKEND": "auto", "TUNE_CUDA_LIB": ""])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("CUDA") || $0.contains("libtunecuda") }
        if NVIDIADriver.isPresent() {
            #expect(lines.count <= 1, "\(r.stderr)")   // CUDA may even load here; a fall back is one line
        } else {
            #expect(lines.isEmpty, "no driver: auto must pick the CPU silently, got: \(r.stderr)")
        }
    }
}
