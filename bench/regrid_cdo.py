"""The regrid stage against CDO on a 500 MB field: wall time, peak memory and agreement.

A global 0.25-degree monthly field (1440 x 720, 120 months, float32: 498 MB as NetCDF,
land masked as missing) goes to 1 degree by the stage's own entry point
(pipeline.regrid.regrid_dataset: open, check, regrid with dask on 2 threads, write Zarr)
and by ``cdo -P 2 remapcon`` / ``remapbil`` (writing NetCDF). Each run is a fresh child
process; its peak memory is the VmHWM of the process that does the work (for CDO, the
``ru_maxrss`` of the cdo child). Runs alternate, best of ``--runs`` each. Agreement: the
largest absolute difference where both are valid, and the cells valid in one only.

Usage: python bench/regrid_cdo.py [--months 120] [--runs 2] [--methods conservative linear]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

CDO_OPERATOR = {"conservative": "remapcon", "linear": "remapbil"}
CDO_GRID = "gridtype = lonlat\nxsize = 360\nysize = 180\nxfirst = 0.5\nxinc = 1\n"
CDO_GRID += "yfirst = -89.5\nyinc = 1\n"


def make_field(path: Path, months: int) -> None:
    """A smooth SST-like field with day-to-day noise and continents as missing values."""
    lat = -90 + 0.25 * (np.arange(720) + 0.5)
    lon = 0.25 * (np.arange(1440) + 0.5)
    la, lo = np.deg2rad(np.meshgrid(lat, lon, indexing="ij"))
    base = 28 * np.cos(la) ** 2 + 3 * np.sin(2 * la) * np.sin(lo) + np.cos(la) * np.cos(5 * lo)
    land = (np.sin(2 * lo + 1) * np.cos(3 * la) > 0.55) | (np.abs(lat)[:, None] > 80)
    rng = np.random.default_rng(0)
    data = np.empty((months, 720, 1440), dtype=np.float32)
    for m in range(months):
        data[m] = base * (1 + 0.1 * np.sin(2 * np.pi * m / 12)) + rng.normal(0, 0.3, base.shape)
        data[m][land] = np.nan
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), data, {"units": "degC"})},
        coords={
            "time": xr.date_range("2000-01-01", periods=months, freq="MS"),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    ds.to_netcdf(path, encoding={"sst": {"_FillValue": np.float32(-9999.0)}})


def _vmhwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def child(tool: str, method: str, src: str, out: str) -> dict:
    """In a fresh process: regrid with ``tool``; wall seconds and peak memory (MB)."""
    baseline = 0.0
    if tool == "pipeline":
        from pipeline.regrid import regrid_dataset  # the interpreter's start is not timed

        baseline = _vmhwm_mb()  # Python, xarray, dask, zarr: before any data
    start = time.perf_counter()
    if tool == "cdo":
        grid = Path(out).with_suffix(".grid")
        grid.write_text(CDO_GRID)
        cmd = ["cdo", "-s", "-P", "2", f"{CDO_OPERATOR[method]},{grid}", src, out]
        subprocess.run(cmd, check=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        grid = {"resolution": 1.0, "lat": [-90, 90], "lon": [0, 360], "method": method}
        grid |= {"nan_threshold": 0.5, "time_chunk": 120}  # the config's default
        manifest = {"dataset": "bench", "files": [{"path": src, "role": "data"}]}
        regrid_dataset(manifest, {}, grid, out, threads=2)
        peak = _vmhwm_mb()
    return {"seconds": time.perf_counter() - start, "peak_mb": peak, "import_mb": baseline}


def agreement(ours: Path, cdo: Path) -> dict:
    a = xr.open_zarr(ours)["sst"].load()
    b = xr.open_dataset(cdo)["sst"].load()
    b = b.assign_coords(lat=a["lat"].values, lon=a["lon"].values, time=a["time"].values)
    both = a.notnull() & b.notnull()
    return {
        "max_abs_diff": float(abs(a - b).where(both).max()),
        "valid_in_one_only": int((a.notnull() ^ b.notnull()).sum()),
        "valid_cells": int(both.sum()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=120)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=["conservative", "linear"])
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "sst_025.nc"
        make_field(src, args.months)
        print(f"source: {src.stat().st_size / 1e6:.0f} MB, 1440 x 720 x {args.months}")
        rows = []
        for method in args.methods:
            best: dict[str, dict] = {}
            for run in range(args.runs):
                for tool in ("pipeline", "cdo"):
                    out = (
                        Path(tmp)
                        / f"{tool}-{method}-{run}.{'zarr' if tool == 'pipeline' else 'nc'}"
                    )
                    result = subprocess.run(
                        [sys.executable, __file__, "--child", tool, method, str(src), str(out)],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    measured = json.loads(result.stdout.strip().splitlines()[-1])
                    if tool not in best or measured["seconds"] < best[tool]["seconds"]:
                        best[tool] = {**measured, "out": out}
            row = {
                "method": method,
                "pipeline_s": best["pipeline"]["seconds"],
                "cdo_s": best["cdo"]["seconds"],
                "pipeline_mb": best["pipeline"]["peak_mb"],
                "cdo_mb": best["cdo"]["peak_mb"],
                "import_mb": best["pipeline"]["import_mb"],
                **agreement(best["pipeline"]["out"], best["cdo"]["out"]),
            }
            row["wall_ratio"] = row["pipeline_s"] / row["cdo_s"]
            row["memory_ratio"] = row["pipeline_mb"] / row["cdo_mb"]
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(
            "| method | ours (s) | CDO (s) | wall ratio | ours (MB) | of which imports (MB) "
            "| CDO (MB) | memory ratio | max abs diff | cells valid in one only |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['method']} | {r['pipeline_s']:.2f} | {r['cdo_s']:.2f} | "
                f"{r['wall_ratio']:.2f} | {r['pipeline_mb']:.0f} | {r['import_mb']:.0f} | "
                f"{r['cdo_mb']:.0f} | {r['memory_ratio']:.2f} | {r['max_abs_diff']:.2e} | "
                f"{r['valid_in_one_only']} of {r['valid_cells']} |"
            )


if __name__ == "__main__":
    main()
