import RingStormEngine

/// The counters a worker keeps on its hot path, in memory of their own (no exclusivity check per
/// increment); turned into a `ServerReport` when published.
struct ServerCounts {
    var accepted = 0
    var acceptErrors: [Int32: Int] = [:]
    var shed = 0
    var peakOpen = 0
    var registered = 0
    var registerTimeouts = 0
    var idleClosed = 0
    var closedByPeer = 0
    var resetByPeer = 0
    var protocolErrors = 0
    var requests = 0

    mutating func recordAcceptError(_ outcome: Outcome) {
        let code = outcome.errno?.rawValue ?? -1
        acceptErrors[code, default: 0] += 1
    }

    func report(backend: Backend, syscalls: Int) -> ServerReport {
        var r = ServerReport(backend: backend)
        r.accepted = accepted
        for (code, n) in acceptErrors {
            r.acceptErrors[code < 0 ? "unknown" : Errno(rawValue: code).name, default: 0] += n
        }
        r.shed = shed
        r.peakOpen = peakOpen
        r.registered = registered
        r.registerTimeouts = registerTimeouts
        r.idleClosed = idleClosed
        r.closedByPeer = closedByPeer
        r.resetByPeer = resetByPeer
        r.protocolErrors = protocolErrors
        r.requests = requests
        r.syscalls = syscalls
        return r
    }
}
