"""manifest.json of an exported model: what the archive holds (every file with its SHA-256 and size),
where it installs, the runs and how they were trained, and the data they were trained on."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from disyre_v2.errors import UserError
from disyre_v2.inference.model_loading import MODEL_NAME, model_name  # noqa: F401  (model_name: re-exported)
from disyre_v2.paths import DATASET_NAME_PATTERN

MANIFEST_NAME = "manifest.json"
MODEL_CARD_NAME = "MODEL.md"
FORMAT = "disyre_v2.model"
FORMAT_VERSION = 1
# <Trainer>__<plans>__<configuration>, each part a plain identifier.
MODEL_FOLDER_PATTERN = MODEL_NAME
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO, limit: int, chunk: int = 1 << 20) -> tuple[str, int]:
    """(SHA-256, bytes read) of a stream, reading at most ``limit + 1`` bytes (so a member larger than
    declared is noticed without reading it all)."""
    digest, total = hashlib.sha256(), 0
    while total <= limit:
        block = stream.read(min(chunk, limit + 1 - total))
        if not block:
            break
        digest.update(block)
        total += len(block)
    return digest.hexdigest(), total


def check_member_name(name: str) -> str:
    """A relative POSIX path of plain names (letters, digits, ``_ . -``; no ``..``, no absolute path, no
    backslash or drive); else a UserError. Returns the name."""
    path = PurePosixPath(name)
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or ":" in name or path.is_absolute()
            or any(part in ("", ".", "..") for part in parts) or not all(_SAFE_PART.match(p) for p in parts)):
        raise UserError(f"the archive holds a member with an unsafe path {name!r} (absolute, '..', or odd "
                        f"characters)", fix="use an archive made by disyre_v2_export_model; this one may be malicious")
    return name


def dumps(manifest: dict) -> bytes:
    """The manifest's bytes: sorted keys, fixed layout (exports are byte-for-byte reproducible)."""
    return (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def parse_manifest(data: bytes, source: Path | str) -> dict:
    """Read and check a manifest (from an untrusted archive): format, version, names and file table."""
    fix = "use an archive made by disyre_v2_export_model"
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError("the archive's manifest.json is not valid JSON", source, fix) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"the archive is not a disyre_v2 model (manifest format {manifest.get('format')!r} "
                        if isinstance(manifest, dict) else "the archive is not a disyre_v2 model (", source, fix)
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"the manifest's format_version {version!r} is not a version number", source, fix)
    if version > FORMAT_VERSION:
        raise UserError(f"the model was exported in format version {version}, newer than the version "
                        f"{FORMAT_VERSION} this disyre_v2 reads", source,
                        "upgrade disyre_v2 (pip install -U disyre_v2), or export the model again with this version")
    dataset, folder = manifest.get("dataset"), manifest.get("model_folder")
    if not isinstance(dataset, str) or not DATASET_NAME_PATTERN.match(dataset):
        raise UserError(f"the manifest's dataset {dataset!r} is not a DatasetNNN_Name", source, fix)
    if not isinstance(folder, str) or not MODEL_FOLDER_PATTERN.match(folder):
        raise UserError(f"the manifest's model_folder {folder!r} is not <Trainer>__<plans>__<configuration>",
                        source, fix)
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise UserError("the manifest lists no files", source, fix)
    for name, entry in files.items():
        check_member_name(name)
        if (not isinstance(entry, dict) or not isinstance(entry.get("size"), int) or entry["size"] < 0
                or not isinstance(entry.get("sha256"), str) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
            raise UserError(f"the manifest's entry for {name} has no valid size and sha256", source, fix)
    if name_clash := {MANIFEST_NAME} & set(files):
        raise UserError(f"the manifest lists itself ({', '.join(name_clash)})", source, fix)
    return manifest
