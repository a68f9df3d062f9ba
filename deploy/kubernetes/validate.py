#!/usr/bin/env python3
"""Validates the Kubernetes manifests offline against the API's own types.

No cluster runs here, so every object is checked against the `kubernetes` Python client's models
(generated from the API's OpenAPI schema): each field must be one the type has (the client's own
deserialiser silently drops unknown ones, which is how a typo'd field ships), each value must have the
field's type, and the object must deserialise into the typed model (required fields present).

    python3 deploy/kubernetes/validate.py              # every kustomization and manifest in deploy/kubernetes
    python3 deploy/kubernetes/validate.py FILE|DIR...  # these (a directory is built as a kustomization)

A kustomization is built the way `kubectl kustomize` does for the features used here (resources,
configMapGenerator, JSON 6902 patches, images), then every resulting object is checked; a feature this
script does not know is reported rather than skipped. Seccomp profiles put in a ConfigMap are checked
against the OCI profile format. Beyond types, RingStorm's own consistency: an Indexed Job running
`--shard auto` has RINGSTORM_SHARD_COUNT equal to its completions.

Exit status: 0 valid; 1 problems (one line each: file, object, field path, problem); 3 the `kubernetes`
package is missing (pip install 'kubernetes==35.*').
"""
import copy
import difflib
import json
import os
import sys

try:
    import yaml
    import kubernetes.client
    from kubernetes.client import models as k8s_models
except ImportError as error:
    print(f"validate.py: {error.name} is missing: pip install 'kubernetes==35.*' (it brings PyYAML)", file=sys.stderr)
    sys.exit(3)

HERE = os.path.dirname(os.path.abspath(__file__))
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "resources", "configMapGenerator", "patches", "images", "namespace"}
GENERATOR_FIELDS = {"name", "namespace", "files", "literals", "behavior"}
PATCH_FIELDS = {"target", "patch"}
TARGET_FIELDS = {"kind", "name", "namespace", "group", "version"}
IMAGE_FIELDS = {"name", "newName", "newTag", "digest"}
SECCOMP_FIELDS = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
                  "listenerPath", "listenerMetadata"}
SECCOMP_RULE_FIELDS = {"names", "action", "errnoRet", "args", "comment", "includes", "excludes"}
SECCOMP_ACTIONS = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                   "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
IO_URING = ("io_uring_setup", "io_uring_enter", "io_uring_register")


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, message):
        self.lines.append(f"{where}: {message}")


def model_for(api_version, kind):
    """The client's model class for apiVersion/kind: apps/v1 Deployment -> V1Deployment."""
    version = api_version.split("/")[-1]
    return getattr(k8s_models, version[:1].upper() + version[1:] + kind, None)


