"""Extracts the TensorFlow C library and the C headers tfjs-node's binding needs from a
tensorflow-cpu wheel (a zip file). Used by setup-backend.js; standard library only.

usage: python3 extract_libtensorflow.py WHEEL OUT_DIR HEADER [HEADER ...]
Writes OUT_DIR/lib/libtensorflow_{cc,framework}.so.2 and OUT_DIR/include/<the headers the
given ones include, transitively>.
"""
import os
import re
import shutil
import sys
import zipfile

LIBS = ("tensorflow/libtensorflow_cc.so.2", "tensorflow/libtensorflow_framework.so.2")
INCLUDE = "tensorflow/include/"


def main(wheel, out_dir, roots):
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    missing = [lib for lib in LIBS if lib not in names]
    if missing:
        sys.exit(f"{wheel} lacks {missing}")
    headers, todo = set(), list(roots)
    while todo:
        header = todo.pop()
        member = INCLUDE + header
        if header in headers or member not in names:
            continue
        headers.add(header)
        text = archive.read(member).decode("utf8", "replace")
        todo.extend(re.findall(r'#include\s+["<]([^">]+)[">]', text))
    for member, dest in [(lib, os.path.join("lib", os.path.basename(lib))) for lib in LIBS] + [
        (INCLUDE + h, os.path.join("include", h)) for h in sorted(headers)
    ]:
        path = os.path.join(out_dir, dest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with archive.open(member) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    print(f"extracted 2 libraries and {len(headers)} headers")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
