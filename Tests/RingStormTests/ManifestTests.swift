import Foundation
import Testing

/// `deploy/kubernetes/` cannot be applied here (no cluster), so its manifests are checked offline
/// against the Kubernetes API's types by `deploy/kubernetes/validate.py` (the `kubernetes` Python
/// client's models, unknown fields rejected). Skipped, not failed, where python3 or the package is
/// missing (`Scripts/install-dependencies` installs it).
@Suite struct ManifestTests {
    @Test func theManifestsValidate() throws {
        let run = try validate([])
        #expect(run.status == 0, "\(run.output)\(run.errors)")
        #expect(run.errors.contains(" 0 problems"), "\(run.errors)")
    }

    /// The fixture has the mistakes the client's own deserialiser lets through: each is named.
    @Test func aMisspelledFieldIsRejected() throws {
        let run = try validate(["deploy/kubernetes/testdata/misspelled-fields.yaml"])
        #expect(run.status == 1, "\(run.output)\(run.errors)")
        for expected in [
            "spec.completionsMode: unknown field of V1JobSpec (did you mean 'completionMode'?)",
            "containers[0].imagePullPolice: unknown field of V1Container (did you mean 'imagePullPolicy'?)",
            "env[0].value: expected str, got int 3",
            "spec.selectr: unknown field of V1ServiceSpec",
            "Deployment/no-containers-named: does not deserialise",
            "shard count 3 differs from completions 4",
        ] {
            #expect(run.output.contains(expected), "missing \(expected) in:\n\(run.output)")
        }
    }

    /// A kustomization is built before it is checked: its seccomp profile must let io_uring through,
    /// its patches must apply, and a field the validator does not know is reported, not skipped.
    @Test func aBrokenKustomizationIsRejected() throws {
        let run = try validate(["deploy/kubernetes/testdata/bad-kustomization"])
        #expect(run.status == 1, "\(run.output)\(run.errors)")
        for expected in [
            "denies-io-uring.json: io_uring_setup is not allowed",
            "patches[0]: target {'kind': 'Deployment', 'name': 'ringstorm-server'} matches no resource",
            "patchesJson6902: unknown or unsupported kustomization field",
        ] {
            #expect(run.output.contains(expected), "missing \(expected) in:\n\(run.output)")
        }
    }

    /// Runs the validator from the package root; cancels (skips) the test where it cannot run.
    private func validate(_ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let run = runTool(["python3", "deploy/kubernetes/validate.py"] + arguments, in: root)
        // 127: env found no python3; 3: the kubernetes package is missing.
        if run.status == 127 { try Test.cancel("python3 is not installed: the manifests are not validated") }
        if run.status == 3 { try Test.cancel("skipped: \(run.errors.trimmingCharacters(in: .whitespacesAndNewlines))") }
        return (run.status, run.output, run.errors)
    }
}
