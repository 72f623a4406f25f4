"""``python -m bench [NAME ...]``: run benchmarks, print and save JSON to bench/results/."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import burst, control_plane, events, invoke, log_flood, oversized
from bench.common import ROOT, git_revision, machine, speed

SUITES = {
    "control_plane": control_plane.run,
    "invoke": invoke.run,
    "oversized": oversized.run,
    "burst": burst.run,
    "log_flood": log_flood.run,
    "events": events.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", help=f"some of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suites: {', '.join(sorted(unknown))}")
    args.suites = args.suites or list(SUITES)
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "revision": git_revision(),
        "machine": machine(),
        "speed_before": speed(),
        "results": {},
    }
    for name in args.suites:
        with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
            report["results"][name] = SUITES[name](Path(tmp), quick=args.quick)
    report["speed_after"] = speed()
    out = ROOT / "bench" / "results" / "latest.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
