import Foundation
import Glibc
import RingStormEngine

/// What a worker process is told to do: one value, serialized as JSON, instead of a command line rebuilt
/// from it. `WorkerProcesses` hands it to each child in a memory file on descriptor
/// `WorkerAssignment.descriptor` and names that descriptor in the environment (`environmentName`); the
/// child's command reads it with `WorkerAssignment.inherited()` and reports on `WorkerChannel`
/// (descriptor 3).
package struct WorkerAssignment<Configuration: Codable & Sendable>: Codable, Sendable {
    /// The worker's whole configuration (for a load worker: its share, `Configuration.narrowed(to:)`).
    package var configuration: Configuration
    /// How often the worker sends progress (at least once a second, so it notices a parent that is gone).
    package var progressIntervalNanoseconds: Int64
    /// Stop after this long (nil: when told, or when the configuration says).
    package var durationNanoseconds: Int64?

    package init(_ configuration: Configuration, progressIntervalNanoseconds: Int64 = 1_000_000_000,
                 durationNanoseconds: Int64? = nil) {
        self.configuration = configuration
        self.progressIntervalNanoseconds = progressIntervalNanoseconds
        self.durationNanoseconds = durationNanoseconds
    }
}

/// Where a worker process finds its assignment.
package enum WorkerLaunch {
    /// The environment variable set in a worker process: the descriptor of its assignment.
    package static let environmentName = "RINGSTORM_WORKER_ASSIGNMENT_FD"
    /// The assignment's descriptor in the child.
    package static let assignmentDescriptor: Int32 = 4

    /// Whether this process was started as a worker.
    package static var isWorker: Bool { getenv(environmentName) != nil }

    /// In a worker process, its assignment and its report channel; nil in any other process.
    package static func inherited<Configuration>(_ type: Configuration.Type = Configuration.self)
        throws(WorkerFailure) -> (assignment: WorkerAssignment<Configuration>, channel: WorkerChannel)? {
        guard let text = getenv(environmentName), let fd = Int32(String(cString: text)) else { return nil }
        unsetenv(environmentName)  // not for this worker's own children
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(data.count)) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw WorkerFailure("cannot read the worker assignment on descriptor \(fd): \(Errno.current)") }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        _ = Glibc.close(fd)
        do {
            let assignment = try JSONDecoder().decode(WorkerAssignment<Configuration>.self, from: data)
            return (assignment, WorkerChannel(fd: WorkerProcesses<Never>.channelDescriptor))
        } catch {
            throw WorkerFailure("the worker assignment does not decode (\(error)); is the parent the same build?")
        }
    }

    /// An unlinked file holding `value` as JSON, for a child to inherit.
    static func memoryFile(_ value: some Encodable) throws(ChildProcessError) -> Int32 {
        let data: Data
        do { data = try JSONEncoder().encode(value) } catch {
            throw ChildProcessError("cannot encode a worker assignment: \(error)")
        }
        // An unlinked temporary file (memfd_create is not in Swift's Glibc module): gone with its last descriptor.
        let directory = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array((directory + "/ringstorm-worker-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw ChildProcessError("cannot make a file in \(directory) for a worker assignment: \(Errno.current); set TMPDIR to a writable directory")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let error = Errno.current
                _ = Glibc.close(fd)
                throw ChildProcessError("cannot write a worker assignment: \(error)")
            }
            offset += n
        }
        return fd
    }
}

// MARK: Codable for the engine's value types in a configuration

extension SocketAddress: Codable {
    /// As its text, `127.0.0.1:7200` or `[::1]:7200`.
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try SocketAddress(parsing: text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an address: \(text)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

extension EngineConfiguration: Codable {
    private enum CodingKeys: String, CodingKey {
        case maxConnections, submissionQueueEntries, completionQueueEntries, receiveBufferCount, receiveBufferSize
        case maxPendingBytesPerConnection, deferTaskRun, batchWaitMicroseconds, noDelay
        case closeTimeoutNanoseconds, localPortLow, localPortHigh, spinNanoseconds, uringFeatures
    }

    public init(from decoder: any Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxConnections = try c.decode(Int.self, forKey: .maxConnections)
        submissionQueueEntries = try c.decode(UInt32.self, forKey: .submissionQueueEntries)
        completionQueueEntries = try c.decode(UInt32.self, forKey: .completionQueueEntries)
        receiveBufferCount = try c.decode(Int.self, forKey: .receiveBufferCount)
        receiveBufferSize = try c.decode(Int.self, forKey: .receiveBufferSize)
        maxPendingBytesPerConnection = try c.decode(Int.self, forKey: .maxPendingBytesPerConnection)
        deferTaskRun = try c.decode(Bool.self, forKey: .deferTaskRun)
        batchWaitMicroseconds = try c.decode(UInt32.self, forKey: .batchWaitMicroseconds)
        noDelay = try c.decode(Bool.self, forKey: .noDelay)
        closeTimeoutNanoseconds = try c.decodeIfPresent(Int64.self, forKey: .closeTimeoutNanoseconds) ?? closeTimeoutNanoseconds
        spinNanoseconds = try c.decodeIfPresent(Int64.self, forKey: .spinNanoseconds) ?? spinNanoseconds
        if let low = try c.decodeIfPresent(UInt16.self, forKey: .localPortLow),
           let high = try c.decodeIfPresent(UInt16.self, forKey: .localPortHigh), low <= high {
            localPortRange = low...high
        }
        if let features = try c.decodeIfPresent(UInt32.self, forKey: .uringFeatures) { uringFeatures = UringFeatures(rawValue: features) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxConnections, forKey: .maxConnections)
        try c.encode(submissionQueueEntries, forKey: .submissionQueueEntries)
        try c.encode(completionQueueEntries, forKey: .completionQueueEntries)
        try c.encode(receiveBufferCount, forKey: .receiveBufferCount)
        try c.encode(receiveBufferSize, forKey: .receiveBufferSize)
        try c.encode(maxPendingBytesPerConnection, forKey: .maxPendingBytesPerConnection)
        try c.encode(deferTaskRun, forKey: .deferTaskRun)
        try c.encode(batchWaitMicroseconds, forKey: .batchWaitMicroseconds)
        try c.encode(noDelay, forKey: .noDelay)
        try c.encodeIfPresent(localPortRange?.lowerBound, forKey: .localPortLow)
        try c.encodeIfPresent(localPortRange?.upperBound, forKey: .localPortHigh)
        try c.encode(closeTimeoutNanoseconds, forKey: .closeTimeoutNanoseconds)
        try c.encode(spinNanoseconds, forKey: .spinNanoseconds)
        try c.encode(uringFeatures.rawValue, forKey: .uringFeatures)
    }
}
