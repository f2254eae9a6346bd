#!/usr/bin/env python3
"""Unpacks Debian packages (.deb) into a prefix folder without dpkg or root.

The GPU machine has no package registry: scripts/gpu/fetch_deps.sh downloads the Debian libraries
lctrain builds against on a Debian machine, and this unpacks them there. A .deb is an `ar` archive
holding data.tar.{xz,zst,gz}; only the data member matters.
"""
import io
import pathlib
import sys
import tarfile


def ar_members(blob: bytes):
    if not blob.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset:offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, blob[offset + 60:offset + 60 + size]
        offset += 60 + size + (size % 2)


def data_tar(name: str, payload: bytes) -> tarfile.TarFile:
    if name.endswith(".zst"):
        import subprocess  # Python's tarfile has no zstd before 3.14: use the zstd tool
        payload = subprocess.run(["zstd", "-dc"], input=payload, check=True,
                                 stdout=subprocess.PIPE).stdout
        return tarfile.open(fileobj=io.BytesIO(payload), mode="r:")
    return tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: unpack_debs.py PREFIX FILE.deb...", file=sys.stderr)
        return 2
    prefix = pathlib.Path(sys.argv[1])
    prefix.mkdir(parents=True, exist_ok=True)
    for deb in sys.argv[2:]:
        members = dict(ar_members(pathlib.Path(deb).read_bytes()))
        data = [name for name in members if name.startswith("data.tar")]
        if not data:
            print(f"{deb}: no data.tar member", file=sys.stderr)
            return 1
        with data_tar(data[0], members[data[0]]) as archive:
            archive.extractall(prefix)
        print(f"unpacked {pathlib.Path(deb).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
