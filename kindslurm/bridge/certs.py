"""The kubelet endpoint's TLS: its serving certificate and whom it trusts.

An admin normally gives the bridge a serving certificate signed by the outer
cluster's CA (--tls-cert-file/--tls-key-file), which an API server started
with --kubelet-certificate-authority verifies. Without one the bridge makes a
self-signed certificate for its address, as a kubelet without
serverTLSBootstrap does (the API server does not verify kubelets by default).
Clients are verified against the outer cluster's CA: the one in the bridge's
kubeconfig, unless --client-ca-file names another.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import yaml

from kindslurm import paths
from kindslurm.errors import SpecError


def self_signed(address: str, directory: Path) -> tuple[Path, Path]:
    """A serving certificate for `address`, kept 0600 in the bridge's own state directory and reused."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = directory / f"serving-{address}.crt", directory / f"serving-{address}.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kindslurm-bridge@{address}")])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(address))
    except ValueError:
        san = x509.DNSName(address)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .sign(key, hashes.SHA256()))
    paths.write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).decode())
    paths.write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode())
    return cert_path, key_path


def outer_ca(kubeconfig: str | None) -> str | None:
    """The CA the outer API server's certificate chains to, from the bridge's kubeconfig (PEM)."""
    if not kubeconfig:
        ca = Path("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        return ca.read_text() if ca.exists() else None
    doc = yaml.safe_load(Path(kubeconfig).expanduser().read_text()) or {}
    current = doc.get("current-context")
    ctx = next((c.get("context") or {} for c in doc.get("contexts") or [] if c.get("name") == current), {})
    cluster = next((c.get("cluster") or {} for c in doc.get("clusters") or [] if c.get("name") == ctx.get("cluster")),
                   (doc.get("clusters") or [{}])[0].get("cluster") or {})
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    if cluster.get("certificate-authority"):
        return Path(cluster["certificate-authority"]).expanduser().read_text()
    return None


def server_context(cert: Path, key: Path, client_ca: str | None) -> ssl.SSLContext:
    """TLS 1.2+, the serving pair, client certificates verified against `client_ca` when presented
    (optional, so bearer tokens can be reviewed instead)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise SpecError(f"cannot load the serving certificate {cert} / key {key} ({e}): fix --tls-cert-file") from None
    if client_ca:
        ctx.load_verify_locations(cadata=client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx
