"""Count/activity model latency: the int8 interpreter alone at 1 and 2 threads, against the whole call.

The baseline in the same run is the serving call ``SensingModel.classify`` (Python-side quantize, invoke,
dequantize): the difference is what the Python wrapper costs on top of the interpreter. Input: 12 links
of random cue vectors over the model's two seconds. Figures are median and p99 microseconds over
``--iterations`` runs after ``--warmup``. The same figures come from ``invispose bench model``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from appliance.pose.sensing.classifier import DEFAULT_MODEL, LINK_INPUTS, MAX_LINKS, STEPS, SensingModel

LINKS = 12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.0, 0.3, (STEPS, MAX_LINKS, LINK_INPUTS)), -3, 3).astype(np.float32)
    mask = np.zeros(MAX_LINKS, np.float32)
    mask[:LINKS] = 1.0
    results = {}
    for threads in (1, 2):
        model = SensingModel(DEFAULT_MODEL, num_threads=threads)
        results[f"threads_{threads}"] = model.benchmark(
            x, mask, iterations=args.iterations, warmup=args.warmup
        )
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{DEFAULT_MODEL.name} via {model.runtime}: {args.iterations} runs after {args.warmup} warm-up")
    print(f"{'threads':>8} {'invoke median':>14} {'p99':>8} {'classify() median':>18} {'p99':>8}  (us)")
    for key, r in results.items():
        print(
            f"{key[-1]:>8} {r['median_us']:>14} {r['p99_us']:>8}"
            f" {r['run_median_us']:>18} {r['run_p99_us']:>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
