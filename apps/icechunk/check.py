"""Icechunk (the `icechunk` Python package, with zarr) committing to one
branch from several processes at once.

Icechunk 2.x (spec v2; icechunk 2.x needs Python 3.12, so apps/icechunk/python
asks for 3.13) keeps branches, tags and the snapshot list in one object,
`repo`, at the repository root. A new repository writes it with
If-None-Match: *. A commit writes its snapshot, then re-fetches `repo` and,
if the branch tip is still the commit's parent, PUTs it back with If-Match:
<ETag> (the ETag sent without quotes) and its write id in the object's
metadata. A refusal with error code PreconditionFailed,
ConditionalRequestConflict or ConcurrentModification is read back (a HEAD
that finds its own write id counts as its own write); otherwise the update
re-fetches and retries, and a commit whose parent moved fails with a
conflict, which commit(rebase_with=ConflictDetector()) rebases onto the new
tip and tries again. If a store lets two If-Match PUTs from one ETag both
succeed, the later `repo` replaces the earlier and an acknowledged commit
drops out of the branch.

The check creates a repository and commits its root group, runs WRITERS
writer processes of COMMITS commits each on main (each commit creates its
own zarr array w<writer>_s<seq> holding writer * 1000 + seq, rebasing on
conflicts, at most REBASE_TRIES times), notes which commits returned a
snapshot id, then opens the repository again and reads main: every
acknowledged snapshot must be in main's ancestry and its array, with its
value, at the tip.

Icechunk 2.x retries a refused update of `repo` up to 100 times with an
exponential backoff of at most 30 s, so on a store that refuses every
If-Match (one that matches only the quoted ETag) one commit takes most of an
hour to fail. The check keeps the 100 tries and caps the backoff at
MAX_BACKOFF_MS: such a commit fails in about 16 s ("repository cannot be
updated after 100 attempts"), within the deadline. (Icechunk 1.1.21 retried
without bound, by recursion, and died of SIGSEGV there.)
"""

import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import short  # noqa: E402

WRITERS = 4
COMMITS = 4
REBASE_TRIES = 30
UPDATE_TRIES = 100  # icechunk's default for updates of `repo`
INITIAL_BACKOFF_MS = 50  # icechunk's default
MAX_BACKOFF_MS = 100  # icechunk's default is 30,000
START_DELAY_S = 3.0  # the writers start together, this long after they are spawned



def make_storage(env):
    import icechunk

    return icechunk.s3_storage(
        bucket=env.bucket,
        prefix=f"{env.prefix}icechunk",
        region=env.region,
        endpoint_url=env.endpoint,
        allow_http=True,
        access_key_id=env.access_key,
        secret_access_key=env.secret_key,
        force_path_style=True,
    )


def make_config():
    """The default configuration, with the backoff between `repo` updates capped."""
    import icechunk

    retry_config = getattr(icechunk, "RepoUpdateRetryConfig", None)
    if retry_config is None:  # not exported by icechunk 2.3.0
        from icechunk._icechunk_python import RepoUpdateRetryConfig as retry_config
    return icechunk.RepositoryConfig(repo_update_retries=retry_config(
        default=icechunk.StorageRetriesSettings(
            max_tries=UPDATE_TRIES,
            initial_backoff_ms=INITIAL_BACKOFF_MS,
            max_backoff_ms=MAX_BACKOFF_MS,
        )))


def array_name(writer, seq):
    return f"w{writer}_s{seq}"


def exit_text(rc):
    if rc is not None and rc < 0:
        try:
            return f"died of {signal.Signals(-rc).name}"
        except ValueError:
            pass
    return f"exited {rc}"


def writer_main(writer, start_at, acks_path):
    """One writer process: COMMITS commits, one JSON line per outcome."""
    checklib.clean_aws_environment()
    env = checklib.Env()
    import icechunk
    import zarr

    with open(acks_path, "a") as out:
        try:
            repo = icechunk.Repository.open(make_storage(env), config=make_config())
        except Exception as e:  # noqa: BLE001
            out.write(json.dumps({"seq": 0, "ok": False, "error": "open: " + short(e, 300)}) + "\n")
            return
        time.sleep(max(0.0, start_at - time.time()))
        for seq in range(COMMITS):
            if env.remaining(margin=12) <= 0:
                out.write(json.dumps({"seq": seq, "skipped": "deadline"}) + "\n")
                out.flush()
                break
            t = time.monotonic()
            try:
                session = repo.writable_session("main")
                started_from = session.snapshot_id
                root = zarr.open_group(session.store, mode="a")
                arr = root.create_array(array_name(writer, seq), shape=(1,), chunks=(1,), dtype="int64")
                arr[0] = writer * 1000 + seq
                sid = session.commit(
                    f"writer {writer} seq {seq}",
                    rebase_with=icechunk.ConflictDetector(),
                    rebase_tries=REBASE_TRIES,
                )
                rec = {"seq": seq, "ok": True, "snapshot": sid}
                try:  # a commit whose parent is not where it started was rebased
                    rec["rebased"] = repo.lookup_snapshot(sid).parent_id != started_from
                except Exception:  # noqa: BLE001 - only a fact
                    pass
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                kind = "conflict" if isinstance(
                    e, (icechunk.ConflictError, icechunk.RebaseFailedError)) else "error"
                rec = {"seq": seq, "ok": False, "kind": kind, "error": short(e, 300)}
            rec["s"] = round(time.monotonic() - t, 2)
            out.write(json.dumps(rec) + "\n")
            out.flush()


