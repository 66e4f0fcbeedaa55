"""Install an exported model zip into ``$DISYRE_results/DatasetNNN_Name/<folder>``, as untrusted input.

Refused before anything is written: a file that is no zip (or a truncated one), a manifest of another
format or a newer version, a member with an absolute path, ``..`` or odd characters, a link or other
special member, a member the manifest does not list or a listed file the archive lacks, sizes that
differ from the manifest's or add up to more than ``max_bytes``, and an existing model without
``force``. Members are then unpacked into a hidden temporary sibling of the target, each hash checked
while it is written, the checkpoints read with ``weights_only=True`` and their networks built; only
then is the folder renamed into place (with ``force``, the old one is moved aside first and removed
after). A failure or a kill leaves no half-installed model under the final name.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import uuid
import zipfile
from pathlib import Path

from disyre_v2.errors import UserError
from disyre_v2.imageio.atomic import first_missing_folder, remove_empty_tree
from disyre_v2.imageio.atomic import _host, _process_alive
from disyre_v2.model_sharing.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    check_member_name,
    parse_manifest,
    sha256_stream,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024 ** 3  # 2 GiB unpacked: twenty paper-sized checkpoints and more
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<host>[^.]*)-(?P<pid>\d+)-[0-9a-f]{8}\.(?:installing|replaced)$")


def _staging_name(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.{kind}"


def remove_stale_staging(folder: Path) -> None:
    """Staging folders of installs whose process on this host is gone (killed mid-install)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        match = _STAGING.match(path.name)
        if match and match["host"] == _host() and not _process_alive(int(match["pid"])) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def read_archive(archive: Path) -> tuple[zipfile.ZipFile, dict]:
    """The open zip and its checked manifest, after every member's name, kind and size was checked."""
    fix = "download or export the model again (disyre_v2_export_model)"
    if not archive.is_file():
        raise UserError("no model archive", archive, "give the path of a MODEL.zip made by disyre_v2_export_model")
    try:
        handle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UserError(f"not a zip archive, or a truncated one ({error})", archive, fix) from None
    try:
        return handle, _check_members(handle, archive)
    except BaseException:
        handle.close()
        raise


def _check_members(handle: zipfile.ZipFile, archive: Path) -> dict:
    infos = handle.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise UserError("the archive holds the same member twice", archive, "use an archive made by disyre_v2_export_model")
    for info in infos:
        check_member_name(info.filename)
    for info in infos:
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (a plain file)
        if info.is_dir() or kind not in (0, stat.S_IFREG):
            raise UserError(f"the archive member {info.filename} is a link, folder or other special file", archive,
                            "use an archive made by disyre_v2_export_model; this one may be malicious")
        if info.flag_bits & 0x1:
            raise UserError(f"the archive member {info.filename} is encrypted", archive,
                            "use an archive made by disyre_v2_export_model")
    if MANIFEST_NAME not in names:
        raise UserError("the archive has no manifest.json: it is not an exported disyre_v2 model", archive,
                        "use an archive made by disyre_v2_export_model")
    info = handle.getinfo(MANIFEST_NAME)
    if info.file_size > MAX_MANIFEST_BYTES:
        raise UserError("the archive's manifest.json is implausibly large", archive, "use an archive made by disyre_v2_export_model")
    try:
        manifest = parse_manifest(handle.read(MANIFEST_NAME), archive)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise UserError(f"the archive is damaged or truncated ({error})", archive,
                        "download or export the model again") from None
    listed = manifest["files"]
    extra = sorted(set(names) - set(listed) - {MANIFEST_NAME})
    if extra:
        raise UserError(f"the archive holds member(s) the manifest does not list: {', '.join(extra[:5])}", archive,
                        "use an archive made by disyre_v2_export_model; this one was altered")
    missing = sorted(set(listed) - set(names))
    if missing:
        raise UserError(f"the archive lacks file(s) its manifest lists: {', '.join(missing[:5])}", archive,
                        "download or export the model again")
    for name, entry in listed.items():
        if handle.getinfo(name).file_size != entry["size"]:
            raise UserError(f"{name} is {handle.getinfo(name).file_size} bytes in the archive, the manifest says "
                            f"{entry['size']}", archive, "download or export the model again; this one was altered")
    return manifest


