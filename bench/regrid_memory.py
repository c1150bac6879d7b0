"""Peak memory of the regrid stage: out-of-core (dask, chunked over time) vs eager.

Each measurement runs in a fresh subprocess and reports its peak RSS, so the numbers
are comparable within one run. Usage: python bench/regrid_memory.py [--years 25 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRID = {
    "resolution": 5.0,
    "lat": [-55, 60],
    "lon": [0, 360],
    "method": "conservative",
    "nan_threshold": 0.5,
    "time_chunk": 60,
}


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM; unlike ru_maxrss it does not inherit the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(mode: str, src: str, out: str) -> dict:
    """Child process: regrid ``src`` and report peak RSS and wall time."""
    import dask
    import xarray as xr

    from pipeline.regrid import regrid, regrid_dataset

    start = time.perf_counter()
    if mode == "chunked":
        manifest = {"dataset": "bench", "files": [{"path": src, "role": "data"}]}
        with dask.config.set(scheduler="threads", num_workers=2):
            regrid_dataset(manifest, {}, GRID, out, threads=2)
    else:  # eager peer: the whole record in memory, then the same regrid
        regrid(xr.open_dataset(src).load(), GRID).to_zarr(out, mode="w")
    seconds = time.perf_counter() - start
    peak_mb = peak_rss_mb()
    return {"mode": mode, "peak_rss_mb": round(peak_mb, 1), "seconds": round(seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--years", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    from pipeline.sources.synthetic import write_enso

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for years in args.years:
            src = write_enso(Path(tmp) / f"y{years}", years=years, resolution=2.0)["data"]
            data_mb = 12 * years * 89 * 180 * 4 * 2 / 1e6
            for mode in ("chunked", "eager"):
                out = Path(tmp) / f"{mode}{years}.zarr"
                result = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(src), str(out)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                row = json.loads(result.stdout.strip().splitlines()[-1])
                row.update(years=years, data_mb=round(data_mb, 1))
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| years | data (MB) | mode | peak RSS (MB) | wall (s) |\n|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['years']} | {r['data_mb']} | {r['mode']} | {r['peak_rss_mb']} | {r['seconds']} |"
        )


if __name__ == "__main__":
    main()
