"""Prints bench/run.sh's table: figures, ratios and PASS/FAIL per target.

usage: report.py RESULTS HYPERFINE_PREFIX STORE

HYPERFINE_PREFIX.N.json are call.sh's rounds.

RESULTS has one measurement per line, "KIND NAME key=value ..." (see
run.sh). Figures are medians over the rounds; each ratio is the median of
the per-round ratios, so that a burst of load from other processes on
the machine hits both sides of a ratio alike.
"""

import datetime
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict


def load(path):
    wrk, gobench, rss = defaultdict(list), defaultdict(list), {}
    with open(path) as f:
        for line in f:
            kind, name, *kvs = line.split()
            kv = dict(x.split("=", 1) for x in kvs)
            if kind == "wrk":
                wrk[name].append({k: float(v) for k, v in kv.items()})
            elif kind == "gobench":
                gobench[name].append(float(kv["ns_op"]))
            elif kind == "rss":
                rss = {k: int(v) for k, v in kv.items()}
    return wrk, gobench, rss


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gover = subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, {gover}"


def main():
    results, hyperfine, store = sys.argv[1:4]
    wrk, gobench, rss = load(results)
    rows, verdicts = [], []

    def med(name, key):
        return statistics.median(r[key] for r in wrk[name])

    def ratios(a, b, key="rps"):
        return [x[key] / y[key] for x, y in zip(wrk[a], wrk[b])]

    def ratio(a, b):
        return statistics.median(ratios(a, b))

    def spread(rs, fmt="{:.2f}"):
        return "rounds " + " ".join(fmt.format(r) for r in rs)

    def target(label, ok, detail):
        verdicts.append(("PASS" if ok else "FAIL", label, detail))

    bad = {n: sum(r["non2xx"] + r["errors"] for r in runs) for n, runs in wrk.items()}
    for name, what in [
        ("healthz", "serve /healthz (no token)"),
        ("healthz-padded", "serve /healthz + header of a token's size"),
        ("repeated", "serve /api/v1/user, one repeated token"),
        ("repeated-tok", "  the same, beside repeated-key"),
        ("repeated-key", "serve /api/v1/user, one repeated API key"),
        ("anchor", "Pbench-like Flask+PyJWT /api/v1/user"),
        ("healthz-short", "serve /healthz (first-seen's partner)"),
        ("first-seen", "serve /api/v1/user, first-seen tokens"),
    ]:
        cpu = f"  serve CPU {med(name, 'cpu_us'):5.1f} us/req" if "cpu_us" in wrk[name][0] else ""
        rows.append(f"  {what:<42} {med(name, 'rps'):>9.0f} req/s  p50 {med(name, 'p50_us') / 1000:6.2f} ms"
                    f"  p99 {med(name, 'p99_us') / 1000:6.2f} ms{cpu}")
    r_health = ratio("repeated", "healthz")
    r_anchor = ratio("repeated", "anchor")
    r_first = ratio("first-seen", "healthz-short")
    rows.append(f"  repeated / healthz {r_health:.2f}x ({spread(ratios('repeated', 'healthz'))})")
    # serve's CPU time per request is what bounds its req/s when it has a
    # core to itself: healthz's / repeated's is the ratio to expect there.
    cpu_rounds = ratios("healthz", "repeated", "cpu_us")
    rows.append(f"  serve CPU per request, healthz / repeated {statistics.median(cpu_rounds):.2f}x "
                f"({spread(cpu_rounds)}): the req/s ratio when serve is CPU-bound")
    pad_rounds = ratios("repeated", "healthz-padded")
    rows.append(f"  repeated / healthz with a token-sized header {statistics.median(pad_rounds):.2f}x ({spread(pad_rounds)})")
    rows.append(f"  repeated / anchor {r_anchor:.1f}x ({spread(ratios('repeated', 'anchor'), '{:.0f}')})")
    rows.append(f"  first-seen / healthz {r_first:.2f}x ({spread(ratios('first-seen', 'healthz-short'))})")
    target("repeated >= 0.9x healthz", r_health >= 0.9, f"{r_health:.2f}x")
    r_key = ratio("repeated-key", "repeated-tok")
    rows.append(f"  repeated API key / repeated token {r_key:.2f}x ({spread(ratios('repeated-key', 'repeated-tok'))})")
    target("repeated key >= 0.9x repeated token", r_key >= 0.9, f"{r_key:.2f}x")
    target("repeated >= 25x Flask anchor", r_anchor >= 25, f"{r_anchor:.1f}x")
    if any(bad.values()):
        target("every load request answered 2xx", False,
               ", ".join(f"{n}: {c:.0f} non-2xx/socket errors" for n, c in bad.items() if c))
    if any(r["exhausted"] for r in wrk["first-seen"]):
        target("first-seen runs had enough tokens", False,
               "the token file ran out: first-seen req/s is too low (raise BENCH_TOKENS or shorten BENCH_FIRST_DURATION)")

    fs, floor, cached = (statistics.median(gobench[n]) for n in
                         ("BenchmarkVerifyFirstSeen", "BenchmarkRSAFloor", "BenchmarkVerifyCached"))
    rows.append(f"  per-token check (go test -bench, medians): first-seen {fs / 1000:.1f} us, "
                f"RSA-2048 floor {floor / 1000:.1f} us, cache hit {cached / 1000:.2f} us")
    hc, hh = (statistics.median(gobench[n]) for n in ("BenchmarkHandlerCached", "BenchmarkHandlerHealthz"))
    rows.append(f"  whole handler in-process (no network): /api/v1/user repeated {hc / 1000:.2f} us, "
                f"/healthz {hh / 1000:.2f} us")
    fs_rounds = [a / b for a, b in zip(gobench["BenchmarkVerifyFirstSeen"], gobench["BenchmarkRSAFloor"])]
    r_fs = statistics.median(fs_rounds)
    rows.append(f"  first-seen check / RSA floor {r_fs:.2f}x ({spread(fs_rounds)})")
    target("first-seen check <= 2x RSA floor", r_fs <= 2, f"{r_fs:.2f}x")

    keys = {n: statistics.median(gobench[n]) / 1000 for n in
            ("BenchmarkFirstSeenKey/sqlite", "BenchmarkFirstSeenKey/postgres", "BenchmarkRepeatedKey") if gobench[n]}
    if len(keys) == 3:
        rows.append(f"  API key check (go test -bench, medians): first-seen on SQLite "
                    f"{keys['BenchmarkFirstSeenKey/sqlite']:.0f} us, on PostgreSQL {keys['BenchmarkFirstSeenKey/postgres']:.0f} us "
                    f"(one lookup by hash each), repeated (cache) {keys['BenchmarkRepeatedKey']:.2f} us")
    else:
        target("first-seen API key cost measured", False, "go test -bench ./server/apikey gave no figures (PostgreSQL missing?)")

    hwm, cur = rss["hwm_kb"] / 1024, rss["rss_kb"] / 1024
    rows.append(f"  serve after {rss['tokens']} distinct tokens: peak RSS (VmHWM) {hwm:.1f} MiB, "
                f"RSS now {cur:.1f} MiB")
    target(f"<= 64 MiB RSS with {rss['tokens']} tokens", hwm <= 64, f"peak {hwm:.1f} MiB")

    rounds, times = [], defaultdict(list)
    for path in sorted(glob.glob(hyperfine + ".*.json")):
        with open(path) as f:
            rs = {("call" if r["command"].startswith("pbench-auth call") else r["command"]): r
                  for r in json.load(f)["results"]}
        rounds.append(rs["call"]["median"] / rs["curl"]["median"])
        for k, r in rs.items():
            times[k] += r["times"]
    if not rounds:
        target("call <= 1.5x curl", False, "not measured: bench/call.sh failed (see its messages above)")
    else:
        r_call = statistics.median(rounds)
        rows.append(f"  pbench-auth call ({store} store) median {statistics.median(times['call']) * 1000:.2f} ms, "
                    f"curl median {statistics.median(times['curl']) * 1000:.2f} ms ({len(times['call'])} runs each)")
        rows.append(f"  call / curl {r_call:.2f}x ({spread(rounds)})")
        target("call <= 1.5x curl", r_call <= 1.5, f"{r_call:.2f}x")

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"pbench-auth benchmark, {when}, {machine()}")
    print("\n".join(rows))
    for v, label, detail in verdicts:
        print(f"{v}  {label:<36} {detail}")
    failed = [label for v, label, _ in verdicts if v == "FAIL"]
    print(f"{len(verdicts) - len(failed)} of {len(verdicts)} targets hold"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
