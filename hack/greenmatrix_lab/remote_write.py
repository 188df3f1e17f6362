"""Pushing synthetic series (DCGM, vLLM, ...) into the lab's Prometheus via remote write 1.0.

Remote write wants a snappy-compressed protobuf `WriteRequest`. Both encodings are simple
enough to write here, which keeps protobuf and python-snappy out of the dependencies:
the protobuf is four tiny messages, and a snappy block made only of literals is valid
(it just does not compress, which does not matter on loopback).
"""

from __future__ import annotations

import re
import struct
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Series:
    """One time series: labels including `__name__`, and (timestamp in ms, value) samples."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[int, float]]

    def __post_init__(self) -> None:
        name = self.labels.get("__name__", "")
        if not _METRIC_NAME.match(name):
            raise ValueError(
                f"labels['__name__'] must be a metric name like 'DCGM_FI_DEV_GPU_UTIL', got {name!r}"
            )
        for label in self.labels:
            if label != "__name__" and not _LABEL_NAME.match(label):
                raise ValueError(f"label name {label!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        if not self.samples:
            raise ValueError(f"series {name!r}: samples must not be empty")


def push(prometheus_url: str, series: Iterable[Series], timeout: float = 10.0) -> None:
    """POST `series` to `<prometheus_url>/api/v1/write` (needs --web.enable-remote-write-receiver)."""
    body = snappy_block(encode_write_request(series))
    request = urllib.request.Request(
        prometheus_url.rstrip("/") + "/api/v1/write",
        data=body,
        method="POST",
        headers={
            "Content-Encoding": "snappy",
            "Content-Type": "application/x-protobuf",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
    )
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never proxy
        with opener.open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
        raise RuntimeError(f"remote write to {prometheus_url} refused ({error.code}): {detail}") from error


def encode_write_request(series: Iterable[Series]) -> bytes:
    """prompb.WriteRequest{timeseries=1} with TimeSeries{labels=1, samples=2}."""
    return b"".join(_field(1, _time_series(s)) for s in series)


def _time_series(series: Series) -> bytes:
    # The spec requires labels sorted by name and samples in time order.
    labels = b"".join(
        _field(1, _field(1, name.encode()) + _field(2, value.encode()))
        for name, value in sorted(series.labels.items())
    )
    samples = b"".join(
        _field(2, b"\x09" + struct.pack("<d", float(value)) + b"\x10" + _varint(int(timestamp)))
        for timestamp, value in sorted(series.samples)
    )
    return labels + samples


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # int64 in two's complement, as protobuf encodes negatives
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def snappy_block(data: bytes) -> bytes:
    """`data` in the snappy block format, as literals only (valid, uncompressed)."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start : start + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes((60 << 2, n))
        else:
            out += bytes((61 << 2, n & 0xFF, n >> 8))
        out += chunk
    return bytes(out)
