"""Summarise a ``py-spy record -f raw --threads`` file: self and inclusive time per thread.

    py-spy record -r 500 -f raw --threads -o spy.txt -- python bench/profile_b.py --repeats 1
    python bench/spy_summary.py spy.txt --top 30 [--match flock_es]

Self time is by a stack's leaf frame; inclusive time counts a function once per
stack it appears in. Percentages are of the thread's samples.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

_FRAME = re.compile(r"^(.*) \((.*?):(\d+)\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    fn, path, _ = m.groups()
    return f"{fn} ({path.split('/')[-1]})"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--match", default="")
    args = ap.parse_args(argv)
    selfs: dict[str, Counter[str]] = defaultdict(Counter)
    incl: dict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    with open(args.file) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            head = frames[0]
            thread = head.split(": ", 1)[1] if ": " in head else head
            thread = "writer" if "ThreadPool" in stack or "_worker" in stack else thread
            n = int(count)
            totals[thread] += n
            names = [_name(x) for x in frames[1:]]
            if names:
                selfs[thread][names[-1]] += n
            for nm in set(names):
                incl[thread][nm] += n
    for thread, total in totals.most_common():
        if total < 20:
            continue
        print(f"\n== {thread}: {total} samples")
        print("  self:")
        for nm, n in selfs[thread].most_common(args.top):
            print(f"    {100 * n / total:5.1f}%  {nm}")
        print("  inclusive:")
        shown = 0
        for nm, n in incl[thread].most_common():
            if args.match and args.match not in nm:
                continue
            print(f"    {100 * n / total:5.1f}%  {nm}")
            shown += 1
            if shown >= args.top:
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
