#!/usr/bin/env python3
"""While the weight transfers are in flight (between begin_exchange and the
wait), the layer must not allocate, fence the whole device or deep_copy
without an execution-space instance: each would synchronise a GPU and kill the
overlap of weights with the token exchange (issue 18). Checks the dispatch
stage of runtime/layer/MoeLayer.cpp, which is all that runs in that window, and
that forward() calls the stages in that order; and the phase timers dispatch
opens (runtime/layer/PhaseTimer.hpp), which must not fence the whole device,
and the event clock's begin/end (runtime/layer/EventPhaseClock.cpp), which
must not wait for events."""
import re
import sys

src = open(sys.argv[1]).read()


def body(name):
    m = re.search(r"\n[^\n]*MoeLayer::" + name + r"\([^)]*\)[^{]*\{", src)
    if not m:
        sys.exit(f"check_no_sync_in_flight: MoeLayer::{name} not found")
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(src[i], 0)
        i += 1
    return src[m.end():i - 1]


forward = body("forward")
order = [forward.find(s) for s in ("start_weight_transfers(", "dispatch(", "finish_weight_transfers(")]
if -1 in order or order != sorted(order):
    sys.exit("check_no_sync_in_flight: forward() must call start_weight_transfers, dispatch, finish_weight_transfers in order")
start = body("start_weight_transfers")
if not re.search(r"begin_exchange\([^;]*\);\s*$", start.strip() + "\n", re.S) or not start.strip().endswith(");"):
    sys.exit("check_no_sync_in_flight: begin_exchange must be the last call of start_weight_transfers")
forbidden = {
    r"Kokkos::fence\s*\(": "a global Kokkos::fence() (fence an execution-space instance instead)",
    r"deep_copy\s*\((?![^,;]*exec)": "a deep_copy without an execution-space instance",
    r"view_alloc|Tracked(Matrix|Vector|IndexVector)?\s*[\w(]|\.lease\s*\(|new\s+|malloc|create_mirror": "an allocation",
}
bad = [why for pat, why in forbidden.items() if re.search(pat, body("dispatch"))]
if bad:
    sys.exit("check_no_sync_in_flight: MoeLayer::dispatch (runs while weights are in flight) has " + "; ".join(bad))
import os
timer = open(os.path.join(os.path.dirname(sys.argv[1]), "PhaseTimer.hpp")).read()
if re.search(r"Kokkos::fence\s*\(", timer):
    sys.exit("check_no_sync_in_flight: runtime/layer/PhaseTimer.hpp (BusyScope runs inside dispatch) has a global "
             "Kokkos::fence() (fence an execution-space instance instead)")
# The event clock's begin() and end() run inside dispatch too: they may only
# record events; waiting for them (synchronize, elapsed time) is resolve()'s.
clock = open(os.path.join(os.path.dirname(sys.argv[1]), "EventPhaseClock.cpp")).read()
for name in ("begin", "end", "acquire"):
    m = re.search(r"\n[^\n]*EventPhaseClock::" + name + r"\([^)]*\)[^{]*\{", clock)
    if not m:
        sys.exit(f"check_no_sync_in_flight: EventPhaseClock::{name} not found")
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(clock[i], 0)
        i += 1
    if re.search(r"synchronize|elapsed_ms|fence", clock[m.end():i - 1]):
        sys.exit(f"check_no_sync_in_flight: EventPhaseClock::{name} (runs inside dispatch) waits for events")
print("check_no_sync_in_flight: dispatch stage is free of allocations, global fences and blocking copies")
