"""`kubectl kustomize`, for exactly the features deploy/k8s uses, so its test runs offline with no binary.

No kustomize renderer is installable with pip (the `kustomize` package builds manifests in Python; it
does not read kustomization.yaml), and Debian's kubectl carries a kustomize too old for `patches`.
Supported, in kustomize's order: `resources` (files and folders), `patches` (a strategic-merge file
that merges maps only, or inline JSON 6902 add/replace/remove with a `target`), `namespace` and
`images`. Any other field, or a patch this cannot apply as kustomize would, raises instead of being
ignored, so a kustomization that outgrows this fails its test rather than passing unrendered.
"""

import copy
from pathlib import Path

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"}


class Unsupported(Exception):
    """The kustomization uses something this renderer does not do."""


def build(folder: Path) -> list[dict]:
    """The objects `kubectl kustomize folder` prints (order aside)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    if unknown := set(kustomization) - SUPPORTED:
        raise Unsupported(f"{folder}: {sorted(unknown)}")
    objects = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        if path.is_dir():
            objects += build(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for patch in kustomization.get("patches", []):
        _patch(folder, objects, patch)
    if "namespace" in kustomization:
        _set_namespace(objects, kustomization["namespace"])
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    return objects


def _patch(folder: Path, objects: list[dict], patch: dict) -> None:
    if set(patch) == {"path"}:
        merge = yaml.safe_load((folder / patch["path"]).read_text())
        targets = [obj for obj in objects if _same(obj, merge)]
        if len(targets) != 1:
            raise Unsupported(f"{patch['path']}: {len(targets)} objects named {merge['metadata']['name']}")
        _merge_maps(targets[0], merge, where=patch["path"])
    elif set(patch) == {"target", "patch"}:
        operations = yaml.safe_load(patch["patch"])
        targets = [obj for obj in objects if _matches(obj, patch["target"])]
        if not targets:
            raise Unsupported(f"no object matches the patch target {patch['target']}")
        for obj in targets:
            for operation in operations:
                _json6902(obj, operation)
    else:
        raise Unsupported(f"patch with {sorted(patch)}")


def _same(obj: dict, other: dict) -> bool:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"]) == (
        other["apiVersion"],
        other["kind"],
        other["metadata"]["name"],
    )


def _matches(obj: dict, target: dict) -> bool:
    if unknown := set(target) - {"kind", "name"}:
        raise Unsupported(f"patch target by {sorted(unknown)}")
    kind, name = obj["kind"], obj["metadata"]["name"]
    return target.get("kind", kind) == kind and target.get("name", name) == name


def _merge_maps(obj: dict, patch: dict, *, where: str) -> None:
    for key, value in patch.items():
        if value is None:
            obj.pop(key, None)
        elif isinstance(value, dict) and isinstance(obj.get(key), dict):
            _merge_maps(obj[key], value, where=where)
        elif isinstance(value, list):
            # Strategic merge merges lists by a key per field (containers by name...): not done here.
            raise Unsupported(f"{where}: a list under {key!r}")
        else:
            obj[key] = copy.deepcopy(value)


def _json6902(obj: dict, operation: dict) -> None:
    op, path = operation["op"], operation["path"]
    if op not in {"add", "replace", "remove"}:
        raise Unsupported(f"JSON patch op {op!r}")
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]
    node = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op == "add":
            node.insert(index, copy.deepcopy(operation["value"]))
        elif op == "replace":
            node[index] = copy.deepcopy(operation["value"])
        else:
            del node[index]
    elif op == "remove" or (op == "replace" and last not in node):
        del node[last]  # a KeyError, as kustomize refuses to replace or remove what is not there
    else:
        node[last] = copy.deepcopy(operation["value"])


def _set_namespace(objects: list[dict], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace  # kustomize renames Namespace objects too
        elif obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def _set_image(objects: list[dict], image: dict) -> None:
    if unknown := set(image) - {"name", "newName", "newTag", "digest"}:
        raise Unsupported(f"images: {sorted(unknown)}")
    for container in _containers(objects):
        name, tag, digest = _split_image(container["image"])
        if name != image["name"]:
            continue
        name = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _containers(node):
    """Every container and init container, wherever it sits (Deployment, Job, CronJob...)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"containers", "initContainers"} and isinstance(value, list):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _split_image(image: str) -> tuple[str, str | None, str | None]:
    image, _, digest = image.partition("@")
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :], digest or None
    return image, None, digest or None