def main(check, env):
    checklib.clean_aws_environment()
    import icechunk
    import zarr

    check.client = f"icechunk {icechunk.__version__}, zarr {zarr.__version__}"
    check.facts.update({"writers": WRITERS, "commits_per_writer": COMMITS})

    where = f"s3://{env.bucket}/{env.prefix}icechunk"
    check.progress(f"creating a repository at {where} and committing its root group")
    check.facts.update({"update_tries": UPDATE_TRIES, "max_backoff_ms": MAX_BACKOFF_MS})
    try:
        repo = icechunk.Repository.create(make_storage(env), config=make_config())
        check.facts["spec_version"] = int(repo.spec_version)
    except Exception as e:  # noqa: BLE001
        check.facts["create_error"] = short(e, 300)
        check.finish("does-not-work", f"creating the repository failed: {short(e)}")
    t = time.monotonic()
    try:
        session = repo.writable_session("main")
        zarr.group(store=session.store, overwrite=True)
        base = session.commit("root group")
    except Exception as e:  # noqa: BLE001
        check.facts["create_error"] = short(e, 300)
        check.finish(
            "does-not-work",
            f"committing the new repository's root group failed after "
            f"{time.monotonic() - t:.1f} s, nothing was acknowledged: {short(e)}",
        )
    check.facts["base_snapshot"] = base

    env.check_time("the writers")
    check.progress(f"{WRITERS} writers x {COMMITS} commits")
    writers, killed = checklib.run_writers(env, __file__, WRITERS, START_DELAY_S)

    acked, failed, errors, crashed, conflicts, rebased = {}, set(), [], 0, 0, 0
    for w, returncode, records, tail in writers:
        if returncode not in (0, -9):
            crashed += 1
            errors.append(f"writer {w} {exit_text(returncode)}: {short(tail)}")
        for rec in records:
            if rec.get("ok"):
                acked[(w, rec["seq"])] = rec["snapshot"]
                rebased += bool(rec.get("rebased"))
            elif "error" in rec:
                failed.add((w, rec["seq"]))
                errors.append(rec["error"])
                conflicts += rec.get("kind") == "conflict"
    attempted = len(acked) + len(failed)
    check.facts.update({
        "acknowledged": len(acked), "rebased": rebased, "failed": len(failed),
        "failed_on_conflict": conflicts,
        "writers_killed": killed, "writers_crashed": crashed,
    })
    if errors:
        check.facts["first_error"] = errors[0]
    check.progress(f"{len(acked)} of {attempted} commits acknowledged, {len(failed)} failed")

    env.check_time("reading the repository back")
    try:
        repo = icechunk.Repository.open(make_storage(env), config=make_config())
        ancestry = [s.id for s in repo.ancestry(branch="main")]
        tip = repo.readonly_session(branch="main")
        root = zarr.open_group(tip.store, mode="r")
        names = set(root.array_keys())
        values = {}
        for (w, seq) in acked:
            name = array_name(w, seq)
            if name in names:
                values[name] = int(root[name][0])
    except Exception as e:  # noqa: BLE001
        check.facts["read_error"] = short(e, 300)
        check.finish(
            "unknown" if acked else "does-not-work",
            f"{len(acked)} of {attempted} commits were acknowledged, but reading the repository "
            f"back failed: {short(e)}",
        )
    in_history = set(ancestry)
    off_branch = sorted(k for k, sid in acked.items() if sid not in in_history)
    no_array = sorted(k for k in acked if array_name(*k) not in names)
    wrong = sorted(k for k in acked
                   if array_name(*k) in values and values[array_name(*k)] != k[0] * 1000 + k[1])
    extra = sorted(n for n in names if n not in {array_name(*k) for k in acked})
    check.facts.update({
        "ancestry_length": len(ancestry), "arrays_at_tip": len(names),
        "acknowledged_not_in_ancestry": len(off_branch), "acknowledged_array_missing": len(no_array),
        "wrong_values": len(wrong), "unacknowledged_arrays": len(extra),
        "base_in_ancestry": base in in_history,
    })
    if off_branch or no_array or wrong:
        lost = sorted(set(off_branch) | set(no_array) | set(wrong))
        check.facts["lost_commits"] = [list(k) for k in lost[:10]]
        check.finish(
            "unsafe",
            f"{len(lost)} of {len(acked)} acknowledged commits are lost from main "
            f"({len(off_branch)} not in its ancestry of {len(ancestry)} snapshots, {len(no_array)} "
            f"arrays missing at the tip, {len(wrong)} with a wrong value); {WRITERS} writers "
            f"committed concurrently and their branch updates replaced each other's",
        )
    if base not in in_history:
        check.finish("unsafe", f"the repository's first commit {base} is not in main's ancestry")
    if not acked and attempted == 0:
        check.finish("unknown", "no commit ran: " + (errors[0] if errors else "the writers did nothing"))
    if failed or crashed:
        check.finish(
            "does-not-work",
            f"{len(failed)} of {attempted} commits failed ({conflicts} on conflicts after "
            f"rebasing; {errors[0] if errors else ''}); all {len(acked)} acknowledged ones are "
            f"on main ({len(ancestry)} snapshots)",
        )
    if killed or attempted < WRITERS * COMMITS:
        check.finish(
            "unknown",
            f"only {attempted} of {WRITERS * COMMITS} commits ran before the deadline; "
            f"all {len(acked)} acknowledged ones are on main",
        )
    check.finish(
        "safe",
        f"{WRITERS} writers made {attempted} concurrent commits to main, all acknowledged, all "
        f"in its ancestry ({len(ancestry)} snapshots) with their arrays at the tip",
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--writer":
        writer_main(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    else:
        checklib.Check("icechunk", package="icechunk").run(main)
