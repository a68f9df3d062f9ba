import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

@main
struct RingStormCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstorm",
        abstract: "Large-scale TCP connection benchmarks on io_uring and epoll, with every connection's fate classified.",
        discussion: """
        Exit status: 0 the run went as asked; 1 a --threshold was crossed, no connection was established, \
        a worker failed or a report could not be written; 2 bad input (an option, an address, a budget), \
        refused before any connection starts. Reports go to standard output, everything else to standard error.

        Examples:
          ringstorm serve --listen 127.0.0.1:7200 -d 30s
          ringstorm load --target 127.0.0.1:7200 -c 1000 -d 10s
          ringstorm load -d 10s --threshold 'answered>=99.9%'
          ringstorm repro -d 5s
          ringstorm bench --html bench.html
        """,
        version: ringstormVersion,
        subcommands: [ReproCommand.self, Serve.self, Load.self, BenchCommand.self, Merge.self]
    )

    /// Every failure ends the same way: one line naming the problem and the fix; exit status 2 for bad
    /// input, 1 for a run that failed (`RunFailure`).
    static func main() {
        // Before any budget is checked: a container's 1024 soft limit is not the machine's (DescriptorLimit).
        DescriptorLimit.raiseSoftToHard()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let failure as RunFailure {
            FileHandleOutput.standardError(failure.lines.map { "ringstorm: \($0)\n" }.joined())
            Glibc.exit(1)
        } catch {
            let arguments = CommandLine.arguments.dropFirst()
            if let first = arguments.first, !first.hasPrefix("-"), !configuration.subcommands.contains(where: { $0._commandName == first }) {
                FileHandleOutput.standardError("ringstorm: unknown command '\(first)'; the commands are serve, load, merge, repro and bench (see ringstorm --help)\n")
                Glibc.exit(2)
            }
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Glibc.exit(0)
            }
            let message = error is CleanExit ? fullMessage(for: error) : message(for: error)
            FileHandleOutput.standardError("ringstorm: \(message)\n")
            Glibc.exit(2)
        }
    }
}

/// A duration option's value (`500ms`, `5s`, `2m`), or the one line that names the option and the fix.
func nanoseconds(_ text: String, _ option: String) throws -> Int64 {
    do { return try DurationParsing.nanoseconds(text) } catch { throw UsageError("\(option): \(error)") }
}

/// A size option's value (`64`, `4k`, `64KiB`), or the one line that names the option and the fix.
func bytes(_ text: String, _ option: String) throws -> Int {
    do { return try DurationParsing.bytes(text) } catch { throw UsageError("\(option): \(error)") }
}

/// The version `--version` prints.
let ringstormVersion = ringStormVersion

/// A run that happened but failed (a crossed threshold, nothing established, a report not written, a
/// worker that died): exit status 1, after the report was printed.
struct RunFailure: Error, CustomStringConvertible {
    let lines: [String]
    init(_ lines: [String]) { self.lines = lines }
    init(_ line: String) { lines = [line] }
    var description: String { lines.joined(separator: "\n") }
}

/// An error meant for the user: already says what went wrong and what to do.
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum FileHandleOutput {
    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(2, bytes.baseAddress, bytes.count) }
    }

    static func standardOutput(_ text: String) {
        var text = text
        text.withUTF8 { bytes in _ = Glibc.write(1, bytes.baseAddress, bytes.count) }
    }
}

extension Backend: ExpressibleByArgument {}

/// `HOST:PORT` as an argument, with the parser's own message on failure.
struct AddressArgument: ExpressibleByArgument {
    let address: SocketAddress
    init?(argument: String) {
        guard let a = try? SocketAddress(parsing: argument) else { return nil }
        address = a
    }
    init(_ address: SocketAddress) { self.address = address }

    /// `HOST:PORT` with a numeric host (names are not resolved: say so, and refuse `localhost`), an
    /// IPv6 host in brackets (`::1:7000` gets the hint to write `[::1]:7000`), and a port unless
    /// `portRequired` is false (`--listen 127.0.0.1:0` asks for a kernel-chosen port explicitly).
    static func parse(_ text: String, option: String, portRequired: Bool = true) throws -> SocketAddress {
        let host = text.hasPrefix("[") ? "" : String(text.split(separator: ":", omittingEmptySubsequences: false).first ?? "")
        if !text.hasPrefix("["), text.filter({ $0 == ":" }).count >= 2, let colon = text.lastIndex(of: ":"),
           UInt16(text[text.index(after: colon)...]) != nil, (try? SocketAddress(parsing: String(text[..<colon]))) != nil {
            throw ValidationError("\(option) \(text): an IPv6 address takes brackets before its port; write [\(text[..<colon])]:\(text[text.index(after: colon)...])")
        }
        if !host.isEmpty, host.contains(where: { $0.isLetter }), text.filter({ $0 == ":" }).count <= 1 {
            throw ValidationError("\(option) \(text): '\(host)' is a name, and names are not resolved; write a numeric address, "
                + "e.g. 127.0.0.1\(text.dropFirst(host.count).isEmpty ? ":7200" : String(text.dropFirst(host.count))) or [::1]:7200")
        }
        let address: SocketAddress
        do { address = try SocketAddress(parsing: text) } catch {
            throw ValidationError("\(option): \(error)")
        }
        if portRequired && !Self.hasPort(text) {
            throw ValidationError("\(option) \(text) has no port; write e.g. \(address.isIPv6 ? "[\(address.host)]" : address.host):7200"
                + (option == "--listen" ? " (port 0 asks the kernel for a free one)" : ""))
        }
        return address
    }

    /// Whether `text` names a port (`HOST:PORT`, `[V6]:PORT`).
    static func hasPort(_ text: String) -> Bool {
        if text.hasPrefix("[") { return text.contains("]:") }
        return text.filter { $0 == ":" }.count == 1
    }
}
