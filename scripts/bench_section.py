"""Puts one section into BENCHMARKS.md: the text on stdin, which starts with `<!-- NAME -->`
and ends with `<!-- /NAME -->`, replaces the section of that name, or is added at the end.
   python3 scripts/bench_section.py NAME < section.md"""
import os
import sys

name = sys.argv[1]
start_mark, end_mark = f"<!-- {name} -->", f"<!-- /{name} -->"
section = sys.stdin.read().strip("\n")
if not (section.startswith(start_mark) and section.endswith(end_mark)):
    sys.exit(f"the section must start with {start_mark} and end with {end_mark}")
doc = open("BENCHMARKS.md").read() if os.path.exists("BENCHMARKS.md") else "# Benchmarks\n"
start, end = doc.find(start_mark), doc.find(end_mark)
if start >= 0 and end > start:
    doc = doc[:start] + section + doc[end + len(end_mark):]
else:
    doc = doc.rstrip("\n") + "\n\n" + section + "\n"
open("BENCHMARKS.md", "w").write(doc)
