"""Pose model latency: the int8 interpreter alone at 1 and 2 threads, against the whole ``infer`` call.

The baseline in the same run is the serving call ``PoseModel.infer`` (Python-side quantize, invoke,
dequantize, composing keypoints in metres): the difference is what the Python wrapper costs on top of the
interpreter. Figures are median and p99 microseconds over ``--iterations`` runs after ``--warmup``.
The same figures come from ``invispose bench model``.
"""

from __future__ import annotations

import argparse
import json
import sys

from appliance.pose.runtime import DEFAULT_MODEL, PoseModel, benchmark, example_inputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for threads in (1, 2):
        model = PoseModel(DEFAULT_MODEL, num_threads=threads)
        results[f"threads_{threads}"] = benchmark(
            model, example_inputs(), iterations=args.iterations, warmup=args.warmup
        )
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{DEFAULT_MODEL.name} via {model.runtime}: {args.iterations} runs after {args.warmup} warm-up")
    print(f"{'threads':>8} {'invoke median':>14} {'p99':>8} {'infer() median':>15} {'p99':>8}  (us)")
    for key, r in results.items():
        print(
            f"{key[-1]:>8} {r['median_us']:>14} {r['p99_us']:>8}"
            f" {r['infer_median_us']:>15} {r['infer_p99_us']:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
