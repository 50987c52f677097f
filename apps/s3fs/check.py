"""s3fs (fsspec's S3 file system) and its exclusive-create writes against
the endpoint.

s3fs sends open(path, "xb") and pipe_file(..., mode="create") as
PutObject (or, for a file large enough for multipart, CompleteMultipartUpload)
with If-None-Match: *, and raises FileExistsError when the answer is 412
PreconditionFailed with <Condition>If-None-Match</Condition> in its body.
Each sub-check writes one key twice exclusively: the second write must raise
FileExistsError and the first's bytes stay.

  (a) open("xb"), one-shot PutObject (the case the brief names)
  (b) pipe_file(mode="create")
  (c) open("xb") of a 6 MiB file: multipart, If-None-Match on completion
  (d) RACERS threads pipe_file(mode="create") one key at the same moment,
      ROUNDS times: exactly one may be told it created the key, and the key
      must hold that one's bytes

The worst sub-check decides: unsafe > does-not-work > unknown > safe.
"""

import errno
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import short  # noqa: E402

RANK = {"unsafe": 3, "does-not-work": 2, "unknown": 1, "safe": 0}
BLOCK = 5 * 2**20  # s3fs's smallest multipart part
RACERS = 6
ROUNDS = 3


def isolate_aws_config(env):
    # botocore reads AWS_* and ~/.aws: only the arguments below may configure it.
    checklib.clean_aws_environment()
    os.environ["AWS_CONFIG_FILE"] = os.path.join(env.workdir, "no-aws-config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(env.workdir, "no-aws-credentials")
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def make_fs(env):
    import s3fs

    return s3fs.S3FileSystem(
        key=env.access_key,
        secret=env.secret_key,
        endpoint_url=env.endpoint,
        client_kwargs={"region_name": env.region},
        config_kwargs={
            "s3": {"addressing_style": "path"},
            "retries": {"max_attempts": 2, "mode": "standard"},
            "connect_timeout": 5,
            "read_timeout": 20,
        },
        use_listings_cache=False,
        skip_instance_cache=True,
    )


def write_open(fs, path, data):
    with fs.open(path, "xb", block_size=BLOCK) as f:
        f.write(data)


def write_pipe(fs, path, data):
    fs.pipe_file(path, data, mode="create")


UNNAMED_412 = (
    "raised OSError(EINVAL) instead of FileExistsError because the 412's body does not "
    "name the condition (AWS's has <Condition>If-None-Match</Condition>, which s3fs needs to "
    "raise FileExistsError)"
)


def unnamed_412(e):
    """True for s3fs's OSError(EINVAL) of a 412 whose body has no
    <Condition>If-None-Match</Condition> (s3fs/errors.py translate_boto_error
    makes FileExistsError only when it has)."""
    if isinstance(e, FileExistsError) or not isinstance(e, OSError) or e.errno != errno.EINVAL:
        return False
    cause = e.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        err = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return (err.get("Code") == "PreconditionFailed" or status == 412) and err.get(
            "Condition", ""
        ) != "If-None-Match"
    # Translated without its cause: AWS's PreconditionFailed message.
    return "pre-conditions you specified did not hold" in str(e)


def twice(fs, name, path, first, second, write):
    """Writes path exclusively twice; the second must be refused."""
    try:
        write(fs, path, first)
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"({name}) the first exclusive write failed: {short(e)}"
    try:
        write(fs, path, second)
        refused, error = False, None
    except FileExistsError:
        refused, error = True, None
    except Exception as e:  # noqa: BLE001
        refused, error = False, e
    try:
        now = fs.cat_file(path)
    except FileNotFoundError:
        return "unsafe", f"({name}) the key an exclusive write was acknowledged for is not there"
    except Exception as e:  # noqa: BLE001
        return "does-not-work", f"({name}) reading the key back failed: {short(e)}"
    if now != first:
        how = "replaced the first's bytes" if now == second else "left other bytes"
        if error is not None:
            return "unsafe", f"({name}) the second exclusive write raised {short(error)} but {how}"
        if refused:
            return "unsafe", f"({name}) the second exclusive write raised FileExistsError but {how}"
        return "unsafe", f"({name}) the second exclusive write succeeded and {how}"
    if error is not None and unnamed_412(error):
        return "does-not-work", f"({name}) the second exclusive write {UNNAMED_412}; the first's bytes stayed"
    if error is not None:
        return "does-not-work", (
            f"({name}) the second exclusive write raised {short(error)} instead of "
            "FileExistsError; the first's bytes stayed"
        )
    if not refused:
        return "unsafe", f"({name}) the second exclusive write was acknowledged (the first's bytes happen to remain)"
    return "safe", f"({name}) the second exclusive write raised FileExistsError and the first's bytes stayed"


def race(fs, base, env, facts):
    """(d): RACERS exclusive creates of one key at once, ROUNDS times."""
    winners_total, refused_total, others, wrong = 0, 0, [], 0
    multi_rounds = 0
    for rnd in range(ROUNDS):
        env.check_time("the race rounds")
        path = f"{base}/race-{rnd}"
        barrier = threading.Barrier(RACERS)
        result = [None] * RACERS

        def racer(i):
            data = f"racer {i} of round {rnd}".encode()
            try:
                barrier.wait(timeout=20)
                fs.pipe_file(path, data, mode="create")
                result[i] = "created"
            except FileExistsError:
                result[i] = "refused"
            except Exception as e:  # noqa: BLE001
                result[i] = e

        threads = [threading.Thread(target=racer, args=(i,), daemon=True) for i in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(1.0, env.remaining(margin=5)))
        won = [i for i, r in enumerate(result) if r == "created"]
        winners_total += len(won)
        refused_total += sum(1 for r in result if r == "refused")
        others += [r for r in result if isinstance(r, BaseException)]
        if len(won) > 1:
            multi_rounds += 1
        try:
            now = fs.cat_file(path)
        except FileNotFoundError:
            if won:
                return "unsafe", f"(d) the key {len(won)} racers were told they created is not there"
            now = None
        except Exception as e:  # noqa: BLE001
            return "does-not-work", f"(d) reading the raced key back failed: {short(e)}"
        if len(won) == 1 and now != f"racer {won[0]} of round {rnd}".encode():
            wrong += 1
    facts.update({
        "race_rounds": ROUNDS, "race_racers": RACERS, "race_created": winners_total,
        "race_refused": refused_total, "race_errors": len(others),
    })
    if wrong:
        return "unsafe", f"(d) in {wrong} of {ROUNDS} rounds the key did not hold the one creator's bytes"
    if multi_rounds:
        return "unsafe", (
            f"(d) in {multi_rounds} of {ROUNDS} rounds more than one of {RACERS} simultaneous "
            f"exclusive creates of one key succeeded ({winners_total} successes in all)"
        )
    unnamed = sum(1 for e in others if unnamed_412(e))
    facts["race_unnamed_412"] = unnamed
    if others and unnamed == len(others):
        return "does-not-work", (
            f"(d) {unnamed} of {ROUNDS * RACERS} simultaneous exclusive creates (all refused ones) "
            f"{UNNAMED_412}; one won each round"
        )
    if others:
        return "does-not-work", (
            f"(d) {len(others)} of {ROUNDS * RACERS} simultaneous exclusive creates failed with "
            f"{short(others[0])} instead of FileExistsError"
        )
    if winners_total != ROUNDS:
        return "does-not-work", f"(d) {ROUNDS - winners_total} of {ROUNDS} rounds had no creator"
    return "safe", (
        f"(d) in each of {ROUNDS} rounds one of {RACERS} simultaneous exclusive creates "
        "succeeded and the others raised FileExistsError"
    )


def join_texts(texts):
    """'(a) X; (b) X' -> '(a, b) X' for texts that differ only in their letter."""
    groups = {}
    for t in texts:
        letter, _, rest = t.partition(") ")
        groups.setdefault(rest, []).append(letter.lstrip("("))
    return "; ".join(f"({', '.join(ls)}) {rest}" for rest, ls in groups.items())


def main(check, env):
    isolate_aws_config(env)
    import s3fs

    check.client = f"s3fs {s3fs.__version__}"
    fs = make_fs(env)
    base = f"{env.bucket}/{env.prefix}s3fs"
    big1 = bytes(range(256)) * (6 * 2**20 // 256)
    big2 = bytes(reversed(range(256))) * (6 * 2**20 // 256)
    cases = (
        ("a", "open_xb", f"{base}/open-xb", b"first writer", b"second writer", write_open),
        ("b", "pipe_create", f"{base}/pipe-create", b"first writer", b"second writer", write_pipe),
        ("c", "open_xb_multipart", f"{base}/open-xb-multipart", big1, big2, write_open),
    )
    results = {}
    for letter, name, path, first, second, write in cases:
        env.check_time(f"sub-check {name}")
        t = time.monotonic()
        outcome, text = twice(fs, letter, path, first, second, write)
        results[name] = (outcome, text)
        check.facts[name] = outcome
        check.progress(f"{text} [{outcome}, {time.monotonic() - t:.1f} s]")
    t = time.monotonic()
    outcome, text = race(fs, base, env, check.facts)
    results["race"] = (outcome, text)
    check.facts["race"] = outcome
    check.progress(f"{text} [{outcome}, {time.monotonic() - t:.1f} s]")
    worst = max(RANK[o] for o, _ in results.values())
    deciding = [n for n, (o, _) in results.items() if RANK[o] == worst]
    check.facts["decided_by"] = deciding
    outcome = results[deciding[0]][0]
    if outcome == "safe":
        check.finish(
            "safe",
            "each of 3 keys written twice exclusively (open \"xb\", pipe_file mode=\"create\", "
            "a 6 MiB multipart open \"xb\"): every second write raised FileExistsError and the "
            f"first's bytes stayed; in {ROUNDS} races of {RACERS} creators one won each time",
        )
    summary = join_texts(results[n][1] for n in deciding)
    if any(UNNAMED_412 in t for _, t in results.values()):
        # s3fs/errors.py: a 412 becomes FileExistsError only with this element.
        check.facts["hint"] = "the 412 error body has no <Condition>If-None-Match</Condition>"
        if outcome == "does-not-work" and all(UNNAMED_412 in results[n][1] for n in deciding):
            parts = [
                f"({letter}) {what}" for letter, what, n in (
                    ("a", 'open "xb"', "open_xb"), ("b", 'pipe_file mode="create"', "pipe_create"),
                    ("c", 'multipart open "xb"', "open_xb_multipart"),
                    ("d", f"{check.facts.get('race_unnamed_412')} of {ROUNDS * RACERS} racing creates", "race"),
                ) if n in deciding
            ]
            summary = (
                f"s3fs raised OSError(EINVAL) instead of FileExistsError for every refused exclusive "
                f"write ({', '.join(parts)}) because the 412's body does not name the condition: "
                "s3fs raises FileExistsError for a 412 only when its body has "
                "<Condition>If-None-Match</Condition>, as AWS's does. Nothing was lost: the first "
                "writer's bytes stayed"
                + ("" if "race" not in deciding else " and one racer won each round")
            )
    check.finish(outcome, summary)


if __name__ == "__main__":
    checklib.Check("s3fs", package="s3fs").run(main)
