"""SlateDB (the `slatedb` Python package) fencing an older writer against
the endpoint.

A SlateDB writer that opens a database bumps the writer epoch in a new
manifest version and writes the next WAL file, both create-only
(If-None-Match: *). The older writer's next WAL write then finds its file
taken and the writer closes as fenced. If the store lets those creates
replace what is there, the older (zombie) writer keeps writing: two
writers hold one database and acknowledged writes drop out of it.

Two parts, the worse decides (unsafe > does-not-work > unknown > safe):

  fencing  writer A opens the database and writes KEYS durable keys;
           writer B opens it (fencing A); then A and B take turns writing
           KEYS keys each: A's first write must fail as fenced, B's all
           land. Both close, and a third opening reads everything back:
           every acknowledged key must be there.
  race     two writers open one fresh database at the same moment (two
           DbBuilder.build() started together in one process; their
           requests run concurrently on SlateDB's own runtime), so both
           try to create its first manifest at once; each that opened then
           writes KEYS durable keys, both at once, and then, one after the
           other, one probe key. At most one writer may stay un-fenced
           (every write and its probe acknowledged); the other must have
           been refused at opening or fenced. A third opening must read
           every acknowledged key. Up to RACE_ROUNDS rounds on fresh paths,
           stopping at the first unsafe one.
"""

import asyncio
import importlib.metadata
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import short  # noqa: E402

KEYS = 5
RACE_ROUNDS = 3
RANK = {"unsafe": 3, "does-not-work": 2, "unknown": 1, "safe": 0}
STEP_TIMEOUT_S = 20  # SlateDB retries store errors without bound


class StepTimeout(Exception):
    pass



def make_store(env):
    import slatedb.uniffi as sdb

    b = sdb.ObjectStoreBuilder.from_env(sdb.ObjectStoreType.S3)
    for k, v in {
        "bucket": env.bucket,
        "endpoint": env.endpoint,
        "region": env.region,
        "access_key_id": env.access_key,
        "secret_access_key": env.secret_key,
        "allow_http": "true",
    }.items():
        b.with_config(k, v)
    return b.build()


async def step(env, what, coro):
    timeout = min(STEP_TIMEOUT_S, env.remaining(margin=5))
    if timeout <= 0:
        raise StepTimeout(f"the deadline came before {what}")
    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise StepTimeout(f"{what} did not finish within {timeout:.0f} s")


async def durable_put(env, db, key, value):
    handle = await step(env, f"put {key!r}", db.put(key, value))
    await step(env, f"the durable write of {key!r}", handle.await_durable())


def facts_acked(acked, who):
    return sum(1 for w, _ in acked.values() if w == who)


def is_fenced(sdb, e):
    return isinstance(e, sdb.Error.Closed) and getattr(e, "reason", None) == sdb.CloseReason.FENCED


