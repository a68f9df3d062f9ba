import Foundation
import Glibc
import RingStormEngine
import Synchronization

/// The worker's end of its report channel: descriptor 3 in a worker process (see `WorkerLaunch`), the
/// write end of a pipe whose read end the parent holds. One line per message:
///
/// ```
/// ready 127.0.0.1:7200          the worker is set up (serve: listening on that address)
/// progress {...}                its counts so far, compact JSON, about once a second
/// final {...}                   its mergeable report at the end (ServerSnapshot / LoadWorkerSnapshot)
/// ```
///
/// A write that fails (EPIPE: the parent is gone) marks the channel broken; the worker then stops, so
/// an orphaned worker does not run on.
package final class WorkerChannel: Sendable {
    public let fd: Int32
    private let broken = Atomic<Bool>(false)

    public init(fd: Int32) { self.fd = fd }

    /// Whether a write failed: the parent is gone.
    public var isBroken: Bool { broken.load(ordering: .relaxed) }

    @discardableResult
    public func ready(_ text: String = "") -> Bool { send("ready " + text) }

    @discardableResult
    public func progress(_ value: some Encodable) -> Bool { send("progress", value) }

    @discardableResult
    public func final(_ value: some Encodable) -> Bool { send("final", value) }

    private func send(_ tag: String, _ value: some Encodable) -> Bool {
        guard let data = try? ReportJSON.encode(value, pretty: false) else { return false }
        return send(tag + " " + String(decoding: data, as: UTF8.self))
    }

    private func send(_ line: String) -> Bool {
        guard !isBroken else { return false }
        var bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                broken.store(true, ordering: .relaxed)
                return false
            }
            offset += n
        }
        return true
    }
}

