// StopSignal — Ctrl-C handling for long commands (train, run).
import Foundation

/// SIGINT/SIGTERM → a flag the trainer polls after each step; a second signal exits at once.
enum StopSignal {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    static var requested: Bool { flag != 0 }

    static func install() {
        let handler: @convention(c) (Int32) -> Void = { sig in
            if StopSignal.flag != 0 { _exit(128 + sig) }
            StopSignal.flag = 1
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }
}
