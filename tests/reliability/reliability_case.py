#!/usr/bin/env python3
"""Reliability cases of moe-ep with several ranks and real files
(docs/reliability.md). Needs h5py and numpy.

usage: reliability_case.py --mpiexec MPIEXEC --bin MOE_EP --h5dump H5DUMP --workdir DIR CASE

CASE:
  refusals_every_rank  overflow, memory and parsing refusals under 2 ranks:
                       exit 2 within 30 s, exactly one `moe-ep:` line (also
                       when mpiexec kills the job at the first bad exit)
  special_outputs      --json /dev/null (stays a device), a directory, a FIFO
                       (no hang), for --json, --timeline and trace --out
  collisions           --json/--timeline equal to each other or to the trace:
                       input (same path, ./path, a hard link, a symlink): exit 2,
                       the trace byte for byte unchanged
  lock_writer          a second run on a timeline that a first run is writing
                       (and on a file another process holds an flock on) is
                       refused; the first run's file is complete and correct,
                       the locked file byte for byte unchanged
  lock_reader          a run on a timeline that h5py holds open is refused and
                       the file is byte for byte unchanged
  disk_full            root only (else skipped with a message, exit 77): a small
                       tmpfs fills mid-run: one line naming --timeline and the
                       path, non-zero exit on every rank, every flushed row
                       readable with h5dump and h5py, the old JSON unchanged,
                       no *.tmp file
  json_disk_full       root only: --json on a full tmpfs: exit 1 naming --json,
                       the old JSON unchanged, no *.tmp file
  oom_results          under --mem-budget EP is OOM: max_rel_err null, not 0
  no_stray_tmp         every refused or failed run above leaves no *.tmp file
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import h5py
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from casekit import check, failures, finish  # noqa: E402,F401


TINY = ["--tokens", "64", "--hidden", "8", "--ffn", "8", "--quiet"]



def run(cmd, timeout=120, **kw):
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        failures.append(f"timed out after {timeout}s (a hang?): {' '.join(cmd)}")
        raise SystemExit(finish())
    p.elapsed = time.time() - t0
    if p.stdout.strip():
        print(p.stdout.rstrip())
    if p.stderr.strip():
        print("stderr:", p.stderr.rstrip())
    return p


def mpi(a, ranks, args, **kw):
    return run([a.mpiexec, "-n", str(ranks), "--oversubscribe", a.bin] + args, **kw)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def moe_lines(p):
    return [l for l in p.stderr.splitlines() if l.startswith("moe-ep:")]


def expect_refusal(p, pattern, what, code=2, limit_s=30):
    lines = moe_lines(p)
    check(p.returncode == code, f"{what}: exit code {p.returncode}, expected {code}")
    check(len(lines) == 1, f"{what}: {len(lines)} 'moe-ep:' lines on stderr, expected exactly one")
    check(any(pattern in l for l in lines), f"{what}: stderr lacks '{pattern}'")
    check(p.elapsed < limit_s, f"{what}: took {p.elapsed:.1f}s (limit {limit_s}s)")
    check("# policy" not in p.stdout, f"{what}: the run started")
    for bad in ("Segmentation", "HDF5-DIAG", "terminate called", "Backtrace", "signal"):
        check(bad not in p.stderr, f"{what}: stderr shows '{bad}'")


def no_tmp(a, what):
    stray = glob.glob(os.path.join(a.workdir, "**", "*.tmp"), recursive=True) + \
        glob.glob(os.path.join(a.workdir, "**", ".*.tmp"), recursive=True)
    check(not stray, f"{what}: stray temporary files left: {stray}")


# ---------------------------------------------------------------------------
def case_refusals_every_rank(a):
    cases = [
        (["compare", "--tokens", "144115188075855872"], "overflow"),
        (["compare", "--tokens-per-rank", "9223372036854775807,9223372036854775807"], "--tokens-per-rank"),
        (["compare", "--tokens", "100000000000"], "needs at least"),
        (["compare", "--seed", "-1"], "--seed"),
        (["compare", "--mem-budget", "inf"], "--mem-budget"),
        (["compare", "--policies", "ep,ep"], "--policies"),
        (["run", "--policy", "ep,llep"], "--policy"),
        (["compare", "--tokens-per-rank", ""], "--tokens-per-rank"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ]
    # mpiexec without its kill grace (as the tests' environment sets it,
    # tests/CMakeLists.txt) ends the job at the first non-zero exit, as Slurm's
    # KillOnBadExit does: the parse-time refusals here (before MPI_Init:
    # --seed, --policies, frobnicate) also check that rank 0's line still
    # comes out.
    os.environ["OMPI_MCA_odls_base_sigkill_timeout"] = "0"
    for args, pattern in cases:
        expect_refusal(mpi(a, 2, args + ["--quiet"] if args[0] != "frobnicate" else args), pattern, " ".join(args))
    # --check's reference on rank 0 (double precision, all tokens) does not
    # fit this machine although the runtime's own buffers do.
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE")
    tokens = mem // 200  # runtime ~72 B/token, reference ~408 B/token (D=8, K=1, N=2)
    p = mpi(a, 1, ["compare", "--check", "--tokens", str(tokens), "--hidden", "8", "--ffn", "8", "--experts", "2",
                   "--top-k", "1", "--quiet"])
    expect_refusal(p, "--check: rank 0 with --check's double-precision reference", "--check reference too big")


def case_special_outputs(a):
    st = os.stat("/dev/null")
    d = os.path.join(a.workdir, "adir")
    os.makedirs(d)
    fifo = os.path.join(a.workdir, "fifo")
    os.mkfifo(fifo)
    for flag, path, kind in [("--json", "/dev/null", "a character device"), ("--timeline", "/dev/null", "a character device"),
                             ("--json", d, "a directory"), ("--timeline", d, "a directory"),
                             ("--json", fifo, "a FIFO"), ("--timeline", fifo, "a FIFO")]:
        p = mpi(a, 2, ["compare", flag, path] + TINY, timeout=60)
        expect_refusal(p, f"{flag}: '{path}' is {kind}", f"compare {flag} {path}")
    p = run([a.bin, "trace", "--out", fifo], timeout=60)
    expect_refusal(p, f"--out: '{fifo}' is a FIFO", "trace --out FIFO")
    p = run([a.bin, "emulate", "--tokens", "16", "--json", fifo], timeout=60)
    expect_refusal(p, f"--json: '{fifo}' is a FIFO", "emulate --json FIFO")
    st2 = os.stat("/dev/null")
    check(stat.S_ISCHR(st2.st_mode) and st2.st_rdev == st.st_rdev, "/dev/null is no longer the character device")
    check(stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced")
    check(os.listdir(d) == [], "the directory was written into")
    no_tmp(a, "special outputs")


def case_collisions(a):
    trace = os.path.join(a.workdir, "trace.h5")
    p = run([a.bin, "trace", "--out", trace, "--ranks", "2", "--tokens", "64"])
    check(p.returncode == 0, "moe-ep trace failed")
    before = sha(trace)
    os.link(trace, os.path.join(a.workdir, "hard.h5"))
    os.symlink(trace, os.path.join(a.workdir, "soft.h5"))
    js = os.path.join(a.workdir, "r.json")
    scen = ["--scenario", f"trace:{trace}"]
    variants = [
        (["--json", trace] + scen, "--json and --scenario trace:"),
        (["--timeline", trace] + scen, "--timeline and --scenario trace:"),
        (["--timeline", os.path.join(a.workdir, ".", "trace.h5")] + scen, "--timeline and --scenario trace:"),
        (["--timeline", os.path.join(a.workdir, "hard.h5")] + scen, "--timeline and --scenario trace:"),
        (["--json", os.path.join(a.workdir, "soft.h5")] + scen, "--json and --scenario trace:"),
        (["--json", js, "--timeline", js], "--timeline and --json"),
        (["--json", js, "--timeline", os.path.join(a.workdir, "sub", "..", "r.json")], "--timeline and --json"),
    ]
    os.makedirs(os.path.join(a.workdir, "sub"))
    for args, pattern in variants:
        expect_refusal(mpi(a, 2, ["compare"] + args + TINY), pattern, "compare " + " ".join(args))
        check(sha(trace) == before, f"{' '.join(args)}: the trace changed")
    check(not os.path.exists(js), "a refused run created the --json file")
    no_tmp(a, "collisions")


def case_lock_writer(a):
    t5 = os.path.join(a.workdir, "t.h5")
    js = os.path.join(a.workdir, "r.json")
    steps = 200
    first = subprocess.Popen([a.mpiexec, "-n", "2", "--oversubscribe", a.bin, "compare", "--policies", "ep,llep",
                              "--steps", str(steps), "--timeline", t5, "--json", js] + TINY,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the first run has published its file.
    t0 = time.time()
    while not os.path.exists(t5) and time.time() - t0 < 60:
        time.sleep(0.05)
    check(os.path.exists(t5), "the first run never created its timeline")
    p = mpi(a, 2, ["compare", "--policies", "ep", "--timeline", t5] + TINY)
    expect_refusal(p, "is locked by another process", "second writer")
    out, err = first.communicate(timeout=200)
    check(first.returncode == 0, f"the first run failed ({first.returncode}): {err}")
    with h5py.File(t5, "r") as f:
        rows = f["timeline"][...]
        check(int(f.attrs["complete"]) == 1, "the first run's timeline is not complete")
        check(len(rows) == steps * 2 * 2, f"the first run's timeline has {len(rows)} rows, expected {steps * 4}")
    # A file some other process holds an exclusive flock on (as HDF5 does).
    import fcntl
    held = os.path.join(a.workdir, "held.h5")
    shutil.copy(t5, held)
    before = sha(held)
    with open(held, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        p = mpi(a, 2, ["compare", "--policies", "ep", "--timeline", held] + TINY)
        expect_refusal(p, "is locked by another process", "locked file")
    check(sha(held) == before, "the locked file changed")
    no_tmp(a, "lock_writer")


def case_lock_reader(a):
    t5 = os.path.join(a.workdir, "t.h5")
    p = mpi(a, 2, ["compare", "--policies", "ep", "--steps", "2", "--timeline", t5] + TINY)
    check(p.returncode == 0, "first run failed")
    before = sha(t5)
    with h5py.File(t5, "r") as f:
        n = len(f["timeline"])
        p = mpi(a, 2, ["compare", "--policies", "ep", "--timeline", t5] + TINY)
        expect_refusal(p, "is locked by another process", "timeline open in h5py")
        check(len(f["timeline"][...]) == n, "the reader's view changed")
    check(sha(t5) == before, "the file h5py held changed")
    no_tmp(a, "lock_reader")


def mount_tmpfs(a, size):
    if os.geteuid() != 0:
        print(f"SKIP: disk-full case needs root to mount a small tmpfs (running as uid {os.geteuid()})")
        raise SystemExit(77)
    mnt = os.path.join(a.workdir, "full")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt], capture_output=True, text=True)
    if p.returncode != 0:
        print(f"SKIP: cannot mount a tmpfs here ({p.stderr.strip()})")
        raise SystemExit(77)
    return mnt


def fill(mnt, leave):
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(mnt, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def case_disk_full(a):
    mnt = mount_tmpfs(a, "8m")
    try:
        t5, js = os.path.join(mnt, "t.h5"), os.path.join(mnt, "r.json")
        with open(js, "w") as f:
            f.write('{"earlier": "result"}\n')
        # Room for the header and the writer's reserve (about 1.8 MiB), and
        # some steps more; more room when the writer could not even start.
        for leave_kib in (1900, 2300, 3000, 4000):
            fill(mnt, leave_kib * 1024)
            p = mpi(a, 2, ["compare", "--policies", "ep", "--tokens", "64", "--hidden", "8", "--ffn", "8", "--experts",
                           "4096", "--top-k", "1", "--steps", "400", "--layers", "2", "--warmup", "0", "--quiet",
                           "--timeline", t5, "--json", js], timeout=180)
            if os.path.exists(t5):
                break
            os.remove(os.path.join(mnt, "filler"))
            print(f"the run could not start with {leave_kib} KiB free; again with more")
        lines = moe_lines(p)
        check(p.returncode != 0, "a run that filled the disk exited 0")
        check(len(lines) == 1, f"{len(lines)} 'moe-ep:' lines, expected one")
        check(any("--timeline" in l and t5 in l and "No space left" in l for l in lines),
              "the line does not name --timeline, the path and the full disk")
        check("# policy" not in p.stdout, "results were printed for a run that did not finish")
        for bad in ("HDF5-DIAG", "Segmentation", "terminate called"):
            check(bad not in p.stderr, f"stderr shows '{bad}'")
        d = run([a.h5dump, t5])
        check(d.returncode == 0 and "HDF5-DIAG" not in d.stderr, "h5dump cannot read the file after the full disk")
        with h5py.File(t5, "r") as f:
            rows = f["timeline"][...]
            loads = f["expert_load"][...]
            check(int(f.attrs["complete"]) == 0, "a failed run's file says complete = 1")
        check(len(rows) > 0, "no rows were flushed before the disk filled (the case needs some)")
        # Rows are flushed per (step, layer): whole groups of 2 ranks, in order.
        check(len(rows) % 2 == 0, f"{len(rows)} rows: not whole (step, layer) groups of 2 ranks")
        groups = len(rows) // 2
        want = [(s, l, r) for s in range(400) for l in range(2) for r in range(2)][:len(rows)]
        check(list(zip(rows["step"].tolist(), rows["layer"].tolist(), rows["rank"].tolist())) == want,
              "the flushed rows are not exactly the first (step, layer) groups in order")
        check(len(loads) == groups * 4096, "expert_load rows do not match the timeline rows")
        check(int(rows["slots_routed"].sum()) == groups * 2 * 64, "flushed rows hold wrong slot counts")
        with open(js) as f:
            check(json.load(f) == {"earlier": "result"}, "the earlier JSON changed")
        no_tmp(a, "disk_full")
    finally:
        subprocess.run(["umount", mnt])


def case_json_disk_full(a):
    mnt = mount_tmpfs(a, "1m")
    try:
        js = os.path.join(mnt, "r.json")
        with open(js, "w") as f:
            f.write('{"earlier": "result"}\n')
        fill(mnt, 0)
        p = mpi(a, 2, ["compare", "--json", js] + TINY)
        lines = moe_lines(p)
        check(p.returncode != 0, "a JSON write to a full disk exited 0")
        check(len(lines) == 1 and "--json" in lines[0] and js in lines[0], "the line does not name --json and the path")
        with open(js) as f:
            check(json.load(f) == {"earlier": "result"}, "the earlier JSON changed")
        no_tmp(a, "json_disk_full")
    finally:
        subprocess.run(["umount", mnt])


def case_oom_results(a):
    js = os.path.join(a.workdir, "r.json")
    p = mpi(a, 4, ["compare", "--policies", "ep,llep", "--scenario", "95:1", "--check", "--mem-budget", "40",
                   "--json", js, "--quiet"], timeout=200)
    check(p.returncode == 0, "the budget run failed")
    with open(js) as f:
        res = {q["name"]: q for q in json.load(f)["policies"]}
    check(res["ep"]["status"] == "oom", "ep is not OOM under --mem-budget 40")
    check(res["ep"]["max_rel_err"] is None, f"OOM ep reports max_rel_err {res['ep']['max_rel_err']}, expected null")
    check(res["ep"]["max_rel_err_full"] is None, "OOM ep reports a max_rel_err_full")
    check(res["llep"]["status"] == "ok" and isinstance(res["llep"]["max_rel_err"], float), "llep did not run and check")


def case_no_stray_tmp(a):
    # Refused and failed runs of every kind, then no temporary file anywhere.
    js = os.path.join(a.workdir, "r.json")
    t5 = os.path.join(a.workdir, "t.h5")
    mpi(a, 2, ["compare", "--json", js, "--timeline", js] + TINY)
    mpi(a, 2, ["compare", "--tokens", "144115188075855872", "--json", js, "--timeline", t5, "--quiet"])
    run([a.bin, "trace", "--out", os.path.join(a.workdir, "x.h5"), "--scenario", "95:x"])
    run([a.bin, "trace", "--out", os.path.join(a.workdir, "ok.h5")])
    run([a.bin, "emulate", "--tokens", "16", "--json", js, "--quiet"])
    check(os.path.exists(js) and os.path.exists(os.path.join(a.workdir, "ok.h5")), "successful runs wrote nothing")
    check(not os.path.exists(t5), "a refused run created its timeline")
    no_tmp(a, "no_stray_tmp")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--h5dump", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("case")
    a = ap.parse_args()
    if os.path.ismount(os.path.join(a.workdir, "full")):
        subprocess.run(["umount", os.path.join(a.workdir, "full")])
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    globals()["case_" + a.case](a)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
