import ArgumentParser
import Glibc
import RingStorm
import RingStormEngine

@main
struct RingStormCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringstorm",
        abstract: "Large-scale TCP connection benchmarks on io_uring and epoll, with every connection's fate classified.",
        subcommands: [ReproCommand.self, Serve.self, Load.self]
    )

    /// Every failure ends the same way: one line naming the problem and the fix, exit status 2.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
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

    static func parse(_ text: String, option: String) throws -> SocketAddress {
        do { return try SocketAddress(parsing: text) } catch {
            throw ValidationError("\(option): \(error)")
        }
    }
}
