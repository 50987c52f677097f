"""Terraform's S3 backend lock (use_lockfile) against the endpoint: two
`terraform apply` runs on one state, in two rounds on two fresh state keys.

Each run has its own folder and its own resource (terraform_data.a,
terraform_data.b), whose local-exec provisioner sleeps HOLD_S to keep the
apply, and so the lock, going. Terraform takes the lock by creating
<state>.tflock with If-None-Match: *.

  staggered     run B starts STAGGER_S into run A's hold: B must stop with
                "Error acquiring the state lock" and the state keep A's
                resource (a held lock blocks a later apply)
  simultaneous  both runs are initialised first, then both applies are let
                go at the same moment (each waits on its stdin, and one
                byte releases both): exactly one may take the lock, the
                other must be refused, and the state must hold the
                winner's resource (two creates of the lock file at once)

If both runs of a round take the lock, the one that writes the state last
drops the other's resource from it: unsafe. The check is safe only if in
each round exactly one run took the lock and the final state holds its
resource.

The terraform binary is /usr/local/bin/terraform or `terraform` on PATH;
boto3 reads the final states. terraform_data is built in: nothing is
downloaded.
"""

import json
import os
import shutil
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import checklib  # noqa: E402
from checklib import SetupError, short  # noqa: E402

HOLD_S = 5  # how long each run's provisioner keeps the lock
STAGGER_S = 2  # in the staggered round, run B starts this long after run A
ROUNDS = (("staggered", STAGGER_S), ("simultaneous", 0))
RUNS = ("a", "b")
LOCK_ERROR = "Error acquiring the state lock"
RANK = {"unsafe": 3, "does-not-work": 2, "unknown": 1, "safe": 0}
# A run waits for one line on its stdin before it becomes terraform, so the
# two applies of the simultaneous round are let go by one write each.
GATE = ["/bin/sh", "-c", 'read _ && exec "$@"', "sh"]


def find_terraform():
    for p in ("/usr/local/bin/terraform", shutil.which("terraform")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise SetupError("no terraform binary (looked at /usr/local/bin/terraform and PATH)")


def hcl(s):
    return json.dumps(s)  # a JSON string is a valid HCL string


def write_config(folder, env, state_key, name):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "main.tf"), "w") as f:
        f.write(
            f"""terraform {{
  backend "s3" {{
    bucket                      = {hcl(env.bucket)}
    key                         = {hcl(state_key)}
    region                      = {hcl(env.region)}
    use_lockfile                = true
    use_path_style              = true
    endpoints                   = {{ s3 = {hcl(env.endpoint)} }}
    skip_credentials_validation = true
    skip_requesting_account_id  = true
    skip_region_validation      = true
    skip_metadata_api_check     = true
    skip_s3_checksum            = true
  }}
}}

resource "terraform_data" "{name}" {{
  input = "run {name}"
  provisioner "local-exec" {{
    command = "sleep {HOLD_S}"
  }}
}}
"""
        )


def run_env(env, folder, cli_config):
    e = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": folder,
        "TMPDIR": folder,
        "TF_DATA_DIR": os.path.join(folder, ".terraform"),
        "TF_CLI_CONFIG_FILE": cli_config,
        "CHECKPOINT_DISABLE": "1",
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "AWS_ACCESS_KEY_ID": env.access_key,
        "AWS_SECRET_ACCESS_KEY": env.secret_key,
        "AWS_REGION": env.region,
        "AWS_CONFIG_FILE": os.path.join(folder, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(folder, "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost,::1",
        "no_proxy": "127.0.0.1,localhost,::1",
    }
    if "LANG" in os.environ:
        e["LANG"] = os.environ["LANG"]
    return e


def tail(text, n=6):
    lines = [l for l in text.splitlines() if l.strip()]
    return " | ".join(" ".join(l.split()) for l in lines[-n:])


def first_error(text):
    """The first 'Error: ...' line of Terraform's output and the line after it."""
    lines = [" ".join(l.replace("│", " ").split()) for l in text.splitlines()]
    lines = [l for l in lines if l and not set(l) <= set("╷╵")]
    for i, l in enumerate(lines):
        if l.startswith("Error:"):
            return " ".join(lines[i : i + 3])
    return tail(text, 3)


def took_lock(text):
    # The run went past the lock: it planned and applied its resource.
    return LOCK_ERROR not in text and (
        "Creating..." in text or "Apply complete!" in text or "Creation complete" in text
    )


def kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, 9)
            except OSError:
                pass
            p.wait()


