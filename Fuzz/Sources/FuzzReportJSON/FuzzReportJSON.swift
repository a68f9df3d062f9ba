import FuzzSupport
import Foundation
import RingStorm

// Input: one byte choosing the document (LoadReport, ServerReport, LoadWorkerReport), then the JSON.
// Invariants: reading never crashes (an error is fine); a document that reads writes back (json()) to
// one that reads as an equal report, and writing that again gives the same bytes.
func roundTrip<R: Equatable>(_ data: Data, read: (Data) throws -> R, write: (R) throws -> Data) {
    guard let report = try? read(data) else { return }
    let written: Data
    do { written = try write(report) } catch { fail("a report that reads does not write: \(error)") }
    let again: R
    do { again = try read(written) } catch {
        fail("what json() wrote does not read: \(error)\n\(String(decoding: written, as: UTF8.self))")
    }
    check(again == report, "round trip changed the report:\n\(String(decoding: written, as: UTF8.self))")
    let rewritten = try? write(again)
    check(rewritten == written, "writing twice differs")
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let json = Data(bytes: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0: roundTrip(json, read: { try LoadReport(json: $0) }, write: { try $0.json(pretty: false) })
    case 1: roundTrip(json, read: { try ServerReport(json: $0) }, write: { try $0.json(pretty: false) })
    default: roundTrip(json, read: { try LoadWorkerReport(json: $0) }, write: { try $0.json() })
    }
    return 0
}

@_cdecl("FuzzReportJSON_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzz)
}
