import CURing
import Glibc

/// io_uring features beyond what the backend needs, each one measured on its own
/// (`Docs/benchmarks.md`, "io_uring features, one at a time") and switchable, so a user can compare
/// with and without it on their own kernel. A feature the kernel refuses is dropped at set-up with a
/// note (`EngineStatistics.notes`); the engine runs without it.
///
/// What is always used and not listed here (no measured reason to turn it off): `SINGLE_ISSUER |
/// DEFER_TASKRUN` (`EngineConfiguration.deferTaskRun`), the registered ring descriptor and batch
/// waiting (`batchWaitMicroseconds`). `IORING_SETUP_NO_SQARRAY` is not offered: liburing 2.3 maps the
/// rings itself and writes its SQ index array at offset 0 when the kernel reports none, over the ring's
/// head and tail (measured: the submitted NOP came back as another SQE's).
public struct UringFeatures: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `IOU_PBUF_RING_INC` (kernel 6.12): a receive takes only the bytes it needs from a provided
    /// buffer, and the next receive (of any connection) continues in the same buffer. Small messages
    /// then share buffers instead of each taking one, so a burst of receives no longer makes the ring
    /// grow and its memory resident.
    public static let incrementalBuffers = UringFeatures(rawValue: 1 << 0)

    /// `IORING_RECVSEND_BUNDLE` (kernel 6.10): one multishot receive completion covers as many
    /// consecutive ring buffers as the bytes waiting fill, instead of one completion per buffer.
    public static let receiveBundles = UringFeatures(rawValue: 1 << 1)

    /// Direct descriptors (fixed files): an accepted socket is installed in the ring's own file table
    /// instead of the process's descriptor table (multishot accept with `IORING_FILE_INDEX_ALLOC`,
    /// kernel 5.19), and every later operation on it (receive, send, the abortive close's option,
    /// close) names its table index with `IOSQE_FIXED_FILE`: no descriptor-table lookup and file
    /// reference count per operation, and no process descriptor per connection. The table is sized to
    /// the engine's connection slots, at most RLIMIT_NOFILE (the kernel refuses more). Needs kernel 6.7
    /// for the one option set after accept (`SO_LINGER` through the ring, `UringDriver`); an older
    /// kernel drops the feature with a note. Connects (the load generator) still use descriptors.
    ///
    /// With the table full, an accept fails with ENFILE after the kernel has already taken the
    /// connection off the accept queue and closed it (the client sees RST if its data had arrived, FIN
    /// if not): counted in `EngineStatistics.directTableFull`, and the listener pauses as for EMFILE.
    public static let directDescriptors = UringFeatures(rawValue: 1 << 2)

    /// What the engine uses unless told otherwise: the features that won their measurement.
    public static let defaults: UringFeatures = [.incrementalBuffers]

    /// Every feature with its command-line name, in a fixed order.
    public static let named: [(name: String, feature: UringFeatures)] = [
        ("incremental-buffers", .incrementalBuffers),
        ("bundles", .receiveBundles),
        ("direct-descriptors", .directDescriptors),
    ]

    /// The features' names, comma-separated ("none" for the empty set).
    public var names: String {
        let list = Self.named.filter { contains($0.feature) }.map(\.name)
        return list.isEmpty ? "none" : list.joined(separator: ",")
    }

    /// A comma-separated list of names, "none" or "default"; nil names the first unknown word.
    public static func parse(_ text: String) -> Result<UringFeatures, UnknownFeature> {
        var features: UringFeatures = []
        for word in text.split(separator: ",", omittingEmptySubsequences: false).map({ String($0).lowercased() }) {
            switch word {
            case "none": continue
            case "default", "defaults": features.formUnion(.defaults)
            default:
                guard let found = named.first(where: { $0.name == word }) else { return .failure(UnknownFeature(word: word)) }
                features.formUnion(found.feature)
            }
        }
        return .success(features)
    }

    /// A word of a feature list that names no feature.
    public struct UnknownFeature: Error, Sendable, Equatable {
        public let word: String
        public init(word: String) { self.word = word }
    }
}

/// What set-up does when the kernel answers a feature's registration: one decision, tested apart
/// from any kernel.
package enum FeatureProbe {
    /// Whether receives are armed as bundles: asked for, and the ring's features say the kernel has them.
    package static func receiveBundles(requested: UringFeatures, ringFeatures: UInt32) -> (use: Bool, note: String?) {
        guard requested.contains(.receiveBundles) else { return (false, nil) }
        if ringFeatures & curing_feat_recvsend_bundle != 0 { return (true, nil) }
        return (false, "receive bundles (IORING_RECVSEND_BUNDLE, kernel 6.10) not in this kernel's features; one buffer per completion")
    }

    /// After registering the buffer ring with `IOU_PBUF_RING_INC` returned `result` (0 or a negated
    /// errno): keep it, or register again without it and say why. EINVAL is an older kernel (before
    /// 6.12) refusing the flag; any other error is not about the flag and is left to the plain path to
    /// report.
    package static func incrementalBuffers(registrationResult result: Int32) -> (use: Bool, note: String?) {
        if result >= 0 { return (true, nil) }
        if result == -EINVAL {
            return (false, "incremental buffer consumption (IOU_PBUF_RING_INC, kernel 6.12) refused (EINVAL); using whole buffers")
        }
        return (false, nil)
    }

    /// How many entries the direct-descriptor table gets: one per connection slot (`requested`, the
    /// slots unless a test asks for fewer), but the kernel refuses a table larger than RLIMIT_NOFILE's
    /// soft limit (EMFILE), so at most that, with a note: accepts beyond it fail with ENFILE.
    package static func directTableSize(requested: Int, slots: Int, fileLimit: Int) -> (size: Int, note: String?) {
        let wanted = max(1, min(requested, slots))
        guard fileLimit > 0, wanted > fileLimit else { return (wanted, nil) }
        return (fileLimit, "direct descriptor table capped at \(fileLimit) entries by RLIMIT_NOFILE (for \(slots) slots): accepts beyond it fail with ENFILE")
    }

    /// Whether accepted sockets become direct descriptors, after the ring's setsockopt was tried
    /// (`setOptionResult`: 0 or a negated errno) and, if that worked, the sparse table registered
    /// (`registrationResult`, nil when not tried). Either refusal keeps descriptors, with a note.
    package static func directDescriptors(setOptionResult: Int32, registrationResult: Int32?) -> (use: Bool, note: String?) {
        if setOptionResult < 0 {
            return (false, "direct descriptors need SOCKET_URING_OP_SETSOCKOPT (kernel 6.7) for an abortive close; refused (\(Errno.fromNegated(setOptionResult).name)): accepted sockets use descriptors")
        }
        guard let registration = registrationResult else { return (false, nil) }
        if registration < 0 {
            return (false, "direct descriptors: registering the sparse file table refused (\(Errno.fromNegated(registration).name)): accepted sockets use descriptors")
        }
        return (true, nil)
    }
}
