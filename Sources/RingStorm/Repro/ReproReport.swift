import Foundation
import RingStormEngine

/// What `ringstorm repro` found: the server's report beside each client group's, and an explanation
/// written from those numbers. `--json FILE` writes this value (keys sorted).
public struct ReproReport: Codable, Sendable {
    public var policy: EMFILEPolicy
    public var maxFDs: Int
    public var clients: Int
    public var silentClients: Int
    public var registrationBytes: Int
    public var backend: String
    public var address: String
    public var durationSeconds: Double
    /// The client timeouts that decide what the clients report, in seconds.
    public var requestTimeoutSeconds: Double
    public var registerTimeoutSeconds: Double
    public var intervalSeconds: Double
    /// What the server saw while the clients ran: its last report before their deadline.
    public var server: ServerReport
    /// Its final report, which also counts what it did after the clients left (e.g. with `pause`,
    /// accepting the connections left in its queue by clients that had given up).
    public var serverFinal: ServerReport
    /// CPU the server process used over its whole life (`wait4`).
    public var serverCPU: ResourceUsage
    /// What the registering clients saw.
    public var registering: LoadReport
    /// What the silent clients saw (nil without any).
    public var silent: LoadReport?
    /// The explanation, one paragraph per element.
    public var explanation: [String]
    public var notes: [String]

    public init(configuration c: Repro.Configuration, address: SocketAddress, server: ServerReport, serverFinal: ServerReport,
                serverCPU: ResourceUsage,
                registering: LoadReport, silent: LoadReport?, notes: [String] = []) {
        policy = c.policy
        maxFDs = c.maxFDs
        clients = c.clients
        silentClients = c.silent
        registrationBytes = c.registrationSize
        backend = c.backend.rawValue
        self.address = address.description
        durationSeconds = Double(c.durationNanoseconds) / 1e9
        requestTimeoutSeconds = Double(c.requestTimeoutNanoseconds) / 1e9
        registerTimeoutSeconds = Double(c.registerTimeoutNanoseconds) / 1e9
        intervalSeconds = Double(c.intervalNanoseconds) / 1e9
        self.server = server
        self.serverFinal = serverFinal
        self.serverCPU = serverCPU
        self.registering = registering
        self.silent = silent
        self.notes = notes
        explanation = []
        explanation = Self.explain(self)
    }

    enum CodingKeys: String, CodingKey {
        case policy
        case maxFDs = "max_fds"
        case clients
        case silentClients = "silent_clients"
        case registrationBytes = "registration_bytes"
        case backend, address
        case durationSeconds = "duration_s"
        case requestTimeoutSeconds = "request_timeout_s"
        case registerTimeoutSeconds = "register_timeout_s"
        case intervalSeconds = "interval_s"
        case server
        case serverFinal = "server_final"
        case serverCPU = "server_cpu"
        case registering, silent, explanation, notes
    }

    public func json(pretty: Bool = true) throws -> Data { try ReportJSON.encode(self, pretty: pretty) }

    public init(json: Data) throws { self = try JSONDecoder().decode(Self.self, from: json) }

    // MARK: Numbers the text and the explanation use

    /// Failed accepts that mean "out of descriptors" (EMFILE; ENFILE, ENOBUFS, ENOMEM also pause accepting).
    public var descriptorFailures: Int {
        ["EMFILE", "ENFILE", "ENOBUFS", "ENOMEM"].reduce(0) { $0 + (server.acceptErrors[$1] ?? 0) }
    }

    /// The server's CPU use as a share of one core over its whole run (0...1).
    public var serverCPUShare: Double {
        serverFinal.durationSeconds > 0 ? serverCPU.cpuSeconds / serverFinal.durationSeconds : 0
    }

    /// `outcome` in any phase of `report`.
    static func total(_ report: LoadReport?, _ outcome: FailureOutcome) -> Int {
        guard let report else { return 0 }
        return Phase.allCases.reduce(0) { $0 + report.outcomes[$1][outcome] }
    }

    /// Silent connections that neither failed nor were closed or reset: still connected at the end, having
    /// seen nothing.
    public var silentSawNothing: Int {
        guard let silent else { return 0 }
        let ended = Phase.allCases.filter { $0 != .connect }.reduce(0) { $0 + silent.outcomes[$1].total }
        return max(silent.connections.established - ended, 0)
    }

    // MARK: The explanation

