"""Peak memory (RSS) of `charrnn train` on a small and a 100x larger corpus: the corpus is streamed
and memory-mapped, so memory should not grow with its size. Also times the first run on the large
corpus (which encodes it) against a second run (which reuses the cached token file).

    python bench/memory.py [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import bench_env, charrnn_command, corpus_path, log, make_parser, print_table, run_measured, set_threads

MB = 1_000_000


def make_corpus(source: Path, target: Path, size: int) -> int:
    """Repeat the source text until the file holds at least `size` bytes; each copy starts with
    its own number, so no two copies are byte-identical. Returns the file's size."""
    text = source.read_text(encoding="utf-8")
    written, copy = 0, 0
    with open(target, "w", encoding="utf-8") as out:
        while written < size:
            piece = f"{copy}\n{text}"
            out.write(piece)
            written += len(piece.encode("utf-8"))
            copy += 1
    return written


def main() -> None:
    parser = make_parser(__doc__)
    parser.add_argument("--steps", type=int, default=None, help="training steps a run [default: 30; 10 with --quick]")
    args = parser.parse_args()
    steps = args.steps or (10 if args.quick else 30)
    set_threads(args.threads)
    source = corpus_path(args)
    small_mb, large_mb = (2, 20) if args.quick else (2, 200)
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-bench-") as tmp:
        work = Path(tmp)
        env = bench_env(work / "cache")

        small, large = work / f"corpus-{small_mb}mb.txt", work / f"corpus-{large_mb}mb.txt"
        sizes = {path: make_corpus(source, path, mb * MB) for path, mb in ((small, small_mb), (large, large_mb))}
        base = None
        for corpus, run in [(small, "first (encodes)"), (large, "first (encodes)"), (large, "second (cached tokens)")]:
            cmd = charrnn_command() + ["train", str(corpus), "--max-steps", str(steps), "--val-frac", "0.002",
                                       "--eval-every", "1000", "-q", "--run-dir", str(work / f"run-{corpus.stem}"), "--overwrite"]
            log(" ".join(cmd))
            seconds, peak = run_measured(cmd, env)
            base = peak if base is None else base
            rows.append([f"{sizes[corpus] / MB:.0f} MB", run, f"{seconds:.1f}", f"{peak:.0f}", f"{peak - base:+.0f}"])
    print_table(["corpus", "run", "wall s", "peak RSS (MiB)", "vs small (MiB)"], rows,
                title=f"Peak memory of `charrnn train --max-steps {steps}` (target: the {large_mb} MB runs within "
                      f"100 MB of the {small_mb} MB run)")


if __name__ == "__main__":
    main()
