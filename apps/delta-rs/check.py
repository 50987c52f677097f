"""delta-rs (the `deltalake` Python package) appending to one table from
several processes at once.

delta-rs commits version N by creating _delta_log/<N>.json with
If-None-Match: * (deltalake 1.x does so on S3 by default: no locking
provider, no conditional_put option). A refused create means another writer
took version N: the commit retries on N+1. If a store lets two creates of
one version both succeed, one writer's commit replaces the other's and an
acknowledged append drops out of the table.

The check creates the table with one row, runs WRITERS writer processes of
APPENDS appends each (a unique row (writer, seq) per append), notes which
appends returned without error, then reads the table back: every
acknowledged row must be there.
"""

import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import short  # noqa: E402

WRITERS = 4
APPENDS = 10
START_DELAY_S = 2.0  # the writers start together, this long after they are spawned



def storage_options(env):
    return {
        "AWS_ENDPOINT_URL": env.endpoint,
        "AWS_ACCESS_KEY_ID": env.access_key,
        "AWS_SECRET_ACCESS_KEY": env.secret_key,
        "AWS_REGION": env.region,
        "AWS_ALLOW_HTTP": "true",
    }


def table_uri(env):
    return f"s3://{env.bucket}/{env.prefix}delta/t"


def rows(writer, seq):
    import arro3.core as a

    return a.Table.from_pydict({
        "writer": a.Array([writer], type=a.DataType.int64()),
        "seq": a.Array([seq], type=a.DataType.int64()),
    })


def writer_main(writer, start_at, acks_path):
    """One writer process: APPENDS appends, one JSON line per outcome."""
    checklib.clean_aws_environment()
    env = checklib.Env()
    from deltalake import write_deltalake

    opts, uri = storage_options(env), table_uri(env)
    with open(acks_path, "a") as out:
        time.sleep(max(0.0, start_at - time.time()))
        for seq in range(APPENDS):
            if env.remaining(margin=12) <= 0:
                out.write(json.dumps({"seq": seq, "skipped": "deadline"}) + "\n")
                out.flush()
                break
            t = time.monotonic()
            try:
                write_deltalake(uri, rows(writer, seq), mode="append", storage_options=opts)
                rec = {"seq": seq, "ok": True}
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                rec = {"seq": seq, "ok": False, "error": short(e, 300)}
            rec["s"] = round(time.monotonic() - t, 2)
            out.write(json.dumps(rec) + "\n")
            out.flush()


def main(check, env):
    checklib.clean_aws_environment()
    import deltalake
    from deltalake import DeltaTable, QueryBuilder, write_deltalake

    check.client = f"deltalake {deltalake.__version__}"
    opts, uri = storage_options(env), table_uri(env)
    check.facts.update({"writers": WRITERS, "appends_per_writer": APPENDS})

    check.progress(f"creating {uri} with one row")
    try:
        write_deltalake(uri, rows(-1, 0), mode="error", storage_options=opts)
    except Exception as e:  # noqa: BLE001
        check.facts["create_error"] = short(e, 300)
        check.finish("does-not-work", f"creating the table failed: {short(e)}")

    env.check_time("the writers")
    check.progress(f"{WRITERS} writers x {APPENDS} appends")
    writers, killed = checklib.run_writers(env, __file__, WRITERS, START_DELAY_S)

    acked, failed, errors, crashed = set(), set(), [], 0
    for w, returncode, records, tail in writers:
        if returncode not in (0, -9):
            crashed += 1
            errors.append(f"writer {w} exited {returncode}: {short(tail)}")
        for rec in records:
            if rec.get("ok"):
                acked.add((w, rec["seq"]))
            elif "error" in rec:
                failed.add((w, rec["seq"]))
                errors.append(rec["error"])
    attempted = len(acked) + len(failed)
    check.facts.update({
        "acknowledged": len(acked), "failed": len(failed), "writers_killed": killed,
        "writers_crashed": crashed,
    })
    if errors:
        check.facts["first_error"] = errors[0]
    check.progress(f"{len(acked)} of {attempted} appends acknowledged, {len(failed)} failed")

    env.check_time("reading the table back")
    try:
        dt = DeltaTable(uri, storage_options=opts)
        version = dt.version()
        data = QueryBuilder().register("t", dt).execute("select writer, seq from t").read_all()
        found = list(zip(data["writer"].to_pylist(), data["seq"].to_pylist()))
    except Exception as e:  # noqa: BLE001
        check.facts["read_error"] = short(e, 300)
        check.finish(
            "unknown" if acked else "does-not-work",
            f"{len(acked)} of {attempted} appends were acknowledged, but reading the table "
            f"back failed: {short(e)}",
        )
    present = set(found)
    missing = sorted(acked - present)
    extra = sorted(present - acked - {(-1, 0)})
    check.facts.update({
        "final_version": version, "rows": len(found), "missing": len(missing),
        "unacknowledged_present": len(extra), "duplicate_rows": len(found) - len(present),
        "initial_row_present": (-1, 0) in present,
    })
    if missing:
        check.facts["missing_rows"] = [list(r) for r in missing[:10]]
        check.finish(
            "unsafe",
            f"{len(missing)} of {len(acked)} acknowledged appends are missing from the table "
            f"(final version {version}, {len(found)} rows); {WRITERS} writers appended "
            f"concurrently and their commits replaced each other's",
        )
    if (-1, 0) not in present:
        check.finish("unsafe", f"the table's first row is missing (final version {version})")
    if not acked and attempted == 0:
        check.finish("unknown", "no append ran: " + (errors[0] if errors else "the writers did nothing"))
    if failed or crashed:
        check.finish(
            "does-not-work",
            f"{len(failed)} of {attempted} appends failed with errors ({errors[0] if errors else ''}); "
            f"all {len(acked)} acknowledged ones are in the table (final version {version})",
        )
    if killed or attempted < WRITERS * APPENDS:
        check.finish(
            "unknown",
            f"only {attempted} of {WRITERS * APPENDS} appends ran before the deadline; "
            f"all {len(acked)} acknowledged ones are in the table",
        )
    check.finish(
        "safe",
        f"{WRITERS} writers made {attempted} concurrent appends, all acknowledged and all "
        f"{len(acked)} in the table (final version {version}, {len(found)} rows)",
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--writer":
        writer_main(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    else:
        checklib.Check("delta-rs", package="deltalake").run(main)