    static func explain(_ r: ReproReport) -> [String] {
        let n: (Int) -> String = { ReportFormat.count($0) }
        let reg = r.registering
        let registered = reg.latency.register.count
        let resetRegistering = reg.outcomes.register.reset
        let closedRegistering = reg.outcomes.register.closed
        let timedOutRegistering = reg.outcomes.register.responseTimeout
        let silentClosed = total(r.silent, .closed)
        let silentReset = total(r.silent, .reset)
        let silentNothing = r.silentSawNothing
        let failures = r.descriptorFailures
        let seconds = max(r.server.durationSeconds, 0.001)
        let cpu = ReportFormat.decimal(r.serverCPU.cpuSeconds, places: 2)
        let percent = ReportFormat.decimal(r.serverCPUShare * 100, places: r.serverCPUShare < 0.1 ? 1 : 0)
        let cpuText = "\(cpu) s of CPU in \(ReportFormat.decimal(r.serverFinal.durationSeconds, places: 1)) s (\(percent)% of a core)"
        let timeout = DurationParsing.format(nanoseconds: Int64(r.requestTimeoutSeconds * 1e9))
        var paragraphs: [String] = []

        // What ran out.
        if failures == 0 && r.server.shed == 0 {
            var text = "The server never ran out of descriptors: --max-fds \(r.maxFDs) left room for every connection it was given "
                + "(at most \(n(r.server.peakOpen)) open at once), so no accept failed and no one was shed or left waiting."
            if registered >= r.clients {
                text += " All \(n(r.clients)) registering clients registered, and \(n(reg.requests.answered)) requests were answered."
            }
            if r.silentClients > 0 {
                if silentClosed > 0 && r.server.registerTimeouts > 0 {
                    text += " The silent clients never sent REGISTER, so the server's register timeout "
                        + "(\(DurationParsing.format(nanoseconds: Int64(r.registerTimeoutSeconds * 1e9)))) closed them with ERROR and FIN: "
                        + "\(n(silentClosed)) of \(n(r.silentClients))."
                } else if silentNothing > 0 {
                    text += " \(n(silentNothing)) of the \(n(r.silentClients)) silent clients stayed connected and heard nothing until the end."
                }
            }
            paragraphs.append(text)
            paragraphs.append("To see the seed, give the server fewer descriptors than clients, e.g. "
                + "ringstorm repro --max-fds 64 --connections 200 --silent-connections 50.")
            return paragraphs + others(r)
        }
        let errors = r.server.acceptErrors.keys.sorted().filter { (r.server.acceptErrors[$0] ?? 0) > 0 }
            .map { "\($0) \(n(r.server.acceptErrors[$0]!))" }.joined(separator: ", ")
        paragraphs.append("The server ran out of descriptors: --max-fds \(r.maxFDs) let it hold at most \(n(r.server.peakOpen)) "
            + "connections, and \(n(r.clients + r.silentClients)) clients came. Accept failed \(n(failures)) times (\(errors)).")

        switch r.policy {
        case .shed:
            var text = "With --on-emfile shed it took each queued connection off its accept queue with a spare descriptor and "
                + "closed it at once (\(n(r.server.shed)) shed, in one batch every 100 ms), so no one waited long."
            if resetRegistering > 0 {
                text += " \(n(resetRegistering)) connections of the registering clients were reset (RST) while waiting for REGISTERED: "
                    + "their \(r.registrationBytes)-byte registration had already arrived, unread, and closing a socket with unread "
                    + "data sends RST instead of FIN."
            }
            if registered < r.clients {
                text += " Only \(n(registered)) of the \(n(r.clients)) registering clients got in; the others kept reconnecting "
                    + "with backoff: \(n(reg.connections.attempted)) connections in all."
            }
            if closedRegistering > 0 {
                text += " \(n(closedRegistering)) saw FIN instead of RST: the server shed them before their registration arrived, "
                    + "a race an idle loopback server sometimes wins (a busy server, like the seed's, reaches its queue later and "
                    + "finds the data there)."
            }
            paragraphs.append(text)
            if r.silentClients > 0 {
                var silentText = ""
                if silentClosed > 0 {
                    silentText = "The silent clients had sent nothing, so the same accept-and-close was an orderly FIN: "
                        + "\(n(silentClosed)) of \(n(r.silentClients)) saw the connection closed (telnet prints "
                        + "\"Connection closed by foreign host\")."
                }
                if silentReset > 0 {
                    silentText += " \(n(silentReset)) silent ones were reset (RST) instead."
                }
                if silentNothing > 0 {
                    silentText += " \(n(silentNothing)) silent ones got in (a descriptor was free when they came) and heard nothing."
                }
                if !silentText.isEmpty { paragraphs.append(silentText.trimmingLeadingSpace) }
            }
            if resetRegistering > 0 && (r.silentClients == 0 || silentClosed > 0) {
                paragraphs.append("This is the seed's signature: one server action, accept and close at once, resets the clients "
                    + "that spoke first" + (r.silentClients > 0 ? " and closes politely on the ones that said nothing" : "")
                    + "; only the unread bytes in the socket make the difference.")
            } else {
                var missing: [String] = []
                if resetRegistering == 0 { missing.append("no registering client was reset") }
                if r.silentClients > 0 && silentClosed == 0 { missing.append("no silent client saw FIN") }
                paragraphs.append("The seed's signature (RST for registering clients, FIN for silent ones) did not show in full: "
                    + missing.joined(separator: ", ") + ".")
            }
        case .pause, .spin:
            var text: String
            let rate = ReportFormat.count(Int((Double(failures) / seconds).rounded()))
            if r.policy == .pause {
                text = "With --on-emfile pause it stopped accepting until a descriptor freed, trying again every 200 ms: "
                    + "\(n(failures)) failed accepts in \(ReportFormat.decimal(seconds, places: 1)) s, about \(rate) per second."
            } else {
                text = "With --on-emfile spin it retried accept at once, every time: \(n(failures)) failed accepts, about \(rate) "
                    + "per second, and \(cpuText) spent accepting nothing."
            }
            paragraphs.append(text)
            var clientsText = r.policy == .spin ? "The clients saw what pause gives them. " : ""
            if timedOutRegistering > 0 {
                clientsText += "Clients past the limit still connected, because the kernel completes the handshake and "
                    + "acknowledges the \(r.registrationBytes)-byte registration while the connection waits in the accept queue; "
                    + "but no REGISTERED came: \(n(timedOutRegistering)) registrations got no answer within \(timeout) "
                    + "(response_timeout while registering; no RST, no FIN) and were retried."
            }
            if r.silentClients > 0 && silentNothing > 0 {
                clientsText += " The silent clients waited in the same queue: \(n(silentNothing)) of \(n(r.silentClients)) saw "
                    + "nothing at all, neither FIN nor RST, until the end (telnet shows \"Connected\" and then hangs)."
            }
            if !clientsText.isEmpty { paragraphs.append(clientsText.trimmingLeadingSpace) }
            if r.policy == .pause {
                paragraphs.append(r.serverCPUShare < 0.1
                    ? "Waiting cost the server little: \(cpuText). No one was reset: the failure shows as timeouts, not resets "
                        + "(the seed's resets come from a server that sheds)."
                    : "The server used \(cpuText) while paused; a pause should cost well under 10% of a core.")
            }
        }
        return paragraphs + afterwards(r) + others(r)
    }

