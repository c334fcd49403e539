#!/usr/bin/env python3
"""Converts an HDF5 timeline of `moe-ep compare|run --timeline` (docs/timeline-format.md)
into Chrome Trace Event JSON, for Perfetto (https://ui.perfetto.dev) or chrome://tracing.

usage: timeline_to_trace.py TIMELINE.h5 OUT.json

The trace has one process per policy (named by process_name metadata), one
track (thread) per rank (thread_name "rank R"), one complete event (ph "X",
ts and dur in microseconds) per (policy, step, layer, rank, phase) of
/timeline, the phases being the `t_<phase>` fields (route, plan, dispatch,
weights, compute, combine, and any backward phases such as t_bwd_dispatch),
and counter tracks (ph "C") per policy and rank for the slots and the bytes of
every (step, layer).

Time axis: a phase starts at its `start_<phase>` field (seconds since the run's
common epoch) when /timeline has one; otherwise the phases of each (policy,
rank) track are laid out back to back in (step, layer, phase) order from their
durations, starting at 0 (otherData.time_axis says which). Slices of one track
never overlap: a measured start earlier than the end of the track's previous
slice (clock noise between phases) is moved to that end (otherData.clamped
counts them).

Needs h5py and numpy (Debian: apt-get install python3-h5py).
"""
import json
import os
import sys

COUNTERS = {
    "slots": ["slots_native", "slots_foreign", "slots_dropped"],
    "bytes": ["bytes_tokens_sent", "bytes_tokens_recv", "bytes_weights_sent", "bytes_weights_recv"],
}


def die(msg, code=2):
    print(f"timeline_to_trace: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import h5py
    import numpy as np  # noqa: F401  (h5py needs it; imported for the clear message)
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"{e.name or e} is missing: install it with `apt-get install python3-h5py` (or `pip install h5py`)", 3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timeline_io import load_timeline  # noqa: E402


def load(path):
    """The /timeline rows, the policy names by enum value, the root attributes."""
    return load_timeline(path, die)



def phases_of(rows):
    """The phases, in field order: every `t_<phase>` field."""
    return [n[2:] for n in rows.dtype.names if n.startswith("t_")]


def convert(rows, names, attrs, source=""):
    """The Trace Event JSON object (a dict) of the timeline rows."""
    fields = rows.dtype.names
    for need in ("policy", "step", "layer", "rank"):
        if need not in fields:
            die(f"/timeline has no '{need}' field")
    phases = phases_of(rows)
    if not phases:
        die("/timeline has no t_<phase> duration fields")
    measured = [p for p in phases if f"start_{p}" in fields]
    events = []
    policies = sorted({int(p) for p in rows["policy"]})
    ranks = sorted({int(r) for r in rows["rank"]})
    for p in policies:
        name = names.get(p, f"policy {p}")
        events.append({"ph": "M", "name": "process_name", "pid": p + 1, "tid": 0, "args": {"name": name}})
        events.append({"ph": "M", "name": "process_sort_index", "pid": p + 1, "tid": 0, "args": {"sort_index": p}})
        for r in ranks:
            events.append({"ph": "M", "name": "thread_name", "pid": p + 1, "tid": r, "args": {"name": f"rank {r}"}})
            events.append({"ph": "M", "name": "thread_sort_index", "pid": p + 1, "tid": r,
                           "args": {"sort_index": r}})

    # Per (policy, rank) track, rows in (step, layer) order.
    order = sorted(range(len(rows)), key=lambda i: (int(rows["policy"][i]), int(rows["rank"][i]),
                                                    int(rows["step"][i]), int(rows["layer"][i])))
    counter_fields = {k: [f for f in v if f in fields] for k, v in COUNTERS.items()}
    clamped, max_shift_us = 0, 0.0
    slices = []
    track_end = {}
    for i in order:
        row = rows[i]
        p, r, s, l = int(row["policy"]), int(row["rank"]), int(row["step"]), int(row["layer"])
        key = (p, r)
        end = track_end.get(key, 0.0)
        planned = []
        cursor = end
        for ph in phases:
            dur = max(0.0, float(row[f"t_{ph}"]) * 1e6)
            if ph in measured:
                start = float(row[f"start_{ph}"]) * 1e6
            else:  # back to back after the previous phase of the track
                start = cursor
            planned.append((start, ph, dur))
            cursor = start + dur
        # Measured starts in time order; a phase without one keeps its place after the previous phase.
        if measured:
            planned.sort(key=lambda t: t[0])
        row_start = None
        for start, ph, dur in planned:
            if start < end:
                if measured and ph in measured and dur > 0:  # a phase that did not run (0 s) is no clock noise
                    clamped += 1
                    max_shift_us = max(max_shift_us, end - start)
                start = end
            if row_start is None:
                row_start = start
            slices.append({"ph": "X", "name": ph, "cat": "bwd" if ph.startswith("bwd") else "fwd", "pid": p + 1,
                           "tid": r, "ts": start, "dur": dur,
                           "args": {"policy": names.get(p, str(p)), "step": s, "layer": l, "rank": r}})
            end = start + dur
        track_end[key] = end
        for cname, cf in counter_fields.items():
            if cf:
                events.append({"ph": "C", "name": f"{cname} rank {r}", "pid": p + 1, "tid": r, "ts": row_start,
                               "args": {f: int(row[f]) for f in cf}})
    events.extend(slices)

    if len(measured) == len(phases):
        axis = "measured: every phase starts at its start_<phase> field (seconds since the run's common epoch)"
    elif measured:
        axis = (f"mixed: start_<phase> for {', '.join(measured)}; the other phases follow the previous phase of "
                "their track back to back")
    else:
        axis = ("synthesized: /timeline has no start_<phase> fields, so the phases of each (policy, rank) track "
                "are laid out back to back in (step, layer, phase) order from their durations, from 0; gaps and "
                "waits between phases are not shown")
    other = {"source": source, "format": "moe-ep timeline -> Chrome Trace Event", "time_axis": axis,
             "phases": phases, "policies": [names.get(p, str(p)) for p in policies], "ranks": len(ranks),
             "slices": len(slices), "clamped": clamped, "max_clamp_us": max_shift_us}
    for k in ("tool_version", "start_time", "mpi_size", "complete"):
        if k in attrs:
            v = attrs[k]
            other[k] = v.item() if hasattr(v, "item") else (v.decode() if isinstance(v, bytes) else v)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": other}


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(argv) != 2 else sys.stdout)
        return 0 if len(argv) == 2 else 2
    rows, names, attrs = load(argv[1])
    trace = convert(rows, names, attrs, source=argv[1])
    try:
        with open(argv[2], "w") as out:
            json.dump(trace, out)
    except OSError as e:
        die(f"cannot write '{argv[2]}': {e}")
    o = trace["otherData"]
    print(f"timeline_to_trace: {argv[2]}: {o['slices']} slices, {len(o['policies'])} policies x {o['ranks']} ranks, "
          f"time axis {o['time_axis'].split(':')[0]}" + (f", {o['clamped']} starts clamped" if o["clamped"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
