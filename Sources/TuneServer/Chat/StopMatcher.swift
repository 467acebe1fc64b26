// StopMatcher — OpenAI's `stop` strings over streamed text: text is released only once it can no longer
// be the start of a stop string, and generation ends at the first stop (which is not returned).

import Foundation

struct StopMatcher {
    let stops: [String]
    private var pending = ""
    private(set) var stopped = false

    init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds generated text; returns what may be sent now.
    mutating func feed(_ piece: String) -> String {
        guard !stopped else { return "" }
        pending += piece
        guard !stops.isEmpty else { defer { pending = "" }; return pending }
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            stopped = true
            defer { pending = "" }
            return String(pending[..<cut])
        }
        // Hold back the longest tail that is a prefix of some stop string.
        var hold = 0
        for s in stops {
            for n in stride(from: min(s.count - 1, pending.count), to: 0, by: -1) where pending.hasSuffix(String(s.prefix(n))) {
                hold = max(hold, n)
                break
            }
        }
        let release = pending.index(pending.endIndex, offsetBy: -hold)
        defer { pending = String(pending[release...]) }
        return String(pending[..<release])
    }

    /// What is still held back when generation ends without a stop.
    mutating func finish() -> String {
        defer { pending = "" }
        return stopped ? "" : pending
    }
}
