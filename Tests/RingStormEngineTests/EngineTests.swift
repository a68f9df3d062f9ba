import Testing

/// Every test that runs an engine lives under this suite. `.serialized` is inherited by the nested
/// suites, so no two engine tests run at once: they would compete for two cores and skew the
/// timing and syscall-count assertions. Each test runs on both backends (`arguments: Backend.allCases`)
/// and bounds every loop with a deadline.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct EngineTests {}