async def race_round(check, env, rnd):
    """One race on a fresh path: (outcome, text, facts)."""
    import slatedb.uniffi as sdb

    path = f"{env.prefix}slatedb/race-{rnd}"
    facts = {}
    acked = {}  # key -> (writer, value) of every acknowledged write
    names = ("A", "B")

    async def opener(who):
        try:
            db = await step(env, f"opening the database (racer {who})", sdb.DbBuilder(path, make_store(env)).build())
            return db, None
        except StepTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - a refused open is a fine answer
            return None, e

    opened = dict(zip(names, await asyncio.gather(*(opener(w) for w in names))))
    dbs = {w: db for w, (db, _) in opened.items() if db is not None}
    for w, (_, e) in opened.items():
        if e is not None:
            facts[f"{w.lower()}_open_error"] = short(e, 160)
    facts["opened"] = sorted(dbs)
    if not dbs:
        return "does-not-work", (
            f"neither of two simultaneous opens of a fresh database succeeded: {facts['a_open_error']}"
        ), facts

    errors = {}  # writer -> the first error of its writes

    async def writer(who, db, keys):
        for k in keys:
            v = f"from {who}".encode()
            try:
                await durable_put(env, db, k, v)
                acked[k] = (who, v)
            except StepTimeout:
                raise
            except Exception as e:  # noqa: BLE001 - Error.Closed(FENCED) is a fine answer
                errors[who] = e
                return

    await asyncio.gather(*(
        writer(w, db, [f"{w.lower()}{i}".encode() for i in range(KEYS)]) for w, db in dbs.items()
    ))
    # Both held the database through their writes at once.
    both_wrote = len(dbs) == 2 and not errors
    facts["both_wrote_unfenced"] = both_wrote
    for w, db in dbs.items():  # one after the other: whoever is not fenced yet must be now
        if w not in errors:
            await writer(w, db, [f"{w.lower()}-probe".encode()])
    status = {}
    for w in names:
        if w not in dbs:
            status[w] = "refused at opening"
        elif w not in errors:
            status[w] = "writable"
        elif is_fenced(sdb, errors[w]):
            n = facts_acked(acked, w)
            status[w] = (
                "fenced at its first write" if n == 0
                else "fenced only at its probe" if n == KEYS
                else f"fenced after {n} acknowledged writes"
            )
        else:
            status[w] = "failed"
            facts[f"{w.lower()}_error"] = short(errors[w], 160)
        facts[f"{w.lower()}_acked"] = facts_acked(acked, w)
    facts["status"] = status
    check.progress(
        f"race round {rnd}: "
        + "; ".join(f"{w} {status[w]}, {facts[f'{w.lower()}_acked']} writes acknowledged" for w in names)
    )

    for w, db in dbs.items():
        try:
            await step(env, f"closing racer {w}", db.shutdown())
        except StepTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - a fenced writer may fail to close
            facts[f"{w.lower()}_close_error"] = short(e, 120)
    try:
        c = await step(env, "opening the database (reader)", sdb.DbBuilder(path, make_store(env)).build())
        found = {}
        for k in acked:
            found[k] = await step(env, f"reading {k!r}", c.get(k))
        await step(env, "closing the reader", c.shutdown())
    except StepTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "unknown", (
            f"reopening the raced database to read back {len(acked)} acknowledged keys failed: {short(e)}"
        ), facts
    missing = sorted(k.decode() for k, (_, v) in acked.items() if found.get(k) != v)
    lost = {w: [k for k in missing if acked[k.encode()][0] == w] for w in names}
    facts.update({"acknowledged": len(acked), "missing": len(missing)})
    if missing:
        facts["missing_keys"] = missing[:10]
    writable = [w for w in names if status[w] == "writable"]
    states = ", ".join(f"{w} {status[w]}" for w in names)
    lost_text = "; ".join(
        f"{len(lost[w])} of writer {w}'s {facts[f'{w.lower()}_acked']} acknowledged keys are missing on reopening"
        for w in names if lost[w]
    )
    if len(writable) == 2:
        return "unsafe", (
            f"both writers opened the fresh database at once and neither was ever fenced: all "
            f"{KEYS} writes and the probe of each were acknowledged; "
            + (lost_text if missing else f"all {len(acked)} acknowledged keys are readable")
        ), facts
    if missing:
        both = (
            f"both writers opened the fresh database at once and both had all {KEYS} writes "
            f"acknowledged ({states})" if both_wrote else f"after two simultaneous opens ({states})"
        )
        return "unsafe", f"{both}; {lost_text}", facts
    failed = [w for w in names if status[w] == "failed"]
    if failed:
        w = failed[0]
        return "does-not-work", (
            f"after two simultaneous opens, writer {w}'s writes failed with "
            f"{facts[f'{w.lower()}_error']}, not as fenced; every acknowledged key is readable"
        ), facts
    if not writable:
        # Within the invariant (at most one writer, nothing lost), though
        # the database is left without a writer until it is opened again.
        return "safe", (
            f"both writers opened and both were fenced (no writer left until a reopening); all "
            f"{len(acked)} acknowledged keys are readable"
        ), facts
    w = writable[0]
    other = next(x for x in names if x != w)
    return "safe", (
        f"writer {w} stayed the one writer, writer {other} was {status[other]}, and all "
        f"{len(acked)} acknowledged keys are readable"
    ), facts


