"""Run every benchmark of slem and print their tables (``make bench``); record them in docs/benchmarks.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = [
    ["bench_score.py", "--sizes", "100000", "1000000"],
    ["bench_score.py", "--sizes", "3000000", "10000000"],
    ["bench_oracle.py"],
    ["bench_oracle.py", "--synthetic"],
    ["bench_generate.py"],
    ["bench_invoice_pdf.py"],
    ["bench_legacy.py"],  # slem beside the legacy system's own script, on its own data (issue 16)
]


def main() -> None:
    for script, *args in SCRIPTS:
        print(f"\n## {script} {' '.join(args)}\n", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)


if __name__ == "__main__":
    main()
