// Kernels — Swift face of the CPU kernel module's process-wide settings (ISA dispatch, threads).

import CKernels

/// Process-wide kernel settings.
public enum Kernels {
    /// Instruction-set paths of the CPU kernels, best last.
    public enum ISA: String, CaseIterable, Sendable, Codable {
        case ref, avx2, avx512
        var raw: Int32 {
            switch self { case .ref: 0; case .avx2: 1; case .avx512: 2 }
        }
        init(raw: Int32) { self = raw >= 2 ? .avx512 : raw == 1 ? .avx2 : .ref }
    }

    /// The best path this CPU supports.
    public static var detected: ISA { ISA(raw: ck_isa_detected()) }
    /// The path dispatching kernels use now (`TUNE_KERNELS` or `set(isa:)` may force one).
    public static var active: ISA { ISA(raw: ck_isa_active()) }

    /// Forces a path; throws if this CPU cannot run it.
    public static func set(isa: ISA) throws {
        guard ck_set_isa(isa.raw) == 0 else {
            throw EngineError(.unsupported, "this CPU does not support the \(isa.rawValue) kernels (best: \(detected.rawValue))")
        }
    }

    public static var threads: Int { Int(ck_get_threads()) }
    public static func setThreads(_ n: Int) { ck_set_threads(Int32(max(1, n))) }
}
