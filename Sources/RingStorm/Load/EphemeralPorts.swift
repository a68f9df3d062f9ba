import Foundation
import RingStormEngine

/// The system's ephemeral port range (`net.ipv4.ip_local_port_range`), read once: what `WorkSplit` slices
/// among the workers and what `LoadBudget` counts per source address.
enum EphemeralPorts {
    static let system: ClosedRange<Int> = read() ?? 32_768...60_999

    static func read() -> ClosedRange<Int>? {
        guard let text = ProcFile.text("/proc/sys/net/ipv4/ip_local_port_range") else { return nil }
        return parse(text)
    }

    /// "32768\t60999\n" → 32768...60999.
    static func parse(_ text: String) -> ClosedRange<Int>? {
        let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard fields.count == 2, fields[0] >= 1, fields[0] <= fields[1], fields[1] <= 65_535 else { return nil }
        return fields[0]...fields[1]
    }
}
