import Glibc
import RingStormEngine
import Testing

/// The flat outcome counters are laid out from `Outcome.namedCases`: every outcome of every operation
/// kind must land in a cell of its own and come back out under its own name.
@Suite("Outcome counter layout")
struct CounterLayoutTests {
    static let outcomes: [Outcome] = Outcome.namedCases + [.other(Errno(rawValue: EHOSTUNREACH))]

    @Test func theLayoutFollowsTheOneList() {
        Outcome.checkCounterLayout()
        #expect(Outcome.counterWidth == Outcome.namedCases.count + 1)
        #expect(Set(Outcome.namedCases).count == Outcome.namedCases.count, "a case listed twice")
        var cells = Set<Int>()
        for kind in OperationKind.allCases {
            for outcome in Self.outcomes {
                #expect(outcome.counterIndex < Outcome.counterWidth)
                #expect(cells.insert(Counters.cell(kind, outcome)).inserted, "\(kind) \(outcome) shares a cell")
            }
        }
        #expect(cells.count == OperationKind.allCases.count * Outcome.counterWidth)
    }

    @Test func everyOutcomeOfEveryKindRoundTrips() {
        for kind in OperationKind.allCases {
            for outcome in Self.outcomes {
                let counters = Counters()
                defer { counters.deallocate() }
                counters.record(kind, outcome)
                var statistics = EngineStatistics(backend: .epoll)
                counters.fill(&statistics)
                for otherKind in OperationKind.allCases {
                    for other in Self.outcomes {
                        let expected = otherKind == kind && other == outcome ? 1 : 0
                        #expect(statistics.outcomes.count(otherKind, other) == expected,
                                "recorded \(kind) \(outcome), read \(otherKind) \(other)")
                    }
                    #expect(statistics.outcomes.total(otherKind) == (otherKind == kind ? 1 : 0))
                }
                #expect(statistics.outcomes.byName == [kind.description: [outcome.name: 1]])
                #expect(statistics.syscalls.total == 0 && statistics.bytesReceived == 0 && statistics.bytesSent == 0)
            }
        }
    }
}
