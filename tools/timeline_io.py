"""Reading a moe-ep HDF5 timeline (docs/timeline-format.md): shared by
tools/plot_timeline.py and tools/timeline_to_trace.py."""
import sys


def _die(msg, code=2):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)


def load_timeline(path, die=_die):
    """The /timeline rows as a numpy structured array, the policy names by
    enum value, and the root attributes. Calls die(message) on a file that is
    not a readable moe-ep timeline."""
    import h5py  # the callers check for it with their own install hint

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die(f"cannot open '{path}' as HDF5: {e}")
    with f:
        if "timeline" not in f:
            die(f"'{path}' has no /timeline dataset (is it a moe-ep timeline?)")
        ds = f["timeline"]
        rows = ds[...]
        enum = h5py.check_enum_dtype(ds.dtype["policy"]) or {}
        attrs = {k: f.attrs[k] for k in f.attrs}
    names = {int(v): k for k, v in enum.items()}
    if not names and "policies" in attrs:
        names = {i: str(p) for i, p in enumerate(attrs["policies"])}
    return rows, names, attrs