/// A worker process that failed: ended without its final report, or with a status other than 0.
package struct WorkerFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// N copies of this binary, each running one worker (`ringstorm serve|load` with a `WorkerAssignment`),
/// watched from one thread: their report channels and standard errors are read with `poll`, their
/// latest progress and final reports decoded as `Status`, and their ends reaped and classified.
///
/// Used by `serve --processes`, `load --processes` and `repro`; single-threaded (the caller's loop
/// calls `pump`).
package final class WorkerProcesses<Status: Decodable> {
    public final class Worker {
        public let index: Int
        public let process: ChildProcess
        let channel: LineReader
        let errors: LineReader
        /// The text of the `ready` line, once it came.
        public internal(set) var ready: String?
        /// The latest `progress` (or the `final`) report.
        public internal(set) var latest: Status?
        /// The `final` report, once it came.
        public internal(set) var final: Status?
        /// The last line the worker wrote to its standard error (its error message, if it failed).
        public internal(set) var lastErrorLine: String?
        /// The pid of the worker started in its place (`respawn`), if one was.
        public internal(set) var replacedBy: pid_t?
        var garbled: String?

        init(index: Int, process: ChildProcess, channel: LineReader, errors: LineReader) {
            self.index = index
            self.process = process
            self.channel = channel
            self.errors = errors
        }

        public var status: ExitStatus? { process.status }
    }

    /// The workers running (or last run) in each place; a respawned worker's predecessor is in `retired`.
    public private(set) var workers: [Worker]
    /// Workers that failed and were replaced by `respawn`: their reports still count.
    public private(set) var retired: [Worker] = []
    private let executable: String
    private let arguments: [[String]]
    /// Each place's assignment, written to a new file for a respawned worker (empty: no assignment).
    private var assignments: [any Encodable] = []
    /// The descriptor number the channel has in the child.
    public static var channelDescriptor: Int32 { 3 }

    /// Starts one worker per assignment: `executable arguments` (e.g. this binary's `load`), each with its
    /// assignment (`WorkerAssignment`, serialized) to read with `WorkerLaunch.inherited()` and its report
    /// channel on descriptor 3. If one cannot be started, those already started are killed.
    package convenience init<Configuration>(executable: String = ChildProcess.currentExecutable, arguments: [String],
                                            assignments: [WorkerAssignment<Configuration>]) throws(ChildProcessError) {
        var files: [Int32] = []
        defer { for fd in files { SystemCall.close(fd) } }
        for assignment in assignments { files.append(try WorkerLaunch.memoryFile(assignment)) }
        try self.init(executable: executable, arguments: Array(repeating: arguments, count: assignments.count),
                      assignmentFiles: files)
        self.assignments = assignments
    }

    /// Starts one child per argument list (each list without argv[0]), with its report channel on
    /// descriptor 3 and, if given, the file of its assignment. If one cannot be started, those
    /// already started are killed.
    public init(executable: String = ChildProcess.currentExecutable, arguments: [[String]],
                assignmentFiles: [Int32] = []) throws(ChildProcessError) {
        var started: [Worker] = []
        do throws(ChildProcessError) {
            for (index, args) in arguments.enumerated() {
                started.append(try Self.spawn(index: index, executable: executable, arguments: args,
                                              assignmentFile: index < assignmentFiles.count ? assignmentFiles[index] : nil))
            }
        } catch {
            for w in started { w.process.send(SIGKILL); w.process.wait() }
            throw error
        }
        workers = started
        self.executable = executable
        self.arguments = arguments
    }

    /// One worker: its channel on descriptor 3, its standard error on a pipe, its assignment if given.
    private static func spawn(index: Int, executable: String, arguments args: [String], assignmentFile: Int32?) throws(ChildProcessError) -> Worker {
        let channel = try Self.pipe()
        let errors: (read: Int32, write: Int32)
        do { errors = try Self.pipe() } catch {
            SystemCall.close(channel.read); SystemCall.close(channel.write)
            throw error
        }
        defer { SystemCall.close(channel.write); SystemCall.close(errors.write) }
        let process: ChildProcess
        do {
            var descriptors = [Self.channelDescriptor: channel.write, 2: errors.write]
            var environment: [String: String] = [:]
            if let assignmentFile {
                descriptors[WorkerLaunch.assignmentDescriptor] = assignmentFile
                environment[WorkerLaunch.environmentName] = String(WorkerLaunch.assignmentDescriptor)
            }
            process = try ChildProcess.spawn(executable: executable, arguments: args, descriptors: descriptors,
                                             environment: environment)
        } catch {
            SystemCall.close(channel.read); SystemCall.close(errors.read)
            throw error
        }
        return Worker(index: index, process: process, channel: LineReader(fd: channel.read), errors: LineReader(fd: errors.read))
    }

    /// Starts a new worker in place `index`, whose worker has ended, with the same arguments and
    /// assignment. The old one moves to `retired` (its reports still count); the new one is returned.
    @discardableResult
    public func respawn(_ index: Int) throws(ChildProcessError) -> Worker {
        let old = workers[index]
        precondition(old.status != nil, "respawn of a worker that is still running")
        var file: Int32? = nil
        if index < assignments.count { file = try WorkerLaunch.memoryFile(assignments[index]) }
        defer { if let file { SystemCall.close(file) } }
        let new = try Self.spawn(index: index, executable: executable, arguments: arguments[index], assignmentFile: file)
        old.replacedBy = new.process.pid
        retired.append(old)
        workers[index] = new
        return new
    }

    private static func pipe() throws(ChildProcessError) -> (read: Int32, write: Int32) {
        do {
            let p = try SystemCall.pipe()
            try SystemCall.setNonBlocking(p.read)
            return p
        } catch {
            throw ChildProcessError("cannot make a pipe for a worker process: \(error)")
        }
    }

    /// Waits up to `timeoutNanoseconds` for output, reads every line, and reaps workers that ended.
    public func pump(timeoutNanoseconds: Int64) {
        var fds: [pollfd] = []
        for w in workers {
            if !w.channel.atEnd { fds.append(pollfd(fd: w.channel.fd, events: Int16(POLLIN), revents: 0)) }
            if !w.errors.atEnd { fds.append(pollfd(fd: w.errors.fd, events: Int16(POLLIN), revents: 0)) }
        }
        let milliseconds = Int32(clamping: max(0, (timeoutNanoseconds + 999_999) / 1_000_000))
        if fds.isEmpty {
            if workers.contains(where: { $0.status == nil }) { usleep(UInt32(min(milliseconds, 50)) * 1000) }
        } else {
            _ = fds.withUnsafeMutableBufferPointer { Glibc.poll($0.baseAddress, nfds_t($0.count), milliseconds) }
        }
        for w in workers {
            for line in w.channel.readLines() { take(line, from: w) }
            for line in w.errors.readLines() where !line.isEmpty { w.lastErrorLine = line }
            if w.channel.atEnd && w.errors.atEnd { w.process.poll() }
        }
    }

    private func take(_ line: String, from w: Worker) {
        guard let space = line.firstIndex(of: " ") else {
            if line == "ready" { w.ready = "" }
            return
        }
        let tag = line[..<space]
        let body = line[line.index(after: space)...]
        switch tag {
        case "ready":
            w.ready = String(body)
        case "progress", "final":
            do {
                let status = try JSONDecoder().decode(Status.self, from: Data(body.utf8))
                w.latest = status
                if tag == "final" { w.final = status }
            } catch {
                w.garbled = "sent a report that does not decode (\(error)); is it the same build?"
            }
        default:
            break
        }
    }

    /// Whether every worker has been reaped.
    public var allEnded: Bool { workers.allSatisfy { $0.status != nil } }

    /// The latest report of each worker (nil for one that has sent none yet).
    public var latest: [Status?] { workers.map(\.latest) }

    /// The final reports of the workers that sent one.
    public var finals: [Status] { workers.compactMap(\.final) }

    /// The first worker that failed: ended without a final report, ended with a status other than 0, or
    /// sent something unreadable. The text names the worker, its pid, how it ended and its last words.
    public var failure: WorkerFailure? {
        for w in retired + workers {
            if let garbled = w.garbled { return WorkerFailure(name(w) + " " + garbled) }
            guard let status = w.status else { continue }
            if status.succeeded && w.final != nil { continue }
            var text = name(w) + " " + status.description
            if status.succeeded { text += " without sending its report" }
            if let last = w.lastErrorLine {
                text += ": " + (last.hasPrefix("ringstorm: ") ? String(last.dropFirst("ringstorm: ".count)) : last)
            }
            return WorkerFailure(text)
        }
        return nil
    }

    /// Every worker that failed so far (ended without a final report, ended with a status other than 0,
    /// or sent something unreadable), each with which of its reports `mergeable` holds for it.
    public var failedWorkers: [FailedWorker] {
        (retired + workers).compactMap { w -> FailedWorker? in
            let how: String
            if let garbled = w.garbled {
                how = garbled
            } else {
                guard let status = w.status, !(status.succeeded && w.final != nil) else { return nil }
                how = status.description + (status.succeeded ? " without sending its report" : "")
            }
            let merged: FailedWorker.Merged = w.final != nil ? .final : (w.latest != nil ? .lastProgress : .none)
            let last = w.lastErrorLine.map { $0.hasPrefix("ringstorm: ") ? String($0.dropFirst("ringstorm: ".count)) : $0 }
            return FailedWorker(worker: w.index + 1, pid: w.process.pid, how: how, lastError: last, merged: merged,
                                respawnedAs: w.replacedBy)
        }
    }

    /// Each worker's final report, or for one that died before sending it, its last progress report:
    /// everything that is known of the run (workers that sent nothing are missing).
    public var mergeable: [Status] { (retired + workers).compactMap { $0.final ?? $0.latest } }

    private func name(_ w: Worker) -> String { "worker \(w.index + 1) of \(workers.count) (pid \(w.process.pid))" }

    /// Waits until every worker has sent `ready` (returns their texts), one failed, or the timeout passed.
    public func waitUntilReady(timeoutNanoseconds: Int64 = 15_000_000_000) throws(WorkerFailure) -> [String] {
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        while true {
            if let failure { throw failure }
            if workers.allSatisfy({ $0.ready != nil }) { return workers.map { $0.ready! } }
            for w in workers where w.status != nil && w.ready == nil {
                throw WorkerFailure(name(w) + " " + w.status!.description + " before it was ready"
                                    + (w.lastErrorLine.map { ": " + $0.replacingOccurrences(of: "ringstorm: ", with: "") } ?? ""))
            }
            let left = deadline - monotonicNanoseconds()
            if left <= 0 {
                let late = workers.filter { $0.ready == nil }.map { "\($0.index + 1)" }.joined(separator: ", ")
                throw WorkerFailure("worker \(late) of \(workers.count) not ready within \(timeoutNanoseconds / 1_000_000_000) s")
            }
            pump(timeoutNanoseconds: min(left, 100_000_000))
        }
    }

    /// Sends `signal` to every worker still running.
    public func signalAll(_ signal: Int32) {
        for w in workers where w.status == nil { w.process.send(signal) }
    }

    /// Reads until every worker has ended, or `timeoutNanoseconds` passed (then SIGKILL for the rest).
    public func waitForAll(timeoutNanoseconds: Int64) {
        let deadline = monotonicNanoseconds() + timeoutNanoseconds
        while !allEnded {
            let left = deadline - monotonicNanoseconds()
            if left <= 0 { break }
            pump(timeoutNanoseconds: min(left, 100_000_000))
        }
        guard !allEnded else { return }
        signalAll(SIGKILL)
        for w in workers where w.status == nil { w.process.wait() }
        pump(timeoutNanoseconds: 0)
    }

    /// SIGTERM to every worker, then `waitForAll`.
    public func stop(graceNanoseconds: Int64 = 10_000_000_000) {
        signalAll(SIGTERM)
        waitForAll(timeoutNanoseconds: graceNanoseconds)
    }

    deinit {
        // Never leave a child behind.
        for w in workers where w.status == nil {
            w.process.send(SIGKILL)
            w.process.wait()
        }
    }
}
