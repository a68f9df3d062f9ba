import Foundation
import Glibc

/// `--start-at TIME`: the wall clock at which every shard starts, so shards on many hosts load the
/// target together. RFC 3339 (`2026-12-02T07:00:00Z`, `2026-12-02T08:00:00.250+01:00`) or Unix seconds
/// (`1796281200`, `1796281200.25`).
public enum StartTime {
    /// Unix nanoseconds; nil when `text` is neither form.
    public static func parse(_ text: String) -> Int64? {
        if let seconds = Double(text), seconds.isFinite, seconds >= 0, seconds < 1e10 {
            return Int64((seconds * 1e9).rounded())
        }
        return parseRFC3339(text)
    }

    static func parseRFC3339(_ text: String) -> Int64? {
        // date T time [.fraction] (Z | ±hh:mm)
        let s = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= s.count else { return nil }
            var n = 0
            for b in s[from..<(from + count)] {
                guard b >= 48 && b <= 57 else { return nil }
                n = n * 10 + Int(b - 48)
            }
            return n
        }
        guard s.count >= 20, s[4] == UInt8(ascii: "-"), s[7] == UInt8(ascii: "-"),
              s[10] == UInt8(ascii: "T") || s[10] == UInt8(ascii: "t") || s[10] == UInt8(ascii: " "),
              s[13] == UInt8(ascii: ":"), s[16] == UInt8(ascii: ":"),
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var fraction: Int64 = 0
        if i < s.count, s[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < s.count, s[i] >= 48, s[i] <= 57 {
                if digits < 9 { fraction = fraction * 10 + Int64(s[i] - 48); digits += 1 }
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<9 { fraction *= 10 }
        }
        guard i < s.count else { return nil }
        var offsetSeconds = 0
        if s[i] == UInt8(ascii: "Z") || s[i] == UInt8(ascii: "z") {
            i += 1
        } else if s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") {
            guard i + 6 == s.count, s[i + 3] == UInt8(ascii: ":"), let h = number(i + 1, 2), let m = number(i + 4, 2), h < 24, m < 60 else { return nil }
            offsetSeconds = (h * 3600 + m * 60) * (s[i] == UInt8(ascii: "+") ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == s.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Int64(timegm(&parts)) - Int64(offsetSeconds)
        return seconds * 1_000_000_000 + fraction
    }

    /// Sleeps until the wall clock reaches `unixNanoseconds` (or `stopped()` says so, checked every
    /// 100 ms); how late it woke, in nanoseconds (0 or more).
    package static func wait(until unixNanoseconds: Int64, stopped: () -> Bool) -> Int64 {
        while true {
            let now = wallClockNanoseconds()
            if now >= unixNanoseconds || stopped() { return max(0, now - unixNanoseconds) }
            let step = min(unixNanoseconds - now, 100_000_000)
            var ts = timespec(tv_sec: Int(step / 1_000_000_000), tv_nsec: Int(step % 1_000_000_000))
            nanosleep(&ts, nil)
        }
    }
}