async def race(check, env):
    """RACE_ROUNDS race rounds, stopping at the first unsafe one."""
    rounds = []
    outcome, text = "unknown", "no race round ran"
    for rnd in range(1, RACE_ROUNDS + 1):
        if env.remaining(margin=10) <= 0:
            break
        outcome, text, facts = await race_round(check, env, rnd)
        facts["outcome"] = outcome
        rounds.append(facts)
        if RANK[outcome] >= RANK["does-not-work"]:
            break
    check.facts["race_rounds"] = rounds
    n = len(rounds)
    refused = sum(1 for f in rounds if len(f["opened"]) < 2)
    both_opened = n - refused
    no_writer = sum(1 for f in rounds if "writable" not in f.get("status", {}).values())
    check.facts["race_both_opened"] = both_opened
    if not n:
        return "unknown", "(race) no time was left for a race round"
    if outcome != "safe":
        return outcome, f"(race) in round {n} of {RACE_ROUNDS}: {text}"
    if n < RACE_ROUNDS:
        return "unknown", f"(race) only {n} of {RACE_ROUNDS} rounds ran before the deadline; each was safe"
    parts = []
    if refused:
        parts.append(f"in {refused} one open was refused (\"version already exists\": the other created the first manifest)")
    if both_opened - no_writer:
        parts.append(f"in {both_opened - no_writer} both opened and one was fenced")
    if no_writer:
        parts.append(f"in {no_writer} both opened and both were fenced (no writer left)")
    return "safe", (
        f"(race) {n} rounds of two simultaneous opens of a fresh database: {', '.join(parts)}; "
        "never were both writable, and every acknowledged key was readable"
    )


