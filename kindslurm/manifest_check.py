"""Kubernetes manifests checked on the submit host the way the node will read
and apply them, so a typo fails before anything is submitted (and, in the
bridge, before a pod becomes a job).

Every problem is one SpecError line naming the file, the document and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kindslurm.errors import SpecError


def decode_utf8(data: bytes, path: str | Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{what} {path} is not UTF-8 text: save it as UTF-8 YAML") from None


def read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{what} {path} cannot be read ({e.strerror or e}): check the file") from None
    return decode_utf8(data, path, what)


def show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_yaml(text: str, path: Path, what: str, single: bool = False) -> list[Any]:
    """The documents of a YAML stream (or its only document, as yaml.safe_load reads it), never a traceback."""
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        if single:
            return [yaml.load(text, Loader=loader)]
        return [d for d in yaml.load_all(text, Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise SpecError(f"{what} {path}{where} is not valid YAML ({problem}): fix the file") from None
    except RecursionError:
        raise SpecError(f"{what} {path} is nested too deeply to be Kubernetes YAML: fix the file") from None


def _non_json(value: Any) -> tuple[str, Any] | None:
    """The first value the API client cannot send as JSON (!!binary, !!set), with where it is."""
    seen: set[int] = set()
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        where, v = todo.pop()
        if isinstance(v, (dict, list)):
            if id(v) in seen:
                continue
            seen.add(id(v))
            items = v.items() if isinstance(v, dict) else enumerate(v)
            todo += [(f"{where}.{k}" if isinstance(v, dict) else f"{where}[{k}]", x) for k, x in items]
        elif isinstance(v, (bytes, set)):
            return where.lstrip("."), v
    return None


def _check_object(doc: Any, where: str, named: bool) -> str:
    """One Kubernetes object's shape, as far as applying it needs; returns its kind."""
    if not isinstance(doc, dict):
        raise SpecError(f"{where} is {show(doc)}, not a Kubernetes object: each document must be a mapping "
                        f"with apiVersion, kind and metadata")
    for key, example in (("apiVersion", "batch/v1"), ("kind", "Job")):
        value = doc.get(key)
        if value is None or value == "":
            raise SpecError(f"{where} lacks apiVersion or kind: every object needs both")
        if not isinstance(value, str) or not value.strip():
            raise SpecError(f"{where}: {key} must be a string (got {show(value)}): write e.g. {key}: {example}")
    kind: str = doc["kind"]
    meta = doc.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise SpecError(f"{where} ({kind}): metadata must be a mapping (got {show(meta)}): "
                        f"write metadata: {{name: NAME}}")
    meta = meta or {}
    for key in ("name", "generateName", "namespace"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise SpecError(f"{where} ({kind}): metadata.{key} must be a string (got {show(meta[key])}): quote it")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise SpecError(f"{where} ({kind}): metadata.{key} must be a mapping (got {show(value)}): "
                            f"write {key}: {{KEY: VALUE}}")
        bad = next((k for k, v in value.items() if v is not None and not isinstance(v, str)), None)
        if bad is not None:
            raise SpecError(f"{where} ({kind}): metadata.{key}.{bad} must be a string (got {show(value[bad])}): quote it")
    if named and not (meta.get("name") or meta.get("generateName")):
        raise SpecError(f"{where} ({kind}) has no metadata.name: add one")
    odd = _non_json(doc)
    if odd:
        raise SpecError(f"{where} ({kind}): {odd[0] or 'a value'} is a YAML {type(odd[1]).__name__} "
                        f"({show(odd[1])}), which Kubernetes cannot take: write it as a string or a list")
    return kind


def check_manifest_text(text: str, path: Path) -> int:
    """Every document of one manifest, checked the way the node will read and apply it.

    A List with `items` is flattened into its items on the node, so each item
    is checked as an object of its own. Raises SpecError, never anything else.
    """
    docs = parse_yaml(text, path, "manifest")
    if not docs:
        raise SpecError(f"manifest {path} holds no Kubernetes objects: add one or drop --manifest")
    for i, doc in enumerate(docs, 1):
        where = f"manifest {path} document {i}"
        is_list = isinstance(doc, dict) and isinstance(doc.get("kind"), str) and doc["kind"].endswith("List") \
            and "items" in doc
        kind = _check_object(doc, where, named=not is_list)
        if not is_list:
            continue
        items = doc["items"]
        if items is not None and not isinstance(items, list):
            raise SpecError(f"{where} ({kind}): items must be a list of objects (got {show(items)}): fix it")
        for j, item in enumerate(items or [], 1):
            _check_object(item, f"{where} item {j}", named=True)
    return len(docs)


def check_manifest(path: Path) -> int:
    """Parse and type-check every document now, so a typo fails here and not on the node."""
    return check_manifest_text(read_text(path, "manifest"), path)
