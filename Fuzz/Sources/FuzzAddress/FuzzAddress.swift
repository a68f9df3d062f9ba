import FuzzSupport
import RingStormEngine

// Input: one byte for the default port's low byte (port = byte * 257), then the text. Invariants: a
// parsed address prints as HOST:PORT or [V6]:PORT, and that text parses back to the same address
// whatever the default port; a failure does not crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let defaultPort = UInt16(data[0]) &* 257
    let text = String(decoding: UnsafeBufferPointer(start: data + 1, count: size - 1), as: UTF8.self)
    guard let address = try? SocketAddress(parsing: text, defaultPort: defaultPort) else { return 0 }
    let printed = address.description
    do {
        let again = try SocketAddress(parsing: printed, defaultPort: defaultPort &+ 1)
        check(again == address, "'\(text)' -> '\(printed)' -> '\(again)'")
        check(again.description == printed, "'\(printed)' prints as '\(again.description)'")
    } catch {
        fail("'\(text)' parsed, but its description '\(printed)' does not: \(error)")
    }
    return 0
}

@_cdecl("FuzzAddress_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