async def scenario(check, env):
    import slatedb.uniffi as sdb

    path = f"{env.prefix}slatedb/db"
    facts = check.facts
    acked = {}  # key -> value of every acknowledged write

    async def open_db(who):
        return await step(env, f"opening the database ({who})", sdb.DbBuilder(path, make_store(env)).build())

    try:
        a = await open_db("writer A")
    except StepTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"writer A could not open a new database: {short(e)}"
    try:
        for i in range(KEYS):
            k, v = f"a{i}".encode(), b"from A"
            await durable_put(env, a, k, v)
            acked[k] = v
    except StepTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"writer A's durable writes failed: {short(e)}"
    facts["a_acked_before"] = len(acked)
    check.progress(f"writer A wrote {len(acked)} durable keys")

    try:
        b = await open_db("writer B")
    except StepTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"writer B could not open the database A has: {short(e)}"
    # Right after B opened, A and B take turns: A's writes must fail as
    # fenced from the first; B's must all land.
    zombie_acked, zombie_error = 0, None
    for i in range(KEYS):
        if zombie_error is None:
            k, v = f"z{i}".encode(), b"from A after B opened"
            try:
                await durable_put(env, a, k, v)
                zombie_acked += 1
                acked[k] = v
            except StepTimeout:
                raise
            except Exception as e:  # noqa: BLE001 - Error.Closed(FENCED) is expected
                zombie_error = e
        k, v = f"b{i}".encode(), b"from B"
        try:
            await durable_put(env, b, k, v)
            acked[k] = v
        except StepTimeout:
            raise
        except Exception as e:  # noqa: BLE001
            facts["b_error"] = short(e)
            break
    fenced = (
        isinstance(zombie_error, sdb.Error.Closed)
        and getattr(zombie_error, "reason", None) == sdb.CloseReason.FENCED
    )
    facts["a_fenced"] = fenced
    facts["a_writes_acked_after_b_opened"] = zombie_acked
    if zombie_error is not None:
        facts["a_error"] = short(zombie_error)
    check.progress(
        f"after B opened: {zombie_acked} of A's writes acknowledged"
        + (f", then {short(zombie_error)}" if zombie_error is not None else "")
        + f"; B wrote {sum(1 for k in acked if k.startswith(b'b'))} keys"
    )

    for who, db in (("B", b), ("A", a)):
        try:
            await step(env, f"closing writer {who}", db.shutdown())
        except StepTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - a fenced writer may fail to close
            facts[f"{who.lower()}_close_error"] = short(e, 120)

    try:
        c = await open_db("the reader")
        found = {}
        for k in acked:
            found[k] = await step(env, f"reading {k!r}", c.get(k))
        await step(env, "closing the reader", c.shutdown())
    except StepTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "unknown" if zombie_acked else "does-not-work", (
            f"reopening the database to read back {len(acked)} acknowledged keys failed: {short(e)}"
        )
    missing = sorted(k.decode() for k, v in acked.items() if found.get(k) != v)
    facts.update({"acknowledged": len(acked), "missing": len(missing)})
    if missing:
        facts["missing_keys"] = missing[:10]
    if zombie_acked:
        lost = (
            f"; {len(missing)} of {len(acked)} acknowledged keys are missing on reopening ({', '.join(missing[:5])})"
            if missing else f"; all {len(acked)} acknowledged keys are readable"
        )
        return "unsafe", (
            f"writer A was not fenced when writer B opened the database: {zombie_acked} of its "
            f"{KEYS} writes after that {'was' if zombie_acked == 1 else 'were'} acknowledged{lost}"
        )
    if missing:
        return "unsafe", (
            f"{len(missing)} of {len(acked)} acknowledged keys are missing on reopening "
            f"({', '.join(missing[:5])})"
        )
    if not fenced:
        return "does-not-work", (
            f"writer A's write after B opened failed with {short(zombie_error)}, not as fenced; "
            f"all {len(acked)} acknowledged keys are readable"
        )
    if "b_error" in facts:
        return "does-not-work", f"writer B's writes after fencing A failed: {facts['b_error']}"
    return "safe", (
        f"writer B's opening fenced writer A (its next write failed as fenced) and all "
        f"{len(acked)} acknowledged keys of both writers are readable on reopening"
    )


async def both(check, env):
    results = {}
    t = time.monotonic()
    try:
        outcome, text = await scenario(check, env)
        results["fencing"] = (outcome, f"(fencing) {text}")
    except StepTimeout as e:
        results["fencing"] = ("unknown", f"(fencing) no judgement: {e}")
    check.facts["fencing"] = results["fencing"][0]
    check.progress(f"{results['fencing'][1]} [{time.monotonic() - t:.1f} s]")
    t = time.monotonic()
    try:
        results["race"] = await race(check, env)
    except StepTimeout as e:
        results["race"] = ("unknown", f"(race) no judgement: {e}")
    check.facts["race"] = results["race"][0]
    check.progress(f"{results['race'][1]} [{time.monotonic() - t:.1f} s]")
    return results


def main(check, env):
    checklib.clean_aws_environment()
    check.client = f"slatedb {importlib.metadata.version('slatedb')}"
    check.facts["keys_per_step"] = KEYS
    # StepTimeout is caught per part; the library may keep retrying in its
    # own threads, so the check always leaves at once (hard_exit).
    results = asyncio.run(both(check, env))
    worst = max(RANK[o] for o, _ in results.values())
    deciding = [n for n, (o, _) in results.items() if RANK[o] == worst]
    check.facts["decided_by"] = deciding
    outcome = results[deciding[0]][0]
    summary = "; ".join(results[n][1] for n in deciding)
    others = [f"{n}: {o}" for n, (o, _) in results.items() if n not in deciding]
    if others:
        summary += f" ({', '.join(others)})"
    check.finish(outcome, summary, hard_exit=True)


if __name__ == "__main__":
    checklib.Check("slatedb", package="slatedb").run(main)
