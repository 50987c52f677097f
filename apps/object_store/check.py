"""Rust object_store (through its Python binding `obstore`) and its
conditional puts against the endpoint.

obstore's S3Store sends PutMode::Create as If-None-Match: * and
PutMode::Update as If-Match: <etag> (conditional_put "etag" is the default),
mapping a refusal to AlreadyExistsError / PreconditionError. Four
sub-checks, each as an application uses them:

  (a) create-once: put(mode="create") twice on one key; the second must
      raise AlreadyExistsError and the first's bytes stay.
  (b) stale update: put(mode={"e_tag": <stale>}) after another update must
      raise PreconditionError and not land.
  (c) counter: WORKERS concurrent workers x INCREMENTS compare-and-swap
      increments (get, put with the read ETag, retry when refused); the
      final value must equal the number of acknowledged increments.
  (d) ranged read: get_range after an overwrite returns the new bytes.

The worst sub-check decides: unsafe > does-not-work > unknown > safe.
"""

import asyncio
import importlib.metadata
import os
import sys
import time
from datetime import timedelta

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import short  # noqa: E402

WORKERS = 4
INCREMENTS = 5
MAX_TRIES = 40  # per increment: reads and conditional puts
RANK = {"unsafe": 3, "does-not-work": 2, "unknown": 1, "safe": 0}



def make_store(env):
    from obstore.store import S3Store

    return S3Store(
        env.bucket,
        prefix=f"{env.prefix}object_store",
        endpoint=env.endpoint,
        region=env.region,
        access_key_id=env.access_key,
        secret_access_key=env.secret_key,
        client_options={"allow_http": True, "timeout": "15s", "connect_timeout": "5s"},
        retry_config={"max_retries": 2, "retry_timeout": timedelta(seconds=10)},
    )


def create_once(store):
    import obstore
    from obstore.exceptions import AlreadyExistsError

    key, first, second = "create-once", b"first writer", b"second writer"
    try:
        obstore.put(store, key, first, mode="create")
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(a) the first create failed: {short(e)}"
    try:
        obstore.put(store, key, second, mode="create")
        refused = None
    except AlreadyExistsError:
        refused = "AlreadyExistsError"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(a) the second create failed with {short(e)} instead of AlreadyExistsError"
    try:
        now = bytes(obstore.get(store, key).bytes())
    except FileNotFoundError:  # obstore raises the built-in for a missing object
        return "unsafe", "(a) the key a create was acknowledged for is not there"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(a) reading the key back failed: {short(e)}"
    if refused is None:
        what = "replaced the first's bytes" if now == second else "was acknowledged"
        return "unsafe", f"(a) a second create of one key succeeded and {what}"
    if now != first:
        return "unsafe", "(a) the second create was refused, but the first's bytes were replaced"
    return "safe", "(a) the second create raised AlreadyExistsError and the first's bytes stayed"


def stale_update(store):
    import obstore
    from obstore.exceptions import PreconditionError

    key = "stale-update"
    try:
        r1 = obstore.put(store, key, b"version 1")
        r2 = obstore.put(store, key, b"version 2", mode={"e_tag": r1["e_tag"]})
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(b) writing two versions (the second with If-Match) failed: {short(e)}"
    if not r1.get("e_tag") or r1.get("e_tag") == r2.get("e_tag"):
        return "does-not-work", f"(b) the two versions came back with ETags {r1.get('e_tag')!r} and {r2.get('e_tag')!r}"
    try:
        obstore.put(store, key, b"stale version", mode={"e_tag": r1["e_tag"]})
        refused = False
    except PreconditionError:
        refused = True
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(b) the stale update failed with {short(e)} instead of PreconditionError"
    try:
        now = bytes(obstore.get(store, key).bytes())
    except FileNotFoundError:  # obstore raises the built-in for a missing object
        return "unsafe", "(b) the key two acknowledged writes went to is not there"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(b) reading the key back failed: {short(e)}"
    if not refused or now != b"version 2":
        return "unsafe", (
            f"(b) an update with a stale ETag {'was acknowledged' if not refused else 'was refused'}"
            f" and the key now holds {now[:20]!r}"
        )
    return "safe", "(b) the stale update raised PreconditionError and did not land"


