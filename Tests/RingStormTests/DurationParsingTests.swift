import Testing
@testable import RingStorm

@Suite("durations and sizes")
struct DurationParsingTests {
    @Test("durations with units", arguments: [
        ("500ms", Int64(500_000_000)),
        ("5s", 5_000_000_000),
        ("2m", 120_000_000_000),
        ("1h", 3_600_000_000_000),
        ("250us", 250_000),
        ("250µs", 250_000),
        ("750ns", 750),
        ("1.5s", 1_500_000_000),
        ("0.5ms", 500_000),
        (".25s", 250_000_000),
        ("1m30s", 90_000_000_000),
        ("1h2m3s4ms", 3_723_004_000_000),
        (" 10s ", 10_000_000_000),
        ("10 s", 10_000_000_000),
        ("5S", 5_000_000_000),
        ("0", 0),
        ("0s", 0),
        ("1.0000000005s", 1_000_000_001),
    ])
    func durations(text: String, nanoseconds: Int64) throws {
        #expect(try DurationParsing.nanoseconds(text) == nanoseconds)
    }

    @Test("a plain number is seconds", arguments: [("5", Int64(5_000_000_000)), ("0.25", 250_000_000), ("30", 30_000_000_000)])
    func plainNumbers(text: String, nanoseconds: Int64) throws {
        #expect(try DurationParsing.nanoseconds(text) == nanoseconds)
    }

    @Test("bad durations name the problem and the fix")
    func badDurations() {
        func message(_ text: String) -> String? {
            do { _ = try DurationParsing.nanoseconds(text); return nil } catch { return error.message }
        }
        #expect(message("5x") == "'5x' is not a duration: unknown unit 'x' (use ns, us, ms, s, m or h); write e.g. 500ms, 5s, 2m")
        #expect(message("")?.contains("it is empty") == true)
        #expect(message("ms")?.contains("does not start with a number") == true)
        #expect(message("-5s")?.contains("cannot be negative") == true)
        #expect(message("1m30")?.contains("'30' has no unit") == true)
        #expect(message("1.2.3s") != nil)
        #expect(message("99999999999999999999s")?.contains("too long") == true)
        #expect(message("9999999h")?.contains("too long") == true)
        for bad in ["5x", "", "abc", "1d", "5 5s"] {
            let text = message(bad)
            #expect(text?.hasPrefix("'\(bad)' is not a duration: ") == true, "\(bad)")
            #expect(text?.hasSuffix("write e.g. 500ms, 5s, 2m") == true, "\(bad)")
        }
        do {
            _ = try DurationParsing.nanoseconds("5x")
        } catch {
            #expect(error.input == "5x")
            #expect("\(error)" == error.message)
        }
    }

    @Test("durations format back to what parses to them", arguments: [
        Int64(0), 750, 250_000, 500_000_000, 1_500_000_000, 5_000_000_000, 90_000_000_000, 120_000_000_000, 3_600_000_000_000,
    ])
    func format(nanoseconds: Int64) throws {
        #expect(try DurationParsing.nanoseconds(DurationParsing.format(nanoseconds: nanoseconds)) == nanoseconds)
    }

    @Test("format picks the largest exact unit")
    func formatNames() {
        #expect(DurationParsing.format(nanoseconds: 1_500_000_000) == "1500ms")
        #expect(DurationParsing.format(nanoseconds: 2_000_000_000) == "2s")
        #expect(DurationParsing.format(nanoseconds: 120_000_000_000) == "2m")
        #expect(DurationParsing.format(nanoseconds: 1_001) == "1001ns")
    }

    @Test("sizes", arguments: [
        ("64", 64),
        ("64b", 64),
        ("4k", 4096),
        ("4K", 4096),
        ("4KB", 4096),
        ("64KiB", 65_536),
        ("1m", 1_048_576),
        ("1MiB", 1_048_576),
        ("2g", 2_147_483_648),
        ("1.5k", 1536),
        ("0", 0),
        (" 16 KiB ", 16_384),
    ])
    func sizes(text: String, bytes: Int) throws {
        #expect(try DurationParsing.bytes(text) == bytes)
    }

    @Test("bad sizes name the problem and the fix")
    func badSizes() {
        func message(_ text: String) -> String? {
            do { _ = try DurationParsing.bytes(text); return nil } catch { return error.message }
        }
        #expect(message("4x") == "'4x' is not a size: unknown unit 'x' (use k, m or g, or KiB, MiB, GiB); write e.g. 64, 4k, 64KiB, 1m")
        #expect(message("-1k")?.contains("cannot be negative") == true)
        #expect(message("0.3k")?.contains("not a whole number of bytes") == true)
        #expect(message("k")?.contains("does not start with a number") == true)
        #expect(message("")?.contains("it is empty") == true)
        #expect(message("4k4")?.contains("unexpected '4'") == true)
        #expect(message("99999999999t")?.contains("too large") == true)
    }
}
