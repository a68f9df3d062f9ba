import Foundation
import Glibc
import RingStormEngine

/// An output a run writes at its end (`--json FILE`), checked before the run starts, so a bad path
/// fails in a second instead of after the whole run, and written atomically, so a run that fails
/// never destroys an older report.
///
/// - `-` means standard output.
/// - Any other path: at creation, a temporary file is created in the same folder (which proves the
///   folder exists and is writable); `write` fills it and renames it over the path. The path itself
///   must not be a folder.
///
/// Errors are `UsageError`s naming the option, the path, the errno in words and the fix; no Foundation
/// error text reaches the user.
final class OutputFile {
    let option: String
    let path: String
    private var temporaryPath: String?
    private var fd: Int32 = -1
    /// Not a regular file (a device, a FIFO): written directly, no temporary file.
    private var inPlace = false
    /// The file the temporary one is renamed over (the path, or the file its symbolic link names).
    private var renameTarget: String

    var isStandardOutput: Bool { path == "-" }

    init(option: String, path: String) throws {
        self.option = option
        self.path = path
        renameTarget = path
        guard path != "-" else { return }
        guard !path.isEmpty else { throw UsageError("\(option): the path is empty; name a file, e.g. \(option) report.json, or - for standard output") }
        var info = stat()
        let exists = stat(path, &info) == 0
        if exists && (info.st_mode & S_IFMT) == S_IFDIR {
            throw UsageError("\(option) \(path): is a folder (EISDIR); name a file in it, e.g. \(option) \(path.hasSuffix("/") ? path : path + "/")report.json")
        }
        if exists && (info.st_mode & S_IFMT) != S_IFREG {
            // A device, a FIFO, /dev/stdout: written in place (renaming over it would replace the device).
            let opened = open(path, O_WRONLY | O_CLOEXEC)
            guard opened >= 0 else {
                let error = Errno.current
                throw UsageError("\(option) \(path): cannot open: \(error); name a writable file")
            }
            fd = opened
            inPlace = true
            return
        }
        // A symbolic link: the file it points to is the one replaced, the link stays.
        var target = path
        if let resolved = realpath(path, nil) {
            target = String(cString: resolved)
            free(resolved)
        }
        let folder = Self.folder(of: target)
        let template = folder + "/." + Self.fileName(of: target) + ".XXXXXX"
        var bytes = Array(template.utf8CString)
        let created = bytes.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard created >= 0 else {
            let error = Errno.current
            throw UsageError("\(option) \(path): cannot create a file in \(folder): \(error); \(Self.fix(error, folder: folder, option: option))")
        }
        fd = created
        renameTarget = target
        _ = fcntl(created, F_SETFD, FD_CLOEXEC)
        temporaryPath = String(decoding: bytes.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit { discard() }

    /// Removes the temporary file (a run that ends without a report).
    func discard() {
        if fd >= 0 { _ = Glibc.close(fd); fd = -1 }
        if let temporaryPath { unlink(temporaryPath) }
        temporaryPath = nil
    }

    /// Writes `data` (to standard output for `-`; else to the temporary file, then renames it over the
    /// path); throws a `UsageError` with the path and the errno.
    func write(_ data: Data) throws {
        let option = option
        let target = path
        if isStandardOutput {
            var all = data
            if all.last != UInt8(ascii: "\n") { all.append(UInt8(ascii: "\n")) }
            try Self.writeAll(1, all) { "\(option) -: cannot write to standard output: \($0)" }
            return
        }
        if inPlace, fd >= 0 {
            defer { _ = Glibc.close(fd); fd = -1 }
            try Self.writeAll(fd, data) { "\(option) \(target): cannot write: \($0)" }
            return
        }
        guard let temporaryPath, fd >= 0 else { throw UsageError("\(option) \(path): already written") }
        try Self.writeAll(fd, data) { "\(option) \(target): cannot write: \($0); the previous file, if any, is left as it was" }
        if fsync(fd) != 0 {
            let error = Errno.current
            discard()
            throw UsageError("\(option) \(target): cannot write: \(error); the previous file, if any, is left as it was")
        }
        _ = fchmod(fd, 0o644)
        _ = Glibc.close(fd)
        fd = -1
        guard rename(temporaryPath, renameTarget) == 0 else {
            let error = Errno.current
            discard()
            throw UsageError("\(option) \(target): cannot replace the file: \(error); name a writable file")
        }
        self.temporaryPath = nil
    }

    private static func writeAll(_ fd: Int32, _ data: Data, _ message: (Errno) -> String) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw UsageError(message(Errno.current))
                }
                offset += n
            }
        }
    }

    static func folder(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let folder = String(path[..<slash])
        return folder.isEmpty ? "/" : folder
    }

    static func fileName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    private static func fix(_ error: Errno, folder: String, option: String) -> String {
        var info = stat()
        let folderExists = stat(folder, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
        switch error.rawValue {
        case ENOENT where folderExists:
            return "\(folder) takes no new files; name a file in a folder you can write to, e.g. \(option) /tmp/report.json"
        case ENOENT: return "create the folder first (mkdir -p \(folder)) or name a file in an existing one"
        case ENOTDIR: return "a part of \(folder) is a file, not a folder; name a file in an existing folder"
        case EACCES, EPERM, EROFS: return "name a file in a folder you can write to, e.g. \(option) /tmp/report.json"
        default: return "name a writable file, e.g. \(option) /tmp/report.json"
        }
    }
}

/// Prints a run's text report and writes its JSON report, the same for every command: the text goes to
/// standard error when standard output carries machine output (`--json -`, or another stream such as
/// `--connections-log -`: `standardOutputTaken`). Returns what failed (the JSON not written), for the
/// run's exit status; the text is printed either way.
func deliverReport(text: String, json: OutputFile?, standardOutputTaken: Bool = false, encode: () throws -> Data) -> [String] {
    if json?.isStandardOutput == true || standardOutputTaken {
        FileHandleOutput.standardError(text)
    } else {
        FileHandleOutput.standardOutput(text)
    }
    guard let json else { return [] }
    do { try json.write(try encode()) } catch { return ["\(error)"] }
    return []
}