async def counter(store, env, facts):
    import obstore
    from obstore.exceptions import AlreadyExistsError, PreconditionError

    key = "counter"
    try:
        await obstore.put_async(store, key, b"0", mode="create")
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(c) creating the counter failed: {short(e)}"
    stats = {"acked": 0, "refused": 0, "errors": 0, "gave_up": 0, "first_error": None}
    written = []

    async def increment():
        for _ in range(MAX_TRIES):
            if env.remaining(margin=10) <= 0:
                return False
            try:
                got = await obstore.get_async(store, key)
                value = int(bytes(await got.bytes_async()))
                etag = got.meta["e_tag"]
                await obstore.put_async(store, key, str(value + 1).encode(), mode={"e_tag": etag})
            except (PreconditionError, AlreadyExistsError):
                # AlreadyExists: object_store's answer to a 409 it retried.
                stats["refused"] += 1
                continue
            except Exception as e:  # noqa: BLE001
                stats["errors"] += 1
                stats["first_error"] = stats["first_error"] or short(e)
                return False
            stats["acked"] += 1
            written.append(value + 1)
            return True
        stats["gave_up"] += 1
        return False

    async def worker():
        for _ in range(INCREMENTS):
            if not await increment() and stats["errors"]:
                return

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    try:
        final = int(bytes(await (await obstore.get_async(store, key)).bytes_async()))
    except FileNotFoundError:
        return "unsafe", "(c) the counter object a create was acknowledged for is not there"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(c) reading the counter back failed: {short(e)}"
    dup = len(written) - len(set(written))
    facts.update({
        "counter_acked": stats["acked"], "counter_final": final, "counter_refusals": stats["refused"],
        "counter_errors": stats["errors"], "counter_gave_up": stats["gave_up"],
        "counter_duplicate_values": dup,
    })
    if final != stats["acked"] or dup:
        how = [f"{stats['acked'] - final} lost"] if final != stats["acked"] else []
        how += [f"{dup} new values acknowledged to two workers"] if dup else []
        return "unsafe", (
            f"(c) {stats['acked']} compare-and-swap increments were acknowledged and the counter "
            f"reads {final} ({', '.join(how)})"
        )
    if stats["errors"]:
        return "does-not-work", f"(c) {stats['errors']} increments failed: {stats['first_error']}"
    if stats["acked"] < WORKERS * INCREMENTS:
        return "unknown", (
            f"(c) only {stats['acked']} of {WORKERS * INCREMENTS} increments were made "
            f"({stats['gave_up']} gave up after {MAX_TRIES} tries)"
        )
    return "safe", (
        f"(c) {WORKERS} workers made {stats['acked']} increments with {stats['refused']} "
        f"refused tries and the counter reads {final}"
    )


def ranged_read(store):
    import obstore

    key = "ranged"
    old = bytes(range(256)) * 8
    new = bytes(reversed(range(256))) * 8
    try:
        obstore.put(store, key, old)
        obstore.put(store, key, new)
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(d) writing the object failed: {short(e)}"
    try:
        got = bytes(obstore.get_range(store, key, start=100, end=300))
    except FileNotFoundError:  # obstore raises the built-in for a missing object
        return "unsafe", "(d) the object two acknowledged writes went to is not there"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"(d) the ranged read failed: {short(e)}"
    if got == new[100:300]:
        return "safe", "(d) get_range returned the right 200 bytes"
    if got == old[100:300]:
        return "unsafe", "(d) get_range after an overwrite returned the previous version's bytes"
    return "unsafe", f"(d) get_range returned {len(got)} bytes that are not the object's bytes 100..300"


def main(check, env):
    checklib.clean_aws_environment()
    version = importlib.metadata.version("obstore")
    check.client = f"obstore {version}"
    store = make_store(env)
    results = {}
    for name, run in (
        ("create_once", lambda: create_once(store)),
        ("stale_update", lambda: stale_update(store)),
        ("counter", lambda: asyncio.run(counter(store, env, check.facts))),
        ("ranged_read", lambda: ranged_read(store)),
    ):
        env.check_time(f"sub-check {name}")
        t = time.monotonic()
        outcome, text = run()
        results[name] = (outcome, text)
        check.facts[name] = outcome
        check.progress(f"{text} [{outcome}, {time.monotonic() - t:.1f} s]")
    worst = max(RANK[o] for o, _ in results.values())
    deciding = [n for n, (o, _) in results.items() if RANK[o] == worst]
    outcome = results[deciding[0]][0]
    check.facts["decided_by"] = deciding
    if outcome == "safe":
        f = check.facts
        check.finish(
            "safe",
            "all four sub-checks held: a second create and a stale update were refused, "
            f"{f['counter_acked']} of {WORKERS * INCREMENTS} compare-and-swap increments counted "
            f"({f['counter_refusals']} refused tries retried), and a ranged read returned the right bytes",
        )
    check.finish(outcome, "; ".join(results[n][1] for n in deciding))


if __name__ == "__main__":
    checklib.Check("object_store", package="obstore").run(main)
