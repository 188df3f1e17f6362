"""HTTP health probes for the lab's daemons."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Probe:
    """GET `url` and expect 200. `tls` is "none" (plain HTTP), "insecure" (self-signed serving
    certificate, as kube-controller-manager and kube-scheduler make for themselves) or "lab"
    (verify with the lab CA and present the admin client certificate)."""

    url: str
    tls: str = "none"

    def healthy(self, pki_dir: Path, timeout: float = 2.0) -> bool:
        try:
            context = _context(self.tls, pki_dir)  # OSError once `lab down` removed the certificates
            # No proxy: an http_proxy in the environment must not intercept 127.0.0.1.
            opener = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
            )
            with opener.open(self.url, timeout=timeout) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False


def _context(tls: str, pki_dir: Path) -> ssl.SSLContext | None:
    if tls == "none":
        return None
    if tls == "insecure":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if tls == "lab":
        context = ssl.create_default_context(cafile=str(pki_dir / "ca.crt"))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        return context
    raise ValueError(f"tls must be one of none, insecure, lab; got {tls!r}")
