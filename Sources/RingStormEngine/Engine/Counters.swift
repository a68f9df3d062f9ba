/// The engine's live counters, in flat memory so the per-completion path pays one add each
/// (see `FlatArray` for why not arrays in the engine object). `statistics` snapshots them.
package struct Counters {
    private static let outcomeBase = Syscall.allCases.count
    private static let bytesInIndex = outcomeBase + OperationKind.allCases.count * Outcome.counterWidth
    private static let bytesOutIndex = bytesInIndex + 1
    private let flat = FlatArray<Int>(repeating: 0, count: bytesOutIndex + 1)
    /// Errnos without a case of their own, by operation: rare, so a dictionary in a box.
    private let others = ErrnoTally()

    package init() { Outcome.checkCounterLayout() }

    /// The flat cell counting `outcome` for `kind`.
    @inline(__always)
    package static func cell(_ kind: OperationKind, _ outcome: Outcome) -> Int {
        outcomeBase + kind.rawValue * Outcome.counterWidth + outcome.counterIndex
    }

    @inline(__always)
    package func record(_ call: Syscall, _ times: Int = 1) { flat[call.rawValue] &+= times }

    @inline(__always)
    package func record(_ kind: OperationKind, _ outcome: Outcome) {
        flat[Self.cell(kind, outcome)] &+= 1
        if case .other(let e) = outcome { others.add(kind, e) }
    }

    @inline(__always)
    package func received(_ bytes: Int) { flat[Self.bytesInIndex] &+= bytes }

    @inline(__always)
    package func sent(_ bytes: Int) { flat[Self.bytesOutIndex] &+= bytes }

    /// Copies the counters into `statistics`.
    package func fill(_ statistics: inout EngineStatistics) {
        var syscalls = SyscallCounts()
        for call in Syscall.allCases { syscalls.record(call, flat[call.rawValue]) }
        statistics.syscalls = syscalls
        var outcomes = OutcomeCounts()
        for kind in OperationKind.allCases {
            for outcome in Outcome.namedCases {
                outcomes.record(kind, outcome, times: flat[Self.cell(kind, outcome)])
            }
        }
        for (kind, errno, n) in others.entries { outcomes.record(kind, .other(errno), times: n) }
        statistics.outcomes = outcomes
        statistics.bytesReceived = flat[Self.bytesInIndex]
        statistics.bytesSent = flat[Self.bytesOutIndex]
    }

    package func deallocate() { flat.deallocate() }
}

private final class ErrnoTally {
    private var counts: [Int: [Int32: Int]] = [:]

    func add(_ kind: OperationKind, _ errno: Errno) { counts[kind.rawValue, default: [:]][errno.rawValue, default: 0] += 1 }

    var entries: [(OperationKind, Errno, Int)] {
        counts.flatMap { kind, row in row.map { (OperationKind(rawValue: kind)!, Errno(rawValue: $0.key), $0.value) } }
    }
}
