/// HTTP responses by status class (`--protocol http`): a 2xx is a success; any other final status is an
/// answer, but not a success, and is counted here as what it is.
public struct HTTPStatusCounts: Codable, Sendable, Equatable {
    public var success = 0
    public var redirection = 0
    public var clientError = 0
    public var serverError = 0
    /// Final statuses outside 200...599.
    public var other = 0

    public init() {}

    @inline(__always)
    public mutating func record(status: Int) {
        switch status {
        case 200..<300: success &+= 1
        case 300..<400: redirection &+= 1
        case 400..<500: clientError &+= 1
        case 500..<600: serverError &+= 1
        default: other &+= 1
        }
    }

    public var total: Int { success + redirection + clientError + serverError + other }
    /// Answers that are not successes.
    public var non2xx: Int { total - success }

    public mutating func merge(_ b: HTTPStatusCounts) {
        success += b.success
        redirection += b.redirection
        clientError += b.clientError
        serverError += b.serverError
        other += b.other
    }

    enum CodingKeys: String, CodingKey {
        case success = "2xx", redirection = "3xx", clientError = "4xx", serverError = "5xx", other
    }
}
