import CURing
import Glibc

/// io_uring features beyond what the backend needs, each one measured on its own
/// (`Docs/benchmarks.md`, "io_uring features, one at a time") and switchable, so a user can compare
/// with and without it on their own kernel. A feature the kernel refuses is dropped at set-up with a
/// note (`EngineStatistics.notes`); the engine runs without it.
///
/// What is always used and not listed here (no measured reason to turn it off): `SINGLE_ISSUER |
/// DEFER_TASKRUN` (`EngineConfiguration.deferTaskRun`), the registered ring descriptor and batch
/// waiting (`batchWaitMicroseconds`).
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

    /// `IORING_SETUP_NO_SQARRAY` (kernel 6.6): the submission ring has no index array, SQE slot i is
    /// submitted i-th, so neither side reads or writes the array per submission. liburing 2.3's
    /// `io_uring_queue_init_params` would write its identity array at the offset the kernel reports for
    /// it, 0 for such a ring: over the ring's head and tail. The ring is set up by the shim
    /// (`curing_queue_init_no_sqarray`), which maps it with liburing and skips that write.
    public static let noSQArray = UringFeatures(rawValue: 1 << 3)

    /// `IORING_OP_SEND_ZC` (kernel 6.0) for sends of at least `EngineConfiguration.zeroCopySendThreshold`
    /// bytes: the kernel sends from the connection's send buffer instead of copying it into socket
    /// buffers. Each such send has a second completion (the notification) once the kernel no longer
    /// reads the bytes; until then that half of the send buffer is neither reused nor freed, also after
    /// the connection closed (`ZeroCopyRetainer`). Not registered buffers: the send buffers are
    /// per-connection allocations that grow, not one arena that could be registered once.
    public static let zeroCopySends = UringFeatures(rawValue: 1 << 4)

    /// What the engine uses unless told otherwise: the features that won their measurement.
    public static let defaults: UringFeatures = [.incrementalBuffers]

    /// Every feature with its command-line name, in a fixed order.
    public static let named: [(name: String, feature: UringFeatures)] = [
        ("incremental-buffers", .incrementalBuffers),
        ("bundles", .receiveBundles),
        ("direct-descriptors", .directDescriptors),
        ("no-sqarray", .noSQArray),
        ("send-zc", .zeroCopySends),
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

    /// How `curing_queue_init_no_sqarray` set the ring up (`curing_no_sqarray_outcome`): whether the
    /// ring has no SQ array, how many `io_uring_setup` calls it took, and the note for a fallback.
    /// Failed: the caller reports the error (or retries with other flags), nothing to note.
    package static func noSQArray(setupOutcome outcome: Int32) -> (use: Bool, setups: Int, note: String?) {
        switch UInt32(bitPattern: outcome) {
        case CURING_NO_SQARRAY_USED.rawValue: return (true, 1, nil)
        case CURING_NO_SQARRAY_REFUSED.rawValue:
            return (false, 2, "IORING_SETUP_NO_SQARRAY (kernel 6.6) refused (EINVAL); using the SQ index array")
        case CURING_NO_SQARRAY_NO_SINGLE_MMAP.rawValue:
            return (false, 2, "IORING_SETUP_NO_SQARRAY needs IORING_FEAT_SINGLE_MMAP, which this kernel lacks; using the SQ index array")
        default: return (false, 2, nil)
        }
    }

    /// Whether large sends go out as `IORING_OP_SEND_ZC`: asked for, and the kernel's opcode probe has
    /// it (nil: the probe itself failed, a kernel before 5.6, which has no SEND_ZC either).
    package static func zeroCopySends(requested: UringFeatures, opcodeSupported: Bool?) -> (use: Bool, note: String?) {
        guard requested.contains(.zeroCopySends) else { return (false, nil) }
        if opcodeSupported == true { return (true, nil) }
        return (false, "zero-copy sends (IORING_OP_SEND_ZC, kernel 6.0) not supported by this kernel; copying sends")
    }

    /// A zero-copy send's result `result` (a negated errno): whether it says the socket or kernel
    /// cannot send zero-copy (EOPNOTSUPP; EINVAL for flags an older kernel does not know), so the
    /// engine stops using it and sends the same bytes with a plain send.
    package static func zeroCopyRefused(sendResult result: Int32) -> String? {
        guard result == -EOPNOTSUPP || result == -EINVAL else { return nil }
        return "zero-copy send refused (\(Errno.fromNegated(result))); copying sends from now on"
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
