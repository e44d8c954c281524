"""Images the --manifest files name, served from podman's store on this node.

A user's `podman build -t myimg .` lands in podman as `localhost/myimg:latest`,
while a manifest's `image: myimg` means `docker.io/library/myimg:latest`: a
`localhost/` build therefore also serves the short name (it is loaded, then
tagged in the nodes under the manifest's name). A `:latest` image (or one
without a tag) is pulled again under Kubernetes' default policy, Always, which
fails with no registry, so containers of loaded images that set no policy get
IfNotPresent; so do those a --load-image archive carries. Images named only
inside the workload script are not seen here: a registry mirror or
--load-image serves those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from kindslurm.cluster.provider import Provider

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


def qualify(ref: str) -> str:
    """The full name a container runtime pulls for `ref` (docker's normalization)."""
    name, digest = (ref.split("@", 1) + [""])[:2]
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        registry, path = "docker.io", name
    else:
        registry, path = first, rest
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = "docker.io"
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    if digest:
        return f"{registry}/{path}@{digest}"
    if ":" not in path.rsplit("/", 1)[-1]:
        path += ":latest"
    return f"{registry}/{path}"


def is_latest(ref: str) -> bool:
    return "@" not in ref and qualify(ref).endswith(":latest")


def containers(doc: Any) -> Iterator[dict[str, Any]]:
    """Every container spec in an object, wherever its pod template sits
    (Pod, Job, CronJob, Deployment, a custom resource's)."""
    todo = [doc]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _CONTAINER_LISTS and isinstance(value, list):
                    yield from (c for c in value if isinstance(c, dict) and isinstance(c.get("image"), str))
                todo.append(value)
        elif isinstance(node, list):
            todo.extend(node)


def named(docs: list[Any]) -> list[str]:
    """The images the documents name, first mention first."""
    seen: dict[str, None] = {}
    for doc in docs:
        for c in containers(doc):
            seen.setdefault(c["image"].strip(), None)
    return [i for i in seen if i]


def podman_candidates(ref: str) -> list[str]:
    """Names podman may hold `ref` under: its full name, and for a docker.io
    name the `localhost/` name a `podman build -t` of the short name gets."""
    full = qualify(ref)
    if "@" in full:
        return []
    out = [full]
    if full.startswith("docker.io/"):
        path = full[len("docker.io/"):]
        out.append(f"localhost/{path[len('library/'):] if path.startswith('library/') else path}")
    return out


@dataclass(frozen=True)
class Load:
    image: str  # as the manifest names it
    source: str  # the name podman holds it under
    target: str  # the full name the nodes must hold

    @property
    def aliased(self) -> bool:
        return self.source != self.target


def plan(images: list[str], held: set[str], in_nodes: set[str]) -> list[Load]:
    """What to load: named images the cluster lacks and podman holds."""
    loads = []
    for image in images:
        target = qualify(image)
        if target in in_nodes:
            continue
        source = next((c for c in podman_candidates(image) if c in held), None)
        if source is not None:
            loads.append(Load(image, source, target))
    return loads


def prefer_local(doc: Any, loaded: set[str]) -> list[str]:
    """IfNotPresent for containers of loaded images that set no policy; the images changed."""
    changed = []
    for c in containers(doc):
        if c["image"].strip() in loaded and not c.get("imagePullPolicy"):
            c["imagePullPolicy"] = "IfNotPresent"
            changed.append(c["image"].strip())
    return changed


def archive_names(path: str) -> set[str]:
    """The full image names a `podman save` / `docker save` archive (docker or
    OCI layout) carries; empty if it cannot be read (kind's load reports that)."""
    import json
    import tarfile

    names: set[str] = set()
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.name.lstrip("./") not in ("manifest.json", "index.json") or not member.isfile():
                    continue
                f = tar.extractfile(member)
                doc = json.load(f) if f is not None else None
                if isinstance(doc, list):  # docker-archive
                    names.update(t for entry in doc for t in entry.get("RepoTags") or [])
                elif isinstance(doc, dict):  # oci-archive
                    for m in doc.get("manifests") or []:
                        notes = m.get("annotations") or {}
                        name = notes.get("io.containerd.image.name") or notes.get("org.opencontainers.image.ref.name")
                        if name and ("/" in name or ":" in name):
                            names.add(name)
    except (OSError, tarfile.TarError, ValueError, AttributeError):
        return set()
    return {qualify(n) for n in names}


def from_archives(manifests: list[str], archives: list[str]) -> set[str]:
    """The manifests' image names that --load-image archives serve."""
    from kindslurm.kube import load_documents

    served = {n for a in archives for n in archive_names(a)}
    if not served:
        return set()
    return {i for i in named([doc for _, doc in load_documents(manifests)]) if qualify(i) in served}


def load_from_podman(provider: Provider, cluster: str, manifests: list[str], archive: Path, log: IO[str],
                     say: Callable[[str], None]) -> set[str]:
    """Load what the manifests name from podman into the cluster; returns the
    manifest names now served that way. Runs no node command when the
    manifests name no image podman holds."""
    from kindslurm.kube import load_documents

    images = named([doc for _, doc in load_documents(manifests)])
    if not images:
        return set()
    held = provider.held_images()
    if not any(c in held for i in images for c in podman_candidates(i)):
        return set()
    loads = plan(images, held, provider.node_images(cluster))
    if not loads:
        return set()
    for ld in loads:
        alias = f" (as {ld.image})" if ld.aliased else ""
        say(f"loading image {ld.source} from podman's store{alias}: a manifest names it and the cluster lacks it")
    try:
        provider.save_images(sorted({ld.source for ld in loads}), str(archive))
        provider.load_archive(cluster, str(archive), log)
    finally:
        archive.unlink(missing_ok=True)
    pairs = sorted({(ld.source, ld.target) for ld in loads if ld.aliased})
    if pairs:
        provider.alias_images(cluster, pairs)
    return {ld.image for ld in loads}