    /// What the server did once the clients had gone, when that is more than closing their connections.
    private static func afterwards(_ r: ReproReport) -> [String] {
        let n: (Int) -> String = { ReportFormat.count($0) }
        let accepted = r.serverFinal.accepted - r.server.accepted
        guard accepted > 0 else { return [] }
        let registered = r.serverFinal.registered - r.server.registered
        let reset = r.serverFinal.resetByPeer - r.server.resetByPeer
        var text = "After the clients stopped, their connections closed and freed descriptors, and the server accepted "
            + "\(n(accepted)) more from its queue: connections whose clients had long given up."
        if registered > 0 {
            text += " It still read \(n(registered)) registrations there (the kernel had kept the bytes)"
                + (reset > 0 ? " and was reset \(n(reset)) times answering them" : "") + "."
        }
        return [text + " Those are counted only in server_final of the JSON."]
    }

    /// Endings of registering connections the paragraphs above do not account for.
    private static func others(_ r: ReproReport) -> [String] {
        var items: [String] = []
        for phase in Phase.allCases {
            for item in r.registering.outcomes[phase].nonZero {
                let explained = phase == .register && [.reset, .closed, .responseTimeout].contains(item.outcome)
                if !explained { items.append("\(phase): \(item.outcome.name) \(ReportFormat.count(item.count))") }
            }
        }
        guard !items.isEmpty else { return [] }
        return ["Other endings of registering connections: " + items.joined(separator: ", ") + "."]
    }
}

extension String {
    fileprivate var trimmingLeadingSpace: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        return String(s)
    }
}