def check_value(value, type_name, path, where, problems):
    """Walks `value` against the client's type string (`V1PodSpec`, `list[V1Container]`,
    `dict(str, str)`, `str`, `int`, `bool`, `object`...), reporting unknown fields and wrong types."""
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.add(where, f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check_value(item, type_name[5:-1], f"{path}[{index}]", where, problems)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            problems.add(where, f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = type_name[type_name.index(",") + 1:-1].strip()
        for key, item in value.items():
            check_value(item, inner, f"{path}.{key}", where, problems)
        return
    primitive = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
                 "datetime": (str,), "date": (str,)}
    if type_name in primitive:
        # YAML reads `true` and `1` as bool and int: a string field needs quotes, as the API server's
        # strict decoder would also insist.
        wrong = not isinstance(value, primitive[type_name]) or (type_name == "int" and isinstance(value, bool))
        if wrong:
            problems.add(where, f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"
                         + (" (quote it)" if type_name == "str" else ""))
        return
    if type_name == "object":  # IntOrString, RawExtension, Quantity-like: anything goes
        return
    model = getattr(k8s_models, type_name, None)
    if model is None:
        problems.add(where, f"{path}: the client has no type {type_name}")
        return
    if not isinstance(value, dict):
        problems.add(where, f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return
    fields = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, fields.keys(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.add(where, f"{path + '.' if path else ''}{key}: unknown field of {type_name}{hint}")
            continue
        check_value(item, model.openapi_types[fields[key]], f"{path + '.' if path else ''}{key}", where, problems)


def check_object(obj, where, problems):
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        problems.add(where, "not a Kubernetes object (apiVersion and kind missing)")
        return
    name = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')}"
    at = f"{where}: {name}"
    model = model_for(obj["apiVersion"], obj["kind"])
    if model is None:
        problems.add(at, f"no type for apiVersion {obj['apiVersion']} kind {obj['kind']} in the client")
        return
    before = len(problems.lines)
    check_value(obj, model.__name__, "", at, problems)
    if len(problems.lines) == before:
        # Required fields and the client's own checks: deserialising constructs every model.
        try:
            kubernetes.client.ApiClient()._ApiClient__deserialize(copy.deepcopy(obj), model.__name__)
        except (ValueError, TypeError) as error:
            problems.add(at, f"does not deserialise: {error}")
    check_shards(obj, at, problems)


def check_shards(obj, at, problems):
    """An Indexed Job of `ringstorm load --shard auto` must tell each shard the count it is part of."""
    if obj.get("kind") != "Job":
        return
    spec = obj.get("spec") or {}
    for container in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
        args = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
        if "--shard" not in args or args[args.index("--shard") + 1:args.index("--shard") + 2] != ["auto"]:
            continue
        if spec.get("completionMode") != "Indexed":
            problems.add(at, "runs --shard auto but is not completionMode: Indexed (no JOB_COMPLETION_INDEX)")
        count = None
        if "--shard-count" in args:
            count = args[args.index("--shard-count") + 1:args.index("--shard-count") + 2]
            count = count[0] if count else None
        for env in container.get("env") or []:
            if env.get("name") == "RINGSTORM_SHARD_COUNT":
                count = env.get("value")
        if count is None:
            problems.add(at, "runs --shard auto without RINGSTORM_SHARD_COUNT or --shard-count")
        elif str(count) != str(spec.get("completions")):
            problems.add(at, f"shard count {count} differs from completions {spec.get('completions')}")
        if spec.get("parallelism") not in (None, spec.get("completions")):
            problems.add(at, f"parallelism {spec.get('parallelism')} < completions {spec.get('completions')}: "
                         "the shards would not run together at --start-at")


def check_seccomp(text, where, problems):
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as error:
        problems.add(where, f"not JSON: {error}")
        return
    for key in profile:
        if key not in SECCOMP_FIELDS:
            problems.add(where, f"{key}: unknown field of a seccomp profile")
    if profile.get("defaultAction") not in SECCOMP_ACTIONS:
        problems.add(where, f"defaultAction {profile.get('defaultAction')!r} is not a seccomp action")
    denied = set()
    for index, rule in enumerate(profile.get("syscalls") or []):
        for key in rule:
            if key not in SECCOMP_RULE_FIELDS:
                problems.add(where, f"syscalls[{index}].{key}: unknown field of a seccomp rule")
        if rule.get("action") not in SECCOMP_ACTIONS:
            problems.add(where, f"syscalls[{index}].action {rule.get('action')!r} is not a seccomp action")
        if rule.get("action") != "SCMP_ACT_ALLOW":
            denied.update(rule.get("names") or [])
    allowed_by_default = profile.get("defaultAction") == "SCMP_ACT_ALLOW"
    for call in IO_URING:
        explicitly_allowed = any(call in (r.get("names") or []) and r.get("action") == "SCMP_ACT_ALLOW"
                                 for r in profile.get("syscalls") or [])
        if call in denied or not (allowed_by_default or explicitly_allowed):
            problems.add(where, f"{call} is not allowed: the io_uring backend cannot start under this profile")


def load_documents(path, problems):
    try:
        with open(path) as file:
            return [d for d in yaml.safe_load_all(file) if d is not None]
    except (OSError, yaml.YAMLError) as error:
        problems.add(path, f"cannot read: {error}")
        return []


def json_pointer_parts(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_operation(obj, operation):
    """One JSON 6902 operation (add, replace, remove), in place."""
    parts = json_pointer_parts(operation["path"])
    parent = obj
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    op = operation["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, operation["value"])
        elif op == "replace":
            parent[index] = operation["value"]
        elif op == "remove":
            del parent[index]
        else:
            raise ValueError(f"operation {op!r} is not supported here")
    else:
        if op in ("add", "replace"):
            if op == "replace" and last not in parent:
                raise KeyError(last)
            parent[last] = operation["value"]
        elif op == "remove":
            del parent[last]
        else:
            raise ValueError(f"operation {op!r} is not supported here")


def build_kustomization(directory, problems, seen=None):
    """The objects `kubectl kustomize DIRECTORY` would produce, as far as this needs to know."""
    seen = seen or set()
    directory = os.path.normpath(directory)
    if directory in seen:
        problems.add(directory, "kustomization cycle")
        return []
    seen = seen | {directory}
    path = os.path.join(directory, "kustomization.yaml")
    documents = load_documents(path, problems)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        problems.add(path, "expected one kustomization document")
        return []
    kustomization = documents[0]
    for key in kustomization:
        if key not in KUSTOMIZATION_FIELDS:
            problems.add(path, f"{key}: unknown or unsupported kustomization field (validate.py knows {sorted(KUSTOMIZATION_FIELDS)})")
    objects = []
    for resource in kustomization.get("resources") or []:
        target = os.path.normpath(os.path.join(directory, resource))
        if os.path.isdir(target):
            objects += build_kustomization(target, problems, seen)
        elif os.path.isfile(target):
            objects += [(target, d) for d in load_documents(target, problems)]
        else:
            problems.add(path, f"resources: {resource} does not exist")
    for index, generator in enumerate(kustomization.get("configMapGenerator") or []):
        for key in generator:
            if key not in GENERATOR_FIELDS:
                problems.add(path, f"configMapGenerator[{index}].{key}: unknown or unsupported field")
        data = {}
        for file_name in generator.get("files") or []:
            file_path = os.path.join(directory, file_name)
            try:
                with open(file_path) as file:
                    text = file.read()
            except OSError as error:
                problems.add(path, f"configMapGenerator[{index}].files: {error}")
                continue
            if file_name.startswith("seccomp/") or "seccomp" in generator.get("name", ""):
                check_seccomp(text, file_path, problems)
            data[os.path.basename(file_name)] = text
        for literal in generator.get("literals") or []:
            key, _, value = str(literal).partition("=")
            data[key] = value
        metadata = {"name": generator.get("name")}
        if generator.get("namespace"):
            metadata["namespace"] = generator["namespace"]
        objects.append((path, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}))
    for index, patch in enumerate(kustomization.get("patches") or []):
        where = f"{path}: patches[{index}]"
        for key in patch:
            if key not in PATCH_FIELDS:
                problems.add(where, f"{key}: unsupported patch field (validate.py applies inline JSON 6902 patches)")
        target = patch.get("target") or {}
        for key in target:
            if key not in TARGET_FIELDS:
                problems.add(where, f"target.{key}: unknown field")
        try:
            operations = yaml.safe_load(patch.get("patch") or "")
        except yaml.YAMLError as error:
            problems.add(where, f"patch is not YAML: {error}")
            continue
        if not isinstance(operations, list):
            problems.add(where, "not a JSON 6902 patch (a list of operations); strategic merge patches are not supported here")
            continue
        matched = [o for _, o in objects
                   if o.get("kind") == target.get("kind", o.get("kind"))
                   and (o.get("metadata") or {}).get("name") == target.get("name", (o.get("metadata") or {}).get("name"))]
        if not matched:
            problems.add(where, f"target {target} matches no resource")
        for obj in matched:
            for operation in operations:
                try:
                    apply_operation(obj, operation)
                except (KeyError, IndexError, ValueError, TypeError) as error:
                    problems.add(where, f"{operation.get('op')} {operation.get('path')}: does not apply ({error!r})")
    for index, image in enumerate(kustomization.get("images") or []):
        for key in image:
            if key not in IMAGE_FIELDS:
                problems.add(path, f"images[{index}].{key}: unknown field")
    return objects


def default_targets():
    """Every kustomization directory and every manifest outside one, except the test fixtures."""
    targets = []
    for root, directories, files in os.walk(HERE):
        directories[:] = sorted(d for d in directories if d != "testdata")
        if "kustomization.yaml" in files:
            targets.append(root)
            directories[:] = []  # its files are its resources
            continue
        targets += [os.path.join(root, f) for f in sorted(files) if f.endswith((".yaml", ".yml"))]
    return targets


def main(arguments):
    problems = Problems()
    checked = 0
    for target in arguments or default_targets():
        if os.path.isdir(target):
            objects = build_kustomization(target, problems)
        elif os.path.isfile(target):
            objects = [(target, d) for d in load_documents(target, problems)]
        else:
            problems.add(target, "no such file or directory")
            continue
        for where, obj in objects:
            check_object(obj, os.path.relpath(where), problems)
            checked += 1
    for line in problems.lines:
        print(line)
    print(f"validate.py: {checked} objects checked, {len(problems.lines)} problems", file=sys.stderr)
    return 1 if problems.lines else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