def _unpack(handle: zipfile.ZipFile, manifest: dict, staging: Path, archive: Path) -> None:
    """Every listed member into ``staging``, its SHA-256 and size checked as it is written."""
    for name, entry in sorted(manifest["files"].items()):
        target = staging.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with handle.open(name) as source, open(target, "xb") as sink:
                digest, size = sha256_stream(_Tee(source, sink), entry["size"])
        except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as error:
            raise UserError(f"{name} cannot be read from the archive ({error})", archive,
                            "download or export the model again; the file is damaged or truncated") from None
        if size != entry["size"] or digest != entry["sha256"]:
            raise UserError(f"{name} does not match the SHA-256 its manifest records", archive,
                            "download or export the model again; the file was damaged or altered")
    (staging / MANIFEST_NAME).write_bytes(handle.read(MANIFEST_NAME))


class _Tee:
    """A readable stream that writes what is read to ``sink`` too."""

    def __init__(self, source, sink):
        self.source, self.sink = source, sink

    def read(self, size: int = -1) -> bytes:
        block = self.source.read(size)
        self.sink.write(block)
        return block


def _verify_loads(staging: Path, manifest: dict) -> None:
    """The unpacked checkpoints load (weights_only) into the networks of their plans."""
    from disyre_v2.inference.model_loading import load_models

    try:
        load_models(staging, manifest["configuration"], checkpoint=manifest.get("checkpoint", "final"))
    except FileNotFoundError as error:
        raise UserError(f"the archive's model cannot be loaded ({error})".replace(str(staging), "<archive>")) from None


def install_model(archive: Path | str, results: Path | str | None = None, *, force: bool = False,
                  max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Unpack ``archive`` into ``results`` (default ``$DISYRE_results``)/DatasetNNN_Name/<folder>; returns that
    folder. ``disyre_v2_predict -d ... -c ... -tr ... -p ...`` then finds it as if trained there."""
    from disyre_v2.paths import results_folder

    archive = Path(archive)
    base = Path(results) if results is not None else results_folder()
    handle, manifest = read_archive(archive)
    with handle:
        total = sum(entry["size"] for entry in manifest["files"].values())
        if total > max_bytes:
            raise UserError(f"the archive unpacks to {total / 1024 ** 3:.2f} GiB, more than the limit of "
                            f"{max_bytes / 1024 ** 3:.2f} GiB", archive,
                            "raise the limit with --max_gib if you trust the archive")
        target = base / manifest["dataset"] / manifest["model_folder"]
        if target.exists() and not force:
            raise UserError("a model is already installed there", target,
                            "give --force to replace it, or remove the folder first")
        created = first_missing_folder(target.parent)
        staging = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(target.parent)
            staging = _staging_name(target, "installing")
            staging.mkdir()
            _unpack(handle, manifest, staging, archive)
            _verify_loads(staging, manifest)
            _move_into_place(staging, target, force)
            staging = None
        except BaseException:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if created is not None:
                remove_empty_tree(created)
            raise
    logger.info("Installed %s (%d file(s), %.1f MB) into %s.", archive, len(manifest["files"]) + 1, total / 1e6, target)
    return target


def _move_into_place(staging: Path, target: Path, force: bool) -> None:
    """Rename ``staging`` to ``target``; with ``force`` the old target is renamed aside first, put back if
    the rename fails, and removed once the new one is in place."""
    if not target.exists():
        os.rename(staging, target)
        return
    if not force:
        raise UserError("a model is already installed there", target, "give --force to replace it")
    aside = _staging_name(target, "replaced")
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)
