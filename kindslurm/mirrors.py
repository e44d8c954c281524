"""Registry mirrors: unchanged manifests (`image: alpine`) pull through a site's
registry on a node that cannot reach the internet.

`registry_mirrors` maps a registry host (`docker.io`, `ghcr.io`,
`registry.example:5000`, or `_default` for every registry) to the mirror's URL.
Each becomes a containerd `hosts.toml` in the job directory, mounted read-only
at /etc/containerd/certs.d in every node, and a patch points containerd's CRI
registry configuration there (kind's documented way for local registries).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from kindslurm.errors import SpecError

CERTS_D = "/etc/containerd/certs.d"
CONTAINERD_PATCH = f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_D}"\n'
_HOST = re.compile(r"^(?:_default|[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?)$")
_URL_CHARS = re.compile(r"^[A-Za-z0-9._~:/?#@!$&'()*+,;=%\[\]-]+$")
_UPSTREAM = {"docker.io": "https://registry-1.docker.io"}


def check(mirrors: dict[str, str], where: str = "registry_mirrors") -> dict[str, str]:
    """Each key a registry host, each value an http(s) URL with a host; SpecError names the bad entry."""
    example = "registry_mirrors: {docker.io: \"http://login1:5000\"}"
    out: dict[str, str] = {}
    for registry, url in mirrors.items():
        if not isinstance(registry, str) or not _HOST.match(registry) or registry in (".", ".."):
            raise SpecError(f"{where}: {registry!r} is not a registry host (e.g. docker.io, ghcr.io, "
                            f"myregistry:5000, or _default): write e.g. {example}")
        if not isinstance(url, str):
            raise SpecError(f"{where}.{registry} must be a URL (got {url!r}): write e.g. {example}")
        bad = SpecError(f"{where}.{registry} {url!r} is not an http(s) URL with a host: write e.g. {example}")
        if not _URL_CHARS.match(url.strip()):
            raise bad  # it goes into a TOML string: no quotes, backslashes, spaces or newlines
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError:
            raise bad from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise bad
        out[registry] = url.strip().rstrip("/")
    return out


def hosts_toml(registry: str, url: str) -> str:
    """containerd's per-registry file: try the mirror first, then the registry itself."""
    lines = []
    if registry != "_default":
        lines.append(f'server = "{_UPSTREAM.get(registry, "https://" + registry)}"\n')
    lines.append(f'\n[host."{url}"]\n  capabilities = ["pull", "resolve"]\n')
    return "".join(lines)


def write(mirrors: dict[str, str], certs_d: Path) -> Path:
    """The certs.d tree for these mirrors under `certs_d` (created); returns it."""
    certs_d.mkdir(parents=True, exist_ok=True)
    for registry, url in check(mirrors).items():
        d = certs_d / registry
        d.mkdir(exist_ok=True)
        (d / "hosts.toml").write_text(hosts_toml(registry, url))
    return certs_d
