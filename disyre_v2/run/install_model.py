"""disyre_v2_install_model: an exported model zip → $DISYRE_results, checked as untrusted input."""
from __future__ import annotations

import argparse

from disyre_v2.run.common import add_common_flags, positive_float, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="disyre_v2_install_model",
        description="Unpack a model zip made by disyre_v2_export_model into $DISYRE_results/DatasetNNN_Name/"
        "<trainer>__<plans>__<configuration>, where disyre_v2_predict -d/-c finds it as if trained there. Every "
        "file's SHA-256 is checked against the manifest; absolute paths, '..', links, unlisted members, a newer "
        "format and oversized archives are refused; nothing is half-installed after a failure.",
        epilog="Example: disyre_v2_install_model brains_2d_small.zip, then disyre_v2_predict -i IN -o OUT -d 1 -c 2d_small",
    )
    parser.add_argument("archive", metavar="MODEL.zip", help="the exported model")
    parser.add_argument("--force", action="store_true", help="replace a model already installed under the same name")
    parser.add_argument("--max_gib", type=positive_float, default=2.0,
                        help="refuse archives that unpack to more than this many GiB, > 0 (default 2)")
    add_common_flags(parser)
    return parser


def _run(args: argparse.Namespace) -> None:
    from disyre_v2.model_sharing.install import install_model

    folder = install_model(args.archive, force=args.force, max_bytes=int(args.max_gib * 1024 ** 3))
    print(f"Installed {folder}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli(_run, args)


if __name__ == "__main__":
    raise SystemExit(main())
