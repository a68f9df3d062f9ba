import Foundation
import RingStormEngine

/// The text an echo server prints when it stops.
public enum EchoSummary {
    public static func render(_ s: EchoSnapshot, seconds: Double) -> String {
        var lines: [String] = []
        let e = s.engine
        lines.append("ringstorm serve summary (\(e.backend), \(String(format: "%.1f", seconds)) s)")
        lines.append("  connections  accepted \(s.accepted), still open \(s.openConnections), accept pauses \(s.acceptPauses)")
        lines.append("  traffic      messages \(s.messages), bytes in \(e.bytesReceived), bytes out \(e.bytesSent)")
        for kind in OperationKind.allCases {
            guard let row = e.outcomes.byName[kind.description] else { continue }
            let cells = row.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("  \(kind.description.padding(toLength: 12, withPad: " ", startingAt: 0)) \(cells)")
        }
        let calls = e.syscalls.byName.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        lines.append("  syscalls     total \(e.syscalls.total) (\(calls))")
        lines.append(String(format: "  per op       %.3f syscalls/operation, %.3f syscalls/message", e.syscallsPerOperation, s.syscallsPerMessage))
        if e.completionQueueOverflows + e.bufferExhaustions + e.backpressurePauses + e.slotExhaustions > 0 {
            lines.append("  pressure     CQ overflows \(e.completionQueueOverflows), buffer exhaustions \(e.bufferExhaustions), backpressure pauses \(e.backpressurePauses), slots exhausted \(e.slotExhaustions)")
        }
        for note in e.notes { lines.append("  note         \(note)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
