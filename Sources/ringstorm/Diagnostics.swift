import ArgumentParser
import Glibc
import Logging
import RingStorm

/// Everything a command says that is not its report or its final error: the banner (`notice`), the
/// live lines and the thresholds that held (`info`), through swift-log, on standard error. `--log-level`
/// chooses how much: `info` (the default) says all of it, `notice` drops the live lines, `warning` and
/// above leave standard error to the final error lines (which are always printed).
enum Diagnostics {
    private static let level = Locked(Logger.Level.info)

    /// The logger the commands write to (its handler writes the message as is, one line each).
    static var logger: Logger {
        var logger = Logger(label: "ringstorm") { _ in StandardErrorLogHandler() }
        logger.logLevel = level.withLock { $0 }
        return logger
    }

    static func setLevel(_ newLevel: Logger.Level) { level.withLock { $0 = newLevel } }

    /// The banner.
    static func notice(_ text: String) { log(.notice, text) }

    /// A live line, a threshold that held.
    static func info(_ text: String) { log(.info, text) }

    private static func log(_ level: Logger.Level, _ text: String) {
        let text = text.hasSuffix("\n") ? String(text.dropLast()) : text
        logger.log(level: level, "\(text)")
    }
}

/// Writes each message as it is, then a newline, to standard error; no timestamp or label (the live
/// lines carry their own time).
struct StandardErrorLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        FileHandleOutput.standardError("\(event.message)\n")
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
