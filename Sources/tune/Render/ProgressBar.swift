// ProgressBar — one live status line on stderr: redrawn in place on a terminal, printed as plain
// lines at most every few seconds otherwise (logs, CI). Commands own one while they run long work.
import Foundation
import TuneKit

final class ProgressBar {
    private let isTTY = isatty(2) != 0
    private var lastPlain = Date.distantPast
    private var drawn = false
    let plainInterval: TimeInterval

    init(plainInterval: TimeInterval = 5) { self.plainInterval = plainInterval }

    /// `[#####.....] 12/50 ` followed by `detail`.
    func update(done: Int, total: Int, detail: String, force: Bool = false) {
        let width = 24
        let filled = total > 0 ? min(width, width * done / total) : 0
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
        let line = "\(bar) \(done)/\(total) \(detail)"
        if isTTY {
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
            drawn = true
        } else if force || Date().timeIntervalSince(lastPlain) >= plainInterval || done == total {
            FileHandle.standardError.write(Data((line + "\n").utf8))
            lastPlain = Date()
        }
    }

    /// A message on its own line (the bar is redrawn by the next update).
    func note(_ s: String) {
        finishLine()
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    /// Ends the in-place line so later output starts on a fresh one.
    func finishLine() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)); drawn = false }
    }

    /// `1h02m`, `3m05s`, `12s` (TuneKit's `humanDuration`).
    static func duration(_ s: Double) -> String { humanDuration(s) }
}
