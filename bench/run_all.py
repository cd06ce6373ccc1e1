"""Run every benchmark in turn, each in its own process (so one's memory and threads never affect
the next), passing --quick, --corpus and --threads through. Tables go to stdout, progress to stderr.

    python bench/run_all.py [--quick] > results.md
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from common import log, make_parser

SCRIPTS = ["time_to_quality.py", "throughput.py", "sampling.py", "memory.py", "startup.py"]


def main() -> None:
    args = make_parser(__doc__).parse_args()
    passed = ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    if args.corpus is not None:
        passed += ["--corpus", str(args.corpus)]
    failed = []
    for script in SCRIPTS:
        cmd = [sys.executable, str(Path(__file__).with_name(script)), *passed]
        log(f"== {' '.join(cmd[1:])}")
        start = time.perf_counter()
        if subprocess.run(cmd).returncode != 0:
            failed.append(script)
        log(f"== {script} took {time.perf_counter() - start:.0f} s")
    if failed:
        sys.exit(f"error: failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
