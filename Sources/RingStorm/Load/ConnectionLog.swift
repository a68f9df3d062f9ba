import Glibc
import RingStormEngine

/// One connection's lifecycle, as one JSON line of `--connections-log`:
///
/// ```
/// {"id":17,"attempt":1,"source":"127.0.0.2","connect_us":85,"register_us":40,"requests_answered":52,"phase":"idle","outcome":"end_of_run","lifetime_us":5000211}
/// ```
/// `connect_us` and `register_us` are null when that step never finished; `lifetime_us` runs from the
/// connect's start to the failure (or to the end of the run). `outcome` is a report outcome name
/// (`reset`, `response_timeout`, an errno name, ...) or `end_of_run` for a connection the generator
/// closed itself at the deadline.
struct ConnectionRecord {
    var id: Int
    var attempt: Int
    var source: SocketAddress?
    var connectMicroseconds: Int64
    var registerMicroseconds: Int64
    var requestsAnswered: Int
    var phase: Phase
    var outcome: String
    var lifetimeMicroseconds: Int64

    static let endOfRun = "end_of_run"

    var jsonLine: String {
        func optional(_ value: Int64) -> String { value < 0 ? "null" : String(value) }
        let sourceText = source.map { "\"\($0.host)\"" } ?? "null"
        return "{\"id\":\(id),\"attempt\":\(attempt),\"source\":\(sourceText),\"connect_us\":\(optional(connectMicroseconds)),"
            + "\"register_us\":\(optional(registerMicroseconds)),\"requests_answered\":\(requestsAnswered),"
            + "\"phase\":\"\(phase.rawValue)\",\"outcome\":\"\(outcome)\",\"lifetime_us\":\(lifetimeMicroseconds)}\n"
    }
}

/// Appends lines to the shared log file: each worker buffers whole lines and writes them with one
/// `write` to a descriptor opened with `O_APPEND`, so workers' lines never interleave mid-line.
/// (Lifecycles end far less often than messages arrive; formatting a line may allocate.)
final class ConnectionLogWriter {
    private let fd: Int32
    private var buffer: [UInt8] = []
    /// The first failed write's errno and the lines lost since (nil while every write succeeded).
    private(set) var failure: LoadReport.ConnectionsLogFailure?
    private static let flushThreshold = 64 * 1024

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(Self.flushThreshold + 512)
    }

    func append(_ record: ConnectionRecord) {
        buffer.append(contentsOf: record.jsonLine.utf8)
        if buffer.count >= Self.flushThreshold { flush() }
    }

    func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                // ENOSPC, EIO, EFBIG, ...: the rest of the buffer is lost; the run goes on and reports it.
                let error = n < 0 ? Errno.current : Errno(rawValue: ENOSPC)
                let lost = buffer[offset...].reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
                if failure == nil { failure = .init(error: error.description, linesLost: 0) }
                failure!.linesLost += max(lost, 1)
                break
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// The log file, opened once for all workers (and truncated once by `load --processes`' parent, whose
/// workers then append).
package final class ConnectionLogFile: Sendable {
    let fd: Int32

    /// `path` `-` is standard output.
    package init(path: String, truncate: Bool = true) throws(LoadError) {
        let fd = path == "-" ? fcntl(1, F_DUPFD_CLOEXEC, 0) : open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : 0) | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw .connectionsLog(path: path, Errno.current)
        }
        self.fd = fd
    }

    deinit { _ = Glibc.close(fd) }
}
