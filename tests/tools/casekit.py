"""The check/finish pair every Python test case script uses: a check records
and prints a failure and the case goes on, so one run reports every failure."""
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)
    return cond


def finish():
    """Prints the verdict; returns the exit code (1 when any check failed)."""
    print("ok" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0
