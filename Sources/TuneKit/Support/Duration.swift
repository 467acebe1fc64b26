// Duration — seconds as a person reads them in a progress line: `ETA 4m10s`, never `ETA 250s`.

/// `2d03h`, `1h02m`, `4m10s`, `12s`, `0.4s` (tenths only below one second); `?` for a negative or
/// non-finite value.
public func humanDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    if seconds > 0, seconds < 0.95 { return "0.\(Int((seconds * 10).rounded()))s" }
    let t = Int(seconds.rounded())
    if t >= 86_400 { return "\(t / 86_400)d\(pad2(t % 86_400 / 3600))h" }
    if t >= 3600 { return "\(t / 3600)h\(pad2(t % 3600 / 60))m" }
    if t >= 60 { return "\(t / 60)m\(pad2(t % 60))s" }
    return "\(t)s"
}

private func pad2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
