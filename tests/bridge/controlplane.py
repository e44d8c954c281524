"""A real outer Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler from the node-image build's cache,
with a PKI of its own (made here with `cryptography`).

Used by tests/bridge (session fixture) and bench/bridge_poll.py. Every
process is started on loopback ports picked here and stopped by `stop()`;
everything lives under one temporary directory removed afterwards.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CACHE = Path(os.environ.get("KINDSLURM_CACHE", "/var/cache/kindslurm"))
K8S_BIN = CACHE / "bin" / "kubernetes-v1.34.4"
ETCD_BIN = CACHE / "bin" / "etcd-v3.6.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binaries_problem() -> str | None:
    for p in (K8S_BIN / "kube-apiserver", K8S_BIN / "kube-controller-manager", K8S_BIN / "kube-scheduler",
              ETCD_BIN / "etcd"):
        if not os.access(p, os.X_OK):
            return f"{p} missing: bash setup/node-image/build.sh builds it (setup/install.sh --tests runs that)"
    return None


class PKI:
    """A CA and the certificates the control plane, its clients and the bridge need."""

    def __init__(self, root: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._x509, self._hashes, self._ec, self._oid = x509, hashes, ec, NameOID
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kindslurm-test-ca")])
        now = dt.datetime.now(dt.timezone.utc)
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(self.ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                content_commitment=False, key_encipherment=False, data_encipherment=False,
                                                key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
                   .sign(self.ca_key, hashes.SHA256()))
        self.ca_path = self._write("ca.crt", self._pem(self.ca))

    @staticmethod
    def _pem(obj: object) -> bytes:
        from cryptography.hazmat.primitives import serialization

        if hasattr(obj, "private_bytes"):
            return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                                     serialization.NoEncryption())
        return obj.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]

    def _write(self, name: str, data: bytes) -> Path:
        path = self.root / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def issue(self, name: str, cn: str, groups: tuple[str, ...] = (), server: bool = False,
              ips: tuple[str, ...] = (), dns: tuple[str, ...] = ()) -> tuple[Path, Path]:
        x509, oid = self._x509, self._oid
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        subject = x509.Name([*(x509.NameAttribute(oid.ORGANIZATION_NAME, g) for g in groups),
                             x509.NameAttribute(oid.COMMON_NAME, cn)])
        now = dt.datetime.now(dt.timezone.utc)
        usage = x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(self.ca.subject).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
             .not_valid_after(now + dt.timedelta(days=2))
             .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        sans = [*(x509.IPAddress(ipaddress.ip_address(i)) for i in ips), *(x509.DNSName(d) for d in dns)]
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.ca_key, self._hashes.SHA256())
        return self._write(f"{name}.crt", self._pem(cert)), self._write(f"{name}.key", self._pem(key))

    def service_account_keys(self) -> tuple[Path, Path]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        return self._write("sa.key", self._pem(key)), self._write("sa.pub", pub)


def kubeconfig(path: Path, server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
               token: str | None = None) -> Path:
    user: dict[str, str] = {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    doc = {"apiVersion": "v1", "kind": "Config", "current-context": "outer",
           "clusters": [{"name": "outer", "cluster": {"server": server, "certificate-authority": str(ca)}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "outer", "context": {"cluster": "outer", "user": "u"}}]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f)
    return path


@dataclass
class ControlPlane:
    root: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    server: str = ""
    admin: Path = Path()
    pki: PKI | None = None
    kubelet_ca: Path = Path()

    @classmethod
    def start(cls, node_monitor_grace: int = 20) -> "ControlPlane":
        problem = binaries_problem()
        if problem:
            raise RuntimeError(problem)
        cp = cls(Path(tempfile.mkdtemp(prefix="ks-outer-")))
        try:
            cp._start(node_monitor_grace)
        except BaseException:
            cp.stop()
            raise
        return cp

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        log.close()

    def _start(self, grace: int) -> None:
        pki = self.pki = PKI(self.root / "pki")
        etcd_client, etcd_peer, api = free_port(), free_port(), free_port()
        self._spawn("etcd", [str(ETCD_BIN / "etcd"), "--name", "outer", "--data-dir", str(self.root / "etcd"),
                             "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
                             "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
                             "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                             "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                             "--initial-cluster", f"outer=http://127.0.0.1:{etcd_peer}",
                             "--unsafe-no-fsync", "--log-level", "warn"])
        serving = pki.issue("apiserver", "kube-apiserver", server=True, ips=("127.0.0.1", "10.0.0.1"),
                            dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"))
        kubelet_client = pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                   groups=("kubeadm:cluster-admins",))
        sa_key, sa_pub = pki.service_account_keys()
        self.kubelet_ca = pki.ca_path
        self._spawn("kube-apiserver", [
            str(K8S_BIN / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_client}",
            f"--secure-port={api}", "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
            f"--tls-cert-file={serving[0]}", f"--tls-private-key-file={serving[1]}", f"--client-ca-file={pki.ca_path}",
            f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=Node,RBAC",
            f"--kubelet-client-certificate={kubelet_client[0]}", f"--kubelet-client-key={kubelet_client[1]}",
            f"--kubelet-certificate-authority={pki.ca_path}", "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=none", f"--cert-dir={self.root / 'apiserver-certs'}",
            "--enable-priority-and-fairness=false", "--profiling=false", "--v=1"])
        self.server = f"https://127.0.0.1:{api}"
        admin = pki.issue("admin", "kubernetes-admin", groups=("system:masters",))
        self.admin = kubeconfig(self.root / "admin.kubeconfig", self.server, pki.ca_path, *admin)
        self.wait_ready()
        cm = pki.issue("controller-manager", "system:kube-controller-manager")
        sched = pki.issue("scheduler", "system:kube-scheduler")
        cm_cfg = kubeconfig(self.root / "cm.kubeconfig", self.server, pki.ca_path, *cm)
        sched_cfg = kubeconfig(self.root / "scheduler.kubeconfig", self.server, pki.ca_path, *sched)
        self._spawn("kube-controller-manager", [
            str(K8S_BIN / "kube-controller-manager"), f"--kubeconfig={cm_cfg}", "--leader-elect=false",
            "--use-service-account-credentials=true", f"--service-account-private-key-file={sa_key}",
            f"--root-ca-file={pki.ca_path}", "--controllers=*,-bootstrapsigner,-tokencleaner",
            f"--node-monitor-grace-period={grace}s", "--node-monitor-period=2s", "--secure-port=0",
            f"--authentication-kubeconfig={cm_cfg}", f"--authorization-kubeconfig={cm_cfg}", "--v=1"])
        self._spawn("kube-scheduler", [
            str(K8S_BIN / "kube-scheduler"), f"--kubeconfig={sched_cfg}", "--leader-elect=false", "--secure-port=0",
            f"--authentication-kubeconfig={sched_cfg}", f"--authorization-kubeconfig={sched_cfg}", "--v=1"])
        self.kubectl("apply", "-f", "-", input=KUBELET_API_ACCESS)
        self.wait_for("the default ServiceAccount", lambda: self.kubectl("get", "serviceaccount", "default",
                                                                         check=False).returncode == 0)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(["kubectl", f"--kubeconfig={self.admin}", *args], capture_output=True, text=True,
                             input=input, timeout=timeout)
        if check and res.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} exited {res.returncode}: {res.stderr}")
        return res

    def wait_for(self, what: str, ok: "object", timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited {p.returncode}: {self.log_tail(name)}")
            if ok():  # type: ignore[operator]
                return
            time.sleep(0.5)
        raise RuntimeError(f"{what} not ready in {timeout:.0f}s: {self.log_tail('kube-apiserver')}")

    def wait_ready(self) -> None:
        self.wait_for("the outer API server",
                      lambda: self.kubectl("get", "--raw", "/readyz", check=False, timeout=10).returncode == 0)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.root / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def token(self, namespace: str, account: str, seconds: int = 7200) -> str:
        return self.kubectl("create", "token", account, "-n", namespace, f"--duration={seconds}s").stdout.strip()

    def stop(self) -> None:
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


# The API server's kubelet client may use every kubelet API (kubeadm binds the same role).
KUBELET_API_ACCESS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: kube-apiserver-kubelet-client}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: system:kubelet-api-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: kube-apiserver-kubelet-client}
"""
