import Glibc
import RingStormEngine

extension Bench {
    /// What the runner tells its caller as it goes: which run, and how far it is (0...1).
    public struct Progress: Sendable {
        public var round: Int
        public var rounds: Int
        public var backend: Backend
        /// Of the whole bench, 0...1.
        public var fraction: Double
        /// Of the current run, the requests answered so far and the seconds since its load started.
        public var answered: Int
        public var seconds: Double
        /// Set once when a run has ended.
        public var finished: Run?
    }

    /// Runs a bench: for each round, each backend's server (unless `target`) and load generator as two
    /// child processes of this binary (`serve` and `load` worker processes), pinned to their CPUs.
    public final class Runner {
        public let configuration: Configuration
        public let placement: CPUPlacement

        public init(configuration: Configuration) throws(BenchError) {
            try configuration.validate()
            self.configuration = configuration
            placement = CPUPlacement(allowed: CPUPlacement.allowedCPUs(), loadOnly: configuration.target != nil)
        }

        /// Every run in order; `progress` is called about every sample interval and once per run.
        /// Once `shouldStop` says so (SIGINT/SIGTERM), the current run ends early and no more start.
        /// A run that failed throws (the runs before it are in the error's text only).
        public func run(progress: (Progress) -> Void, shouldStop: () -> Bool = { false }) throws(BenchError) -> Result {
            // Kept once seen: `shouldStop` may consume what it reports (the CLI's `sigtimedwait`), so
            // asking again before the next run could say no and start it.
            var stopping = false
            func stopAsked() -> Bool {
                if !stopping { stopping = shouldStop() }
                return stopping
            }
            let machine = Machine.current()
            var runs: [Run] = []
            let total = configuration.rounds * configuration.backends.count
            for round in 1...configuration.rounds {
                for backend in configuration.backends {
                    if stopAsked() { break }
                    let index = runs.count
                    let run = try runOne(backend: backend, round: round, shouldStop: stopAsked) { answered, seconds, fraction in
                        progress(Progress(round: round, rounds: configuration.rounds, backend: backend,
                                          fraction: (Double(index) + min(fraction, 1)) / Double(total),
                                          answered: answered, seconds: seconds, finished: nil))
                    }
                    runs.append(run)
                    progress(Progress(round: round, rounds: configuration.rounds, backend: backend,
                                      fraction: Double(runs.count) / Double(total), answered: run.answered,
                                      seconds: run.seconds, finished: run))
                }
            }
            return Result(configuration: configuration, machine: machine, placement: placement, runs: runs)
        }

        private func side(_ backend: Backend, _ what: String) -> String {
            "the \(backend.benchName) \(what)"
        }

