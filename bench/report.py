"""Prints bench/run.sh's table: figures, ratios and PASS/FAIL per target.

usage: report.py RESULTS HYPERFINE_PREFIX STORE [PLOT.svg]

HYPERFINE_PREFIX.N.json are call.sh's rounds of call against curl,
HYPERFINE_PREFIX-version.N.json and HYPERFINE_PREFIX-token.N.json those
against kubelogin (when it was measured). PLOT.svg, when given, gets a bar
chart of the gateways' req/s (plot_svg).

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


def plot_svg(path, series, caption):
    """Writes a bar chart of series [(label, [req/s per round])] to path."""
    width, left, bar_h, gap, top = 760, 260, 34, 18, 40
    height = top + len(series) * (bar_h + gap) + 40
    peak = max(max(v) for _, v in series) * 1.1
    scale = (width - left - 90) / peak
    esc = lambda t: t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="22" font-weight="bold">{esc(caption)}</text>']
    step = 10 ** max(0, len(str(int(peak))) - 1)
    for tick in range(0, int(peak) + 1, step):
        x = left + tick * scale
        out.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 30}" stroke="#ddd"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 14}" text-anchor="middle" fill="#555">{tick:,}</text>')
    colors = ["#6c8ebf", "#d79b00", "#b85450", "#82b366"]
    for i, (label, values) in enumerate(series):
        y = top + i * (bar_h + gap)
        m = statistics.median(values)
        out.append(f'<text x="{left - 10}" y="{y + bar_h / 2 + 5:.1f}" text-anchor="end">{esc(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{m * scale:.1f}" height="{bar_h}" fill="{colors[i % 4]}"/>')
        for v in values:
            out.append(f'<circle cx="{left + v * scale:.1f}" cy="{y + bar_h / 2:.1f}" r="3" fill="black"/>')
        # The median's label, right of the bar and of every round's dot.
        out.append(f'<text x="{left + max(values) * scale + 10:.1f}" y="{y + bar_h / 2 + 5:.1f}">{m:,.0f}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


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
    if gobench.get("BenchmarkHandlerGateway"):
        rows.append(f"  gateway in-process, with a loopback upstream (both in the benchmark): "
                    f"{statistics.median(gobench['BenchmarkHandlerGateway']) / 1000:.1f} us")
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

    # --- the gateways, side by side --------------------------------------------
    gw_names = [("upstream", "upstream alone (Go net/http)"), ("gateway", "pbench-auth serve --upstream"),
                ("oauth2-proxy", "oauth2-proxy v7.15.6 (JWT bearer)"), ("gateway-apikey", "pbench-auth gateway, API key")]
    for name, what in gw_names:
        if not wrk.get(name):
            continue
        gw_cpu = f"  gateway CPU {med(name, 'gw_cpu_us'):6.1f} us/req" if "gw_cpu_us" in wrk[name][0] else " " * 29
        conns = (f"  new upstream conns/req {med(name, 'upconns'):.4f}, pool {med(name, 'pool'):.0f}"
                 if "pool" in wrk[name][0] else "")
        rows.append(f"  {what:<42} {med(name, 'rps'):>9.0f} req/s  p50 {med(name, 'p50_us') / 1000:6.2f} ms"
                    f"  p99 {med(name, 'p99_us') / 1000:6.2f} ms{gw_cpu}  upstream CPU {med(name, 'up_cpu_us'):5.1f} us/req{conns}")
    if wrk.get("gateway") and wrk.get("upstream") and wrk.get("oauth2-proxy"):
        r_up = ratios("gateway", "upstream")
        r_o2p = ratios("gateway", "oauth2-proxy")
        rows.append(f"  gateway / upstream alone {statistics.median(r_up):.2f}x ({spread(r_up)})")
        rows.append(f"  gateway / oauth2-proxy {statistics.median(r_o2p):.2f}x ({spread(r_o2p)})")
        target("gateway >= 0.3x upstream alone", statistics.median(r_up) >= 0.3, f"{statistics.median(r_up):.2f}x")
        target("gateway >= 4x oauth2-proxy", statistics.median(r_o2p) >= 4, f"{statistics.median(r_o2p):.2f}x")
        new_conns = sum(r["upconns"] * r["requests"] for r in wrk["gateway"])
        total = sum(r["requests"] for r in wrk["gateway"])
        target("no new upstream conn per request", new_conns <= 0.001 * total,
               f"{new_conns:.0f} new connections in {total:.0f} requests")
        cpu = med("gateway", "gw_cpu_us")
        target("gateway CPU <= 50 us/request", cpu <= 50, f"{cpu:.1f} us")
        if len(sys.argv) > 4:
            plot_svg(sys.argv[4], [(what, [r["rps"] for r in wrk[name]]) for name, what in gw_names if wrk.get(name)],
                     f"req/s, wrk -t1 -c16, one token, {len(wrk['gateway'])} rounds (bars: medians; dots: rounds)")
    else:
        target("gateway side by side with its peers", False, "not measured")
    if not wrk.get("gateway-apikey"):
        rows.append("  API-key path through the gateway: not measured (the gateway refused the key, see above)")

    # --- processes: call vs curl, start-up vs kubelogin --------------------------
    def pairs(prefix, a, b):
        """Per-round wall-time ratios a/b, every run's wall time, and the
        per-round ratios of CPU time (user + system, means)."""
        rs_, ts, cpu = [], defaultdict(list), []
        for path in sorted(glob.glob(prefix + ".*.json")):
            with open(path) as f:
                rs = {r["command"]: r for r in json.load(f)["results"]}
            ka = next(k for k in rs if k.startswith(a))
            kb = next(k for k in rs if k.startswith(b))
            rs_.append(rs[ka]["median"] / rs[kb]["median"])
            cpu.append((rs[ka]["user"] + rs[ka]["system"]) / (rs[kb]["user"] + rs[kb]["system"]))
            ts[a] += rs[ka]["times"]
            ts[b] += rs[kb]["times"]
        return rs_, ts, cpu

    for prefix, a, b, label, limit in [
        (hyperfine, "pbench-auth call", "curl", "call", 1.3),
        (hyperfine + "-version", "pbench-auth version", "kubelogin version", "version", 0.9),
        (hyperfine + "-token", "pbench-auth token", "kubelogin get-token", "token (file store)", 0.9),
    ]:
        rounds, times, cpu = pairs(prefix, a, b)
        peer = b.split()[0] if b != "curl" else "curl"
        tlabel = f"{label} <= {limit}x {b}" + (" (warm)" if "get-token" in b else "")
        if not rounds:
            why = "bench/call.sh failed (see its messages above)" if b == "curl" else \
                "no kubelogin (BENCH_KUBELOGIN or BENCH_KUBELOGIN_SRC, see bench/run.sh)"
            target(tlabel, False, "not measured: " + why)
            continue
        r = statistics.median(rounds)
        what = f"{a} ({store} store)" if b == "curl" else a
        rows.append(f"  {what} median {statistics.median(times[a]) * 1000:.2f} ms, {b} median "
                    f"{statistics.median(times[b]) * 1000:.2f} ms ({len(times[a])} runs each)")
        rows.append(f"  {label} / {peer} {r:.2f}x ({spread(rounds)}); CPU time (user+sys) "
                    f"{statistics.median(cpu):.2f}x ({spread(cpu)})")
        target(tlabel, r <= limit, f"{r:.2f}x")

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
