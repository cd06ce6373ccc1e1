"""Start-up time of the command line: median wall time of `charrnn --help` and `python -m charrnn
--help` against `python -c pass`, the floor any Python program pays.

    python bench/startup.py [--runs 10] [--quick]
"""

from __future__ import annotations

import statistics
import sys

from common import charrnn_command, log, make_parser, print_table, wall_time

TARGET = 0.5  # seconds, for charrnn --help


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--runs", type=int, default=None, help="runs of each command [default: 10; 3 with --quick]")
    args = parser.parse_args()  # --corpus and --threads are accepted for run_all.py's sake, and unused
    runs = args.runs or (3 if args.quick else 10)
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "charrnn --help": charrnn_command() + ["--help"],
        "python -m charrnn --help": [sys.executable, "-m", "charrnn", "--help"],
    }
    for cmd in commands.values():  # once untimed, so every command starts with warm file caches
        wall_time(cmd)
    times = {name: [] for name in commands}
    for _ in range(runs):  # round-robin, so drift in the machine's speed hits every command alike
        for name, cmd in commands.items():
            times[name].append(wall_time(cmd))
    medians = {name: statistics.median(t) for name, t in times.items()}
    floor = medians["python -c pass"]
    rows = []
    for name, t in times.items():
        log(f"{name}: " + " ".join(f"{s:.3f}" for s in t))
        rows.append([name, f"{medians[name]:.3f}", f"{min(t):.3f}", f"{medians[name] - floor:+.3f}"])
    print_table(["command", "median s", "min s", "over python -c pass (s)"], rows,
                title=f"Start-up time, {runs} runs each (target: charrnn --help under {TARGET} s)")


if __name__ == "__main__":
    main()