        /// One backend's run: server (ours or the target), load, samples, and both sides' figures.
        private func runOne(backend: Backend, round: Int, shouldStop: () -> Bool,
                            tick: (Int, Double, Double) -> Void) throws(BenchError) -> Run {
            let c = configuration
            var server: WorkerProcesses<ServerSnapshot>?
            var target = c.target
            var serverBaseline: ProcessSample?
            defer { server?.stop(graceNanoseconds: 5_000_000_000) }
            if target == nil {
                let assignment = WorkerAssignment(c.server(backend: backend), progressIntervalNanoseconds: c.sampleIntervalNanoseconds,
                                                  durationNanoseconds: c.durationNanoseconds + 60_000_000_000)
                do {
                    server = try CPUPlacement.pinned(to: placement.server) {
                        try WorkerProcesses<ServerSnapshot>(executable: c.executable, arguments: ["serve"], assignments: [assignment])
                    }
                } catch {
                    throw .sideFailed("cannot start \(side(backend, "server")): \(error)")
                }
                let ready: String
                do { ready = try server!.waitUntilReady()[0] } catch {
                    throw .sideFailed("\(side(backend, "server")) did not start: \(Self.worded(error.description, "server"))")
                }
                guard let address = try? SocketAddress(parsing: ready) else {
                    throw .sideFailed("\(side(backend, "server")) reported no address ('\(ready)'); is \(c.executable) a ringstorm of this build?")
                }
                target = address
                serverBaseline = ProcessSample.read(pid: server!.workers[0].process.pid)
            }
            let assignment = WorkerAssignment(c.load(backend: backend, target: target!), progressIntervalNanoseconds: c.sampleIntervalNanoseconds)
            let load: WorkerProcesses<LoadWorkerSnapshot>
            do {
                load = try CPUPlacement.pinned(to: placement.load) {
                    try WorkerProcesses<LoadWorkerSnapshot>(executable: c.executable, arguments: ["load"], assignments: [assignment])
                }
                _ = try load.waitUntilReady()
            } catch {
                throw .sideFailed("\(side(backend, "load generator")) did not start: \(Self.worded("\(error)", "load generator"))")
            }
            let loadPID = load.workers[0].process.pid
            let started = monotonicNanoseconds()
            let loadBaseline = ProcessSample.read(pid: loadPID)
            let serverPID = server?.workers[0].process.pid
            var loadPeak = loadBaseline?.anonymousBytes ?? 0
            var serverPeak = serverBaseline?.anonymousBytes ?? 0
            var serverAtEnd: ProcessSample?
            var samples: [Sample] = []
            let expected = Double(c.durationNanoseconds) / 1e9
            let giveUp = started + c.durationNanoseconds + 20_000_000_000
            var nextSample = started + c.sampleIntervalNanoseconds
            var signalled = false
            while !load.allEnded {
                if !signalled && shouldStop() {
                    signalled = true
                    load.signalAll(SIGTERM)
                }
                if monotonicNanoseconds() > giveUp {
                    load.stop(graceNanoseconds: 2_000_000_000)
                    break
                }
                load.pump(timeoutNanoseconds: 20_000_000)
                server?.pump(timeoutNanoseconds: 0)
                let now = monotonicNanoseconds()
                let seconds = Double(now - started) / 1e9
                // A point when the load's report moved (it publishes about once a second, whatever the
                // asked interval), stamped when it arrived, so each rate is over the span it covers.
                let latest = load.workers[0].latest?.report
                if let latest, latest.requests.answered != samples.last?.answered || latest.syscalls != samples.last?.loadSyscalls {
                    samples.append(Sample(seconds: seconds, answered: latest.requests.answered, loadSyscalls: latest.syscalls,
                                          serverSyscalls: server?.workers[0].latest?.report.syscalls))
                }
                guard now >= nextSample else { continue }
                nextSample += c.sampleIntervalNanoseconds
                if let s = ProcessSample.read(pid: loadPID) { loadPeak = max(loadPeak, s.anonymousBytes) }
                if let serverPID, let s = ProcessSample.read(pid: serverPID) {
                    serverPeak = max(serverPeak, s.anonymousBytes)
                    serverAtEnd = s
                }
                tick(latest?.requests.answered ?? 0, seconds, seconds / (expected + 1))
            }
            // The server's CPU up to the load's end (what it spent after, idling until stopped, is not the load's).
            if let serverPID, let s = ProcessSample.read(pid: serverPID) { serverAtEnd = s }
            if let failure = load.failure {
                throw .sideFailed("\(side(backend, "load generator")) failed in round \(round): \(Self.worded(failure.description, "load generator"))")
            }
            guard let final = load.workers[0].final?.report else {
                throw .sideFailed("\(side(backend, "load generator")) sent no report in round \(round)")
            }
            let loadCPU = (load.workers[0].process.usage?.cpuSeconds ?? 0) - (loadBaseline?.cpuSeconds ?? 0)
            let loadSide = Side(cpuSeconds: max(0, loadCPU), syscalls: final.syscalls, baselineBytes: loadBaseline?.anonymousBytes ?? 0,
                                peakBytes: loadPeak)
            var serverSide: Side?
            if let server {
                server.stop(graceNanoseconds: 5_000_000_000)
                if let failure = server.failure {
                    throw .sideFailed("\(side(backend, "server")) failed in round \(round): \(Self.worded(failure.description, "server"))")
                }
                let report = server.workers[0].final?.report
                serverSide = Side(cpuSeconds: max(0, (serverAtEnd?.cpuSeconds ?? 0) - (serverBaseline?.cpuSeconds ?? 0)),
                                  syscalls: report?.syscalls ?? 0, baselineBytes: serverBaseline?.anonymousBytes ?? 0,
                                  peakBytes: serverPeak)
            }
            samples.append(Sample(seconds: final.durationSeconds, answered: final.requests.answered, loadSyscalls: final.syscalls,
                                  serverSyscalls: server?.workers[0].final?.report.syscalls))
            var failures: [String: Int] = [:]
            for phase in Phase.allCases {
                for (outcome, count) in final.outcomes[phase].nonZero { failures["\(phase): \(outcome)", default: 0] += count }
            }
            return Run(backend: backend, round: round, connections: c.connections, established: final.connections.established,
                       seconds: final.durationSeconds, answered: final.requests.answered, latency: final.latency.request,
                       load: loadSide, server: serverSide, samples: samples, failures: failures)
        }

        /// A worker's failure text with "worker 1 of 1" said as the side it is.
        private static func worded(_ text: String, _ side: String) -> String {
            text.replacingOccurrences(of: "worker 1 of 1", with: side)
        }
    }
}
