/// Why a load run refused to start: one message naming the problem, the numbers and the fix.
public struct LoadError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
