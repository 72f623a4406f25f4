"""Print bench/results/latest.json as the Markdown table the README shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROWS = [
    ("control_plane", "get_function_configuration", "GetFunctionConfiguration, keep-alive", "p50 < 2 ms"),
    ("control_plane", "list_functions", "ListFunctions (20 functions), keep-alive", "p50 < 2 ms"),
    ("invoke", "cold_start_python3.11", "Cold start, python3.11 no-op (first invoke)", "p50 ≤ 10 ms, p99 ≤ 30 ms"),
    ("invoke", "cold_start_nodejs20.x", "Cold start, nodejs20.x", "p50 ≤ 25 ms"),
    ("invoke", "cold_start_awslambdaric", "Cold start, awslambdaric (provided bootstrap)", "reported"),
    ("invoke", "warm_python3.11_128mb", "Warm invoke, 128 MB, keep-alive", "p50 ≤ 1 ms"),
    ("invoke", "warm_python3.11_1769mb", "Warm invoke, 1769 MB (1 vCPU), keep-alive", "p50 ≤ 1 ms"),
    ("invoke", "warm_via_alias", "Warm invoke through an alias", "p50 ≤ 1 ms"),
    ("invoke", "warm_via_function_url", "Warm request through a function URL", "p50 ≤ 1 ms"),
    ("invoke", "warm_provisioned", "Invoke of a provisioned environment", "p50 ≤ 1 ms"),
    ("invoke", "throughput_8_clients_128mb", "Throughput, 8 concurrent clients (wrk), 128 MB", "≥ 3,000/s"),
    ("invoke", "throughput_8_clients_1769mb", "Throughput, 8 concurrent clients (wrk), 1769 MB", "≥ 3,000/s"),
    ("invoke", "burst_0_to_100", "Burst: 0 to 100 concurrent environments", "≤ 1 s"),
    ("invoke", "idle_environments", "Idle environments (1,000 started)", "≤ 3 MiB PSS each"),
    ("oversized", "create_function_content_length", "100 clients, 100 MB each: CreateFunction, declared", "< 300 MB"),
    ("oversized", "create_function_chunked", "100 clients, 100 MB each: CreateFunction, chunked", "< 300 MB"),
    ("oversized", "invoke_chunked", "100 clients, 100 MB each: Invoke, chunked", "< 300 MB"),
    ("oversized", "logs_route_content_length", "100 clients, 100 MB each: to the logs route", "< 300 MB"),
    ("oversized", "code_uploads_1", "One CreateFunction, 49 MB zip (legal)", "growth < 140 MB"),
    ("oversized", "code_uploads_10", "10 concurrent CreateFunction, 49 MB zips", "reported"),
    ("oversized", "sigv4_unsigned_chunked", "100 clients, 100 MB each: unsigned, sigv4", "< 300 MB"),
    ("burst", "burst_half_throttled", "Burst of 2,000 invokes of a 1 s function, limit 1,000", "no 5xx; /health ≤ 100 ms"),
    ("burst", "burst_unthrottled", "Burst of 2,000 invokes of a 1 s function, limit 2,500", "no 5xx; /health ≤ 100 ms"),
    ("log_flood", "flood_200mb", "One invocation printing 200 MB", "server RSS +50 MB at most"),
    ("log_flood", "flood_600mb", "One invocation printing 600 MB", "server RSS +50 MB at most"),
    ("log_flood", "flood_200mb_empty_lines", "One invocation printing 200 MB of empty lines", "server RSS +50 MB at most"),
    ("log_flood", "flood_8_functions_200mb", "8 functions printing 200 MB each at once", "server RSS +50 MB at most"),
]  # fmt: skip


def _flood_cell(v: dict[str, Any]) -> str:
    if "printed_mib_each" in v:
        return f"server peak RSS +{v['server_peak_rss_growth_mib']} MiB; {v['seconds']} s"
    return (
        f"server peak RSS +{v['server_peak_rss_growth_mib']} MiB; {v['stored_events']:,} events"
        f" ({v['stored_function_mib']} MiB) stored, {v['dropped_records_reported']:,} lines"
        f" reported dropped; logs.db +{v['logs_db_growth_mib']} MiB; {v['invoke_seconds']} s"
    )


def _protection_cell(v: dict[str, Any]) -> str:
    """The server under hostile load: memory under oversized requests and log floods, answers
    under a burst."""
    if "server_peak_rss_growth_mib" in v:
        return _flood_cell(v)
    if "rss_peak_mib" in v:
        return (
            f"peak RSS {v['rss_peak_mib']} MiB (+{v['rss_growth_mib']} MiB from "
            f"{v['rss_before_mib']}); answers {v['answers']}"
        )
    h = v["health"]
    return (
        f"{v['status_200']} OK, {v['status_429']} 429, {v['status_5xx']} 5xx "
        f"in {v['seconds']} s; /health p50 {h.get('p50_ms')} ms, p99 {h.get('p99_ms')} ms, "
        f"max {h.get('max_ms')} ms; {v['zygotes_replaced']} zygotes replaced"
    )


def cell(v: dict[str, Any]) -> str:
    if "p50_ms" in v:
        return f"p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms (n={v['n']})"
    if "invokes_per_s" in v:
        lat = v.get("latency", {})
        text = f"{v['invokes_per_s']:,.0f}/s ("
        if "invokes_per_s_range" in v:
            low, high = v["invokes_per_s_range"]
            text += f"median of {v['runs']} runs of {v['seconds']} s, {low:,.0f} to {high:,.0f}/s; "
        text += f"latency p50 {lat.get('p50')}, p99 {lat.get('p99')}"
        if v.get("server_cpu_us_per_invoke") is not None:
            text += (
                f"; CPU per invoke: server {v['server_cpu_us_per_invoke']:.0f} µs, "
                f"sandbox {v['sandbox_cpu_us_per_invoke']:.0f} µs"
            )
        return text + ")"
    if "seconds_until_all_running" in v:
        return f"{v['seconds_until_all_running']} s until all {v['succeeded']} run"
    if "rss_peak_mib" in v or "status_429" in v or "server_peak_rss_growth_mib" in v:
        return _protection_cell(v)
    if "pss_mib_median" in v:
        return (
            f"PSS median {v['pss_mib_median']} MiB; MemAvailable drop "
            f"{v['mem_available_drop_mib_per_env']} MiB each; {v['environments']} started in "
            f"{v['seconds_to_start_all']} s"
        )
    return json.dumps(v)


def main() -> None:
    report = json.loads((Path(__file__).parent / "results" / "latest.json").read_text())
    m = report["machine"]
    print(
        f"Measured {report['when']} at {report['revision']} on {m['cpus']} cores "
        f"({m['cpu_model']}), {m['memory_gib']} GiB, kernel {m['kernel']}, Python {m['python']}; "
        "client and server on the same machine. `make bench` (JSON in bench/results/latest.json)."
    )
    before, after = report.get("speed_before"), report.get("speed_after")
    if before and after:
        print(
            f"Machine speed (lower is faster), before and after: getppid() "
            f"{before['getppid_ns']:.0f} and {after['getppid_ns']:.0f} ns, a Python loop step "
            f"{before['python_loop_ns']:.1f} and {after['python_loop_ns']:.1f} ns."
        )
    print()
    print("| measurement | result | target |")
    print("|---|---|---|")
    for suite, key, label, target in ROWS:
        value = report["results"].get(suite, {}).get(key)
        if value is not None:
            print(f"| {label} | {cell(value)} | {target} |")


if __name__ == "__main__":
    main()
