import Foundation

/// Runs a program found on PATH (or in /usr/sbin, /sbin), in `directory` when given, and returns its
/// status, standard error and standard output (both small: read after the exit). Status 127 when it
/// could not be started (as `env` says for a program it does not find).
@discardableResult
func runTool(_ arguments: [String], in directory: URL? = nil) -> (status: Int32, errors: String, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    var environment = ProcessInfo.processInfo.environment
    environment["PATH"] = (environment["PATH"].map { $0 + ":" } ?? "") + "/usr/sbin:/sbin"
    process.environment = environment
    if let directory { process.currentDirectoryURL = directory }
    let errors = Pipe()
    let output = Pipe()
    process.standardError = errors
    process.standardOutput = output
    do { try process.run() } catch { return (127, "\(error)", "") }
    let out = output.fileHandleForReading.readDataToEndOfFile()
    let data = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self), String(decoding: out, as: UTF8.self))
}
