import RingStormEngine

/// Parses source addresses (`ringstorm load --source`): addresses separated by commas, each a single address or an IPv4 range
/// `127.0.0.2-127.0.0.50` (both ends included). Ports are ignored (the kernel picks one per connection:
/// `IP_BIND_ADDRESS_NO_PORT`).
public enum SourceAddresses {
    /// The most addresses a range may expand to.
    public static let maximumCount = 65_536

    public static func parse(_ text: String) throws(LoadError) -> [SocketAddress] {
        var result: [SocketAddress] = []
        for part in text.split(separator: ",").map({ String($0).trimmingCharacters }) where !part.isEmpty {
            if let dash = part.firstIndex(of: "-") {
                let low = try address(String(part[..<dash]), in: text)
                let high = try address(String(part[part.index(after: dash)...]), in: text)
                guard let a = low.ipv4Value, let b = high.ipv4Value else {
                    throw .sources(part, .rangeNotIPv4)
                }
                guard a <= b else { throw .sources(part, .rangeBackwards) }
                guard Int(b - a) + 1 + result.count <= maximumCount else {
                    throw .sources(part, .tooMany(maximum: maximumCount))
                }
                for v in a...b { result.append(SocketAddress(ipv4Value: v, port: 0)) }
            } else {
                result.append(try address(part, in: text))
            }
        }
        if result.isEmpty { throw .sources(text, .empty) }
        return result
    }

    private static func address(_ text: String, in whole: String) throws(LoadError) -> SocketAddress {
        do {
            return try SocketAddress(parsing: text)
        } catch {
            throw .sources(text, .unparsable("\(error)"))
        }
    }
}

extension String {
    fileprivate var trimmingCharacters: String {
        var s = Substring(self)
        while let c = s.first, c == " " { s.removeFirst() }
        while let c = s.last, c == " " { s.removeLast() }
        return String(s)
    }
}