class Done(Exception):
    """A judgement reached before every round ran (init failed, time ran out)."""

    def __init__(self, outcome, summary):
        super().__init__(summary)
        self.outcome, self.summary = outcome, summary


def init_all(check, env, terraform, cli_config, folders):
    """terraform init in every folder at once. init reads the (absent)
    state; an S3 error here means the backend cannot be used at all."""
    env.check_time("terraform init")
    check.progress(f"terraform init in {len(folders)} folders")
    timeout = min(60, max(5, env.remaining()))
    procs, logs = {}, {}
    for label, folder in folders.items():
        logs[label] = open(os.path.join(folder, "init.log"), "w+")
        procs[label] = subprocess.Popen(
            [terraform, "init", "-input=false", "-no-color"], cwd=folder,
            env=run_env(env, folder, cli_config), stdout=logs[label], stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    t0 = time.monotonic()
    while any(p.poll() is None for p in procs.values()):
        if time.monotonic() - t0 > timeout:
            kill(procs.values())
            late = ", ".join(l for l, p in procs.items() if p.returncode != 0)
            raise Done("unknown", f"terraform init ({late}) did not finish within {timeout:.0f} s")
        time.sleep(0.05)
    for label, p in procs.items():
        logs[label].seek(0)
        text = logs[label].read()
        logs[label].close()
        if p.returncode != 0:
            check.facts["init_error"] = first_error(text)
            raise Done(
                "does-not-work",
                f"terraform init of {label} failed (exit {p.returncode}): {check.facts['init_error']}",
            )
    check.progress(f"init done in {time.monotonic() - t0:.1f} s")


def apply_round(check, env, terraform, cli_config, rnd, stagger, folders):
    """Both applies of one round; returns (rc, out, started, ended) per run."""
    env.check_time(f"the {rnd} round")
    budget = min(HOLD_S * 4 + 20, env.remaining(margin=8))
    if budget < HOLD_S + stagger + 8:
        raise Done("unknown", f"no judgement: too little time was left for the {rnd} round")
    cmd = [terraform, "apply", "-auto-approve", "-input=false", "-no-color", "-lock-timeout=0s"]
    procs, logs, started = {}, {}, {}
    for n in RUNS:
        folder = folders[n]
        logs[n] = open(os.path.join(folder, "apply.log"), "w+")
        procs[n] = subprocess.Popen(
            GATE + cmd, cwd=folder, env=run_env(env, folder, cli_config), stdout=logs[n],
            stderr=subprocess.STDOUT, stdin=subprocess.PIPE, start_new_session=True,
        )
    # Both are forked and waiting at the gate: let them go.
    for n in RUNS:
        if stagger and n != RUNS[0]:
            time.sleep(stagger)
        started[n] = time.monotonic()
        try:
            procs[n].stdin.write(b"go\n")
            procs[n].stdin.close()
        except OSError:  # the gate is gone: its exit status and output will say why
            pass
    check.progress(
        f"{rnd} round: apply a and b let go "
        + (f"{stagger} s apart" if stagger else "at the same moment")
    )
    rc, ended = {}, {}
    t0 = time.monotonic()
    while len(rc) < len(RUNS):
        for n, p in procs.items():
            if n not in rc and p.poll() is not None:
                rc[n], ended[n] = p.returncode, time.monotonic()
        if len(rc) < len(RUNS) and time.monotonic() - t0 > budget:
            kill(procs.values())
            late = " and ".join(n.upper() for n in procs if n not in rc)
            raise Done("unknown", f"in the {rnd} round terraform apply of run {late} did not finish within {budget:.0f} s")
        time.sleep(0.05)
    out = {}
    for n in RUNS:
        logs[n].seek(0)
        out[n] = logs[n].read()
        logs[n].close()
        check.progress(f"{rnd} round: apply {n}: exit {rc[n]}, {tail(out[n], 2)}")
    return rc, out, started, ended


def read_state(s3, env, state_key):
    """(resources or None, error or None, serial, lock file left?)"""
    resources, error, serial = None, None, None
    try:
        body = s3.get_object(Bucket=env.bucket, Key=state_key)["Body"].read()
        state = json.loads(body)
        resources = sorted(f"{r['type']}.{r['name']}" for r in state.get("resources", []))
        serial = state.get("serial")
    except s3.exceptions.NoSuchKey:
        resources = []
    except Exception as e:  # noqa: BLE001 - any failure to read is reported
        error = short(e)
    try:
        s3.head_object(Bucket=env.bucket, Key=state_key + ".tflock")
        left = True
    except Exception:  # noqa: BLE001 - absent (404) is the normal case
        left = False
    return resources, error, serial, left


def judge_round(rnd, stagger, rc, out, started, ended, resources, state_error):
    """(outcome, text) of one round; text starts with the round's name."""
    took = {n: took_lock(out[n]) for n in RUNS}
    refused = {n: LOCK_ERROR in out[n] for n in RUNS}
    has = {n: resources is not None and f"terraform_data.{n}" in resources for n in RUNS}
    how = (
        f"run B started {stagger} s into run A's {HOLD_S} s hold" if stagger
        else "both applies let go at the same moment"
    )
    head = f"{rnd} round ({how})"
    held = ", ".join(resources) if resources else "no resources"
    if all(took.values()):
        serial = any("Destroying..." in out[n] for n in RUNS) or not all(
            started[m] < ended[n] for m in RUNS for n in RUNS if m != n
        )
        if serial:
            return "unknown", (
                f"{rnd} round: one run started only after the other had released the lock "
                "(it saw the other's state), so the two runs did not overlap"
            )
        if state_error is not None:
            return "unsafe", f"{head}: both applies took the state lock; the final state could not be read: {state_error}"
        missing = [n.upper() for n in RUNS if not has[n]]
        lost = (
            f"run {' and '.join(missing)}'s resource is missing from the final state"
            if missing else "the final state holds both resources"
        )
        release = [n.upper() for n in RUNS if rc[n] != 0 and "Error releasing the state lock" in out[n]]
        then = (
            f"; run {' and '.join(release)} then failed with \"Error releasing the state lock\""
            if release else ""
        )
        return "unsafe", f"{head}: both applies took the state lock; {lost}, which holds {held}{then}"
    if not any(took.values()):
        if all(refused.values()):
            return "does-not-work", f"{head}: both applies were refused the state lock: {first_error(out['a'])}"
        for n in RUNS:
            if refused[n] and stagger and n == RUNS[0]:
                return "does-not-work", f"{rnd} round: the first apply could not take the state lock: {first_error(out[n])}"
        n = next(n for n in RUNS if not refused[n])
        return "does-not-work" if rc[n] != 0 else "unknown", (
            f"{rnd} round: run {n.upper()} did not get to its resource (exit {rc[n]}): {first_error(out[n])}"
        )
    w = next(n for n in RUNS if took[n])
    l = next(n for n in RUNS if not took[n])
    W, L = w.upper(), l.upper()
    if stagger and w != RUNS[0]:
        return "does-not-work" if rc["a"] != 0 else "unknown", (
            f"{rnd} round: the first apply did not get to its resource (exit {rc['a']}): {first_error(out['a'])}"
        )
    if not refused[l]:
        return "does-not-work" if rc[l] != 0 else "unknown", (
            f"{rnd} round: run {L} neither took nor was refused the lock (exit {rc[l]}): {first_error(out[l])}"
        )
    if state_error is not None:
        return "unknown", f"{rnd} round: run {L} was refused the lock, but the final state could not be read: {state_error}"
    if not has[w]:
        return "unsafe", (
            f"{rnd} round: run {L} was refused the lock, but run {W}'s resource is missing from "
            f"the final state ({held}) although {W}'s apply exited {rc[w]}"
        )
    if rc[w] != 0:
        return "does-not-work", (
            f"{rnd} round: run {L} was refused the lock and {W}'s resource is in the state, but "
            f"{W}'s apply exited {rc[w]}: {first_error(out[w])}"
        )
    return "safe", (
        f"{head}: run {W} took the lock, run {L} stopped with \"{LOCK_ERROR}\", "
        f"the final state holds {held}"
    )


def main(check, env):
    terraform = find_terraform()
    try:
        out = subprocess.run(
            [terraform, "version", "-json"], capture_output=True, text=True, timeout=20,
            env={"PATH": os.environ.get("PATH", ""), "CHECKPOINT_DISABLE": "1", "HOME": env.workdir},
        )
        version = json.loads(out.stdout)["terraform_version"]
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        raise SetupError(f"`{terraform} version -json` failed: {short(e)}")
    check.client = f"terraform {version}"
    import boto3
    from botocore.config import Config

    s3 = boto3.client(
        "s3", endpoint_url=env.endpoint, region_name=env.region,
        aws_access_key_id=env.access_key, aws_secret_access_key=env.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                      connect_timeout=5, read_timeout=15),
    )
    check.facts.update({"hold_s": HOLD_S, "stagger_s": STAGGER_S})
    cli_config = os.path.join(env.workdir, "terraformrc")
    open(cli_config, "w").close()
    state_keys, folders = {}, {}
    for rnd, _ in ROUNDS:
        state_keys[rnd] = f"{env.prefix}terraform/{rnd}/terraform.tfstate"
        folders[rnd] = {n: os.path.join(env.workdir, f"{rnd}-{n}") for n in RUNS}
        for n, folder in folders[rnd].items():
            write_config(folder, env, state_keys[rnd], n)

    results = {}
    try:
        # Every run is initialised before any applies.
        init_all(check, env, terraform, cli_config,
                 {f"{rnd}-{n}": f for rnd in folders for n, f in folders[rnd].items()})
        for rnd, stagger in ROUNDS:
            rc, out, started, ended = apply_round(check, env, terraform, cli_config, rnd, stagger, folders[rnd])
            resources, state_error, serial, left = read_state(s3, env, state_keys[rnd])
            outcome, text = judge_round(rnd, stagger, rc, out, started, ended, resources, state_error)
            check.progress(f"{text} [{outcome}]")
            results[rnd] = (outcome, text)
            check.facts[rnd] = {
                "outcome": outcome,
                "state_key": state_keys[rnd],
                **{f"apply_{n}_exit": rc[n] for n in RUNS},
                **{f"{n}_took_lock": took_lock(out[n]) for n in RUNS},
                **{f"{n}_refused_lock": LOCK_ERROR in out[n] for n in RUNS},
                **{f"{n}_seconds": round(ended[n] - started[n], 1) for n in RUNS},
                "final_resources": resources,
                "state_serial": serial,
                "lock_left": left,
            }
            if state_error is not None:
                check.facts[rnd]["state_error"] = state_error
            for n in RUNS:
                if rc[n] != 0:
                    check.facts[rnd][f"{n}_error"] = first_error(out[n])
    except Done as d:
        # Init failed or time ran out: the rounds that ran still count.
        results["cut short"] = (d.outcome, d.summary)

    worst = max(RANK[o] for o, _ in results.values())
    deciding = [r for r, (o, _) in results.items() if RANK[o] == worst]
    check.facts["decided_by"] = deciding
    outcome = results[deciding[0]][0]
    if outcome == "safe":
        check.finish("safe", (
            f"in both rounds exactly one of two applies took the state lock and the final state "
            f"holds its resource: staggered (run B started {STAGGER_S} s into run A's {HOLD_S} s "
            f"hold stopped with \"{LOCK_ERROR}\"), simultaneous (both let go at the same moment: "
            f"run {_winner(check.facts['simultaneous']).upper()} won, the other was refused)"
        ))
    others = [
        f"{r} round: {o}" if r in dict(ROUNDS) else f"then {o}: {t}"
        for r, (o, t) in results.items() if r not in deciding
    ]
    check.finish(
        outcome,
        "; ".join(results[r][1] for r in deciding) + (f" ({', '.join(others)})" if others else ""),
    )


def _winner(facts):
    return next((n for n in RUNS if facts.get(f"{n}_took_lock")), "?")


if __name__ == "__main__":
    checklib.Check("terraform").run(main)
