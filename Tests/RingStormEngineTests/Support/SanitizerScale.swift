#if canImport(Glibc)
import Glibc
#endif

/// (One file for both test targets: Tests/RingStormTests/Support links to it.)
/// The sanitizer the suite runs under, from `RINGSTORM_SANITIZER` (set by `Scripts/sanitizers`):
/// "address", "thread", or nil for a normal run.
let activeSanitizer: String? = {
    guard let value = getenv("RINGSTORM_SANITIZER") else { return nil }
    let name = String(cString: value)
    return name.isEmpty ? nil : name
}()

/// How much longer a bounded wait may take under the active sanitizer: 1 in a normal run, so a
/// normal run's bounds are unchanged. Only "until" waits are scaled (the bound is how long to wait
/// for something that should happen), never what a test asserts about timing.
let sanitizerScale: Double = {
    switch activeSanitizer {
    case "thread": return 10
    case "address": return 3
    case nil: return 1
    default: return 3
    }
}()
