"""Minimal safetensors reader/writer (no dependency on the `safetensors` package).

File layout (https://github.com/huggingface/safetensors, "Format"):
  8 bytes      little-endian uint64 N: length of the JSON header
  N bytes      UTF-8 JSON object: {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
               ..., "__metadata__": {"<key>": "<string value>", ...}}
               (padded with spaces so the data section starts 8-byte aligned)
  rest         raw little-endian tensor data; data_offsets are relative to the end of the header.

Tensors are written contiguously in the order given. Supported dtypes: F32, F16, BF16 (what the C++
reader converts to float) plus F64/I64/I32/U8 for completeness of the reader.
"""

import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch

# safetensors dtype name -> (torch dtype, bytes per element)
_DTYPES = {
    "F64": (torch.float64, 8),
    "F32": (torch.float32, 4),
    "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8),
    "I32": (torch.int32, 4),
    "U8": (torch.uint8, 1),
}
_TORCH_TO_NAME = {v[0]: k for k, v in _DTYPES.items()}

# The official implementation refuses headers larger than this; so do we (and the C++ reader).
MAX_HEADER_BYTES = 100 * 1000 * 1000

if sys.byteorder != "little":  # tensor bytes are written in native order below
    raise RuntimeError("safetensors_io assumes a little-endian host")


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: move the raw 16-bit patterns
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def serialize(tensors, metadata=None, dtype=None):
    """Returns the file contents for `tensors` (an ordered mapping name -> torch.Tensor).

    dtype: None keeps each tensor's dtype; otherwise every floating tensor is cast to that torch
    dtype (e.g. torch.float16) before writing.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if t.dtype not in _TORCH_TO_NAME:
            raise ValueError(f"tensor '{name}': dtype {t.dtype} is not supported")
        data = _tensor_bytes(t)
        header[name] = {
            "dtype": _TORCH_TO_NAME[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # data section 8-byte aligned
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def save(path, tensors, metadata=None, dtype=None):
    """Writes `tensors` to `path` atomically (temporary file in the same folder, then rename)."""
    write_atomically(path, serialize(tensors, metadata, dtype))


def write_atomically(path, data):
    """Writes the bytes `data` to `path`: a temporary file in the same folder, fsync, rename."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(path):
    """Returns (tensors: dict name -> torch.Tensor in file order, metadata: dict)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: file too short ({len(data)} bytes) for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} does not fit the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    tensors = {}
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        torch_dtype, size = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if not (0 <= begin <= end <= len(body)) or end - begin != count * size:
            raise ValueError(f"{path}: tensor '{name}': bad data_offsets {info['data_offsets']}")
        raw = bytearray(body[begin:end])
        if torch_dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if count else \
                torch.empty(0, dtype=torch.bfloat16)
        else:
            t = torch.frombuffer(raw, dtype=torch_dtype) if count else \
                torch.empty(0, dtype=torch_dtype)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, metadata
