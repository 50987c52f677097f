#!/usr/bin/env python3
"""Confirms condwrite's verdicts on a server with another client: boto3.

    .servers/moto/bin/python scripts/crosscheck.py URL ACCESS_KEY SECRET_KEY [CHECK...]

Each check replays, with boto3 (whose checksum and header handling differ
from the Rust SDK's), the requests of one kind of scenario and prints the
status of every request and the object read back afterwards, so that a pin in
pins/ can say "confirmed with boto3" with the lines to show for it. Without
CHECK it runs them all. It works in a bucket of its own (created and deleted)
on loopback or any endpoint the caller points it at; it prints no credential.
moto's venv has boto3 (scripts/install-servers moto).
"""

import sys
import threading
import time
import uuid

import boto3
import botocore
from botocore.config import Config


def client(url, ak, sk):
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=ak,
        aws_secret_access_key=sk,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            max_pool_connections=32,
            read_timeout=120,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def call(label, f):
    """Runs one request; prints and returns (status, code, response)."""
    try:
        r = f()
        status = r.get("ResponseMetadata", {}).get("HTTPStatusCode")
        print(f"  {label}: {status} ETag={r.get('ETag')}")
        return status, None, r
    except botocore.exceptions.ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        code = e.response.get("Error", {}).get("Code")
        print(f"  {label}: {status} {code}")
        return status, code, None


def state(s3, b, k):
    try:
        r = s3.get_object(Bucket=b, Key=k)
        return f"body {r['Body'].read()!r} ETag {r['ETag']}"
    except botocore.exceptions.ClientError as e:
        return f"GET {e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Code')}"


def check_put(s3, b):
    k = "put"
    e1 = s3.put_object(Bucket=b, Key=k, Body=b"version one")["ETag"]
    call("PUT If-None-Match: * on an existing key", lambda: s3.put_object(Bucket=b, Key=k, Body=b"overwrite", IfNoneMatch="*"))
    print("   ", state(s3, b, k))
    s3.put_object(Bucket=b, Key=k, Body=b"version two")
    call("PUT If-Match stale", lambda: s3.put_object(Bucket=b, Key=k, Body=b"lost update", IfMatch=e1))
    print("   ", state(s3, b, k))
    call("PUT If-Match on a missing key", lambda: s3.put_object(Bucket=b, Key="missing", Body=b"x", IfMatch=e1))
    print("   ", state(s3, b, "missing"))
    call("PUT If-Match: * on a missing key", lambda: s3.put_object(Bucket=b, Key="missing2", Body=b"x", IfMatch="*"))
    print("   ", state(s3, b, "missing2"))
    cur = s3.head_object(Bucket=b, Key=k)["ETag"]
    call("PUT If-None-Match: <current etag>", lambda: s3.put_object(Bucket=b, Key=k, Body=b"inm etag", IfNoneMatch=cur))
    print("   ", state(s3, b, k))
    cur = s3.head_object(Bucket=b, Key=k)["ETag"]
    call("PUT If-Match + If-None-Match: *", lambda: s3.put_object(Bucket=b, Key=k, Body=b"both", IfMatch=cur, IfNoneMatch="*"))
    print("   ", state(s3, b, k))
    cur = s3.head_object(Bucket=b, Key=k)["ETag"]
    call("PUT If-Match unquoted current", lambda: s3.put_object(Bucket=b, Key=k, Body=b"unquoted", IfMatch=cur.strip('"')))
    print("   ", state(s3, b, k))
    call("PUT If-Match W/<stale etag>", lambda: s3.put_object(Bucket=b, Key=k, Body=b"weak", IfMatch="W/" + e1))
    print("   ", state(s3, b, k))
    call("PUT If-Match <stale>, <stale>", lambda: s3.put_object(Bucket=b, Key=k, Body=b"list", IfMatch=f"{e1}, {e1}"))
    print("   ", state(s3, b, k))
    cur = s3.head_object(Bucket=b, Key=k)["ETag"]
    call("PUT If-Match current (quoted, as returned)", lambda: s3.put_object(Bucket=b, Key=k, Body=b"quoted", IfMatch=cur))
    print("   ", state(s3, b, k))


def check_delete(s3, b):
    k = "del"
    e1 = s3.put_object(Bucket=b, Key=k, Body=b"one")["ETag"]
    s3.put_object(Bucket=b, Key=k, Body=b"two")
    call("DELETE If-Match stale", lambda: s3.delete_object(Bucket=b, Key=k, IfMatch=e1))
    print("   ", state(s3, b, k))
    call("DELETE If-Match: * (existing)", lambda: s3.delete_object(Bucket=b, Key=k, IfMatch="*"))
    print("   ", state(s3, b, k))
    call("DELETE If-Match on a missing key", lambda: s3.delete_object(Bucket=b, Key="nothing", IfMatch=e1))
    cur = s3.put_object(Bucket=b, Key="d2", Body=b"x")["ETag"]
    call("DELETE If-Match current", lambda: s3.delete_object(Bucket=b, Key="d2", IfMatch=cur))
    print("   ", state(s3, b, "d2"))
    a = s3.put_object(Bucket=b, Key="cur", Body=b"c")["ETag"]
    old = s3.put_object(Bucket=b, Key="stale", Body=b"s1")["ETag"]
    s3.put_object(Bucket=b, Key="stale", Body=b"s2")
    r = call(
        "DeleteObjects with per-object ETags (cur current, stale stale)",
        lambda: s3.delete_objects(
            Bucket=b,
            Delete={"Objects": [{"Key": "cur", "ETag": a}, {"Key": "stale", "ETag": old}]},
        ),
    )[2]
    if r:
        print("    deleted:", [d["Key"] for d in r.get("Deleted", [])], "errors:", [(e["Key"], e["Code"]) for e in r.get("Errors", [])])
    print("    cur:", state(s3, b, "cur"), "/ stale:", state(s3, b, "stale"))


def check_copy(s3, b):
    s3.put_object(Bucket=b, Key="src", Body=b"the source")
    call(
        "COPY If-None-Match: * onto a new key",
        lambda: s3.copy_object(Bucket=b, Key="new-dst", CopySource={"Bucket": b, "Key": "src"}, IfNoneMatch="*"),
    )
    print("   ", state(s3, b, "new-dst"))
    e1 = s3.put_object(Bucket=b, Key="dst", Body=b"the destination")["ETag"]
    call(
        "COPY If-Match current",
        lambda: s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"}, IfMatch=e1),
    )
    print("   ", state(s3, b, "dst"))
    e1 = s3.put_object(Bucket=b, Key="dst", Body=b"the destination")["ETag"]
    call(
        "COPY If-None-Match: * onto an existing key",
        lambda: s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"}, IfNoneMatch="*"),
    )
    print("   ", state(s3, b, "dst"))
    s3.put_object(Bucket=b, Key="dst", Body=b"the destination, version two")
    call(
        "COPY If-Match stale",
        lambda: s3.copy_object(Bucket=b, Key="dst", CopySource={"Bucket": b, "Key": "src"}, IfMatch=e1),
    )
    print("   ", state(s3, b, "dst"))


def check_get(s3, b):
    k = "get"
    e1 = s3.put_object(Bucket=b, Key=k, Body=b"one")["ETag"]
    lm = s3.head_object(Bucket=b, Key=k)["LastModified"]
    s3.put_object(Bucket=b, Key=k, Body=b"two")
    cur = s3.head_object(Bucket=b, Key=k)["ETag"]
    lm = s3.head_object(Bucket=b, Key=k)["LastModified"]
    call("GET If-Match stale", lambda: s3.get_object(Bucket=b, Key=k, IfMatch=e1))
    call("HEAD If-Match stale", lambda: s3.head_object(Bucket=b, Key=k, IfMatch=e1))
    st, _, _ = call("GET If-None-Match current", lambda: s3.get_object(Bucket=b, Key=k, IfNoneMatch=cur))
    call("HEAD If-None-Match current", lambda: s3.head_object(Bucket=b, Key=k, IfNoneMatch=cur))
    call("GET If-Modified-Since Last-Modified", lambda: s3.get_object(Bucket=b, Key=k, IfModifiedSince=lm))
    call("GET If-Unmodified-Since 2000", lambda: s3.get_object(Bucket=b, Key=k, IfUnmodifiedSince="Sat, 01 Jan 2000 00:00:00 GMT"))
    call(
        "GET If-Match current + If-Unmodified-Since 2000 (AWS: 200)",
        lambda: s3.get_object(Bucket=b, Key=k, IfMatch=cur, IfUnmodifiedSince="Sat, 01 Jan 2000 00:00:00 GMT"),
    )


def check_range(s3, b):
    k = "range"
    e1 = s3.put_object(Bucket=b, Key=k, Body=b"AAAAAAAAAA version one, about to be replaced")["ETag"]
    call("PUT If-Match v1", lambda: s3.put_object(Bucket=b, Key=k, Body=b"BBBBBBBBBB version two, written with If-Match", IfMatch=e1))
    try:
        r = s3.get_object(Bucket=b, Key=k, Range="bytes=0-9")
        print(f"  GET Range: bytes=0-9: {r['ResponseMetadata']['HTTPStatusCode']} Content-Range={r.get('ContentRange')} body {r['Body'].read()!r}")
    except botocore.exceptions.ClientError as e:
        print(f"  GET Range: bytes=0-9: {e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error'].get('Code')}")


def check_multipart(s3, b):
    def upload(k, cond):
        try:
            up = s3.create_multipart_upload(Bucket=b, Key=k)["UploadId"]
        except botocore.exceptions.ClientError as e:
            print(f"  CreateMultipartUpload: {e.response['ResponseMetadata']['HTTPStatusCode']}")
            return
        p = s3.upload_part(Bucket=b, Key=k, UploadId=up, PartNumber=1, Body=b"part one")
        parts = {"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]}
        if cond == "during":
            s3.put_object(Bucket=b, Key=k, Body=b"created during the upload")
            cond = {"IfNoneMatch": "*"}
        call(f"CompleteMultipartUpload {cond}", lambda: s3.complete_multipart_upload(Bucket=b, Key=k, UploadId=up, MultipartUpload=parts, **cond))
        print("   ", state(s3, b, k))
        try:
            s3.abort_multipart_upload(Bucket=b, Key=k, UploadId=up)
        except botocore.exceptions.ClientError:
            pass

    upload("m-new", {"IfNoneMatch": "*"})
    s3.put_object(Bucket=b, Key="m-existed", Body=b"existed before")
    upload("m-existed", {"IfNoneMatch": "*"})
    upload("m-during", "during")
    e1 = s3.put_object(Bucket=b, Key="m-stale", Body=b"one")["ETag"]
    s3.put_object(Bucket=b, Key="m-stale", Body=b"two")
    upload("m-stale", {"IfMatch": e1})
    cur = s3.put_object(Bucket=b, Key="m-current", Body=b"current")["ETag"]
    upload("m-current", {"IfMatch": cur})


def check_versioning(s3, b):
    vb = b + "-v"
    s3.create_bucket(Bucket=vb)
    try:
        call("PutBucketVersioning Enabled", lambda: s3.put_bucket_versioning(Bucket=vb, VersioningConfiguration={"Status": "Enabled"}))
        e1 = s3.put_object(Bucket=vb, Key="k", Body=b"one")["ETag"]
        s3.delete_object(Bucket=vb, Key="k")
        call("PUT If-Match <deleted version's ETag> over a delete marker", lambda: s3.put_object(Bucket=vb, Key="k", Body=b"x", IfMatch=e1))
        call("PUT If-None-Match: * over a delete marker", lambda: s3.put_object(Bucket=vb, Key="k", Body=b"y", IfNoneMatch="*"))
        print("   ", state(s3, vb, "k"))
        call("PUT If-None-Match: * on a key that never existed", lambda: s3.put_object(Bucket=vb, Key="new", Body=b"new", IfNoneMatch="*"))
        print("   ", state(s3, vb, "new"))
        s3.put_object(Bucket=vb, Key="m", Body=b"a version, then deleted")
        s3.delete_object(Bucket=vb, Key="m")
        call("DELETE If-Match: * over a delete marker", lambda: s3.delete_object(Bucket=vb, Key="m", IfMatch="*"))
        versions = s3.list_object_versions(Bucket=vb, Prefix="m")
        print(f"    versions of m: {len(versions.get('Versions', []))}, delete markers: {len(versions.get('DeleteMarkers', []))}")
    finally:
        empty(s3, vb, versions=True)
        s3.delete_bucket(Bucket=vb)


def race(s3s, b, k, cond, rounds=8, racers=16):
    for r in range(rounds):
        key = f"{k}-{r}"
        extra = {}
        if cond == "IfMatch":
            extra = {"IfMatch": s3s[0].put_object(Bucket=b, Key=key, Body=b"base")["ETag"]}
        else:
            extra = {"IfNoneMatch": "*"}
        res = [None] * racers
        bar = threading.Barrier(racers)

        def go(i):
            c = s3s[i % len(s3s)]
            bar.wait()
            try:
                c.put_object(Bucket=b, Key=key, Body=f"racer {i}".encode(), **extra)
                res[i] = 200
            except botocore.exceptions.ClientError as e:
                res[i] = e.response["ResponseMetadata"]["HTTPStatusCode"]
            except Exception as e:  # noqa: BLE001 - a lost answer is reported as such
                res[i] = type(e).__name__

        ts = [threading.Thread(target=go, args=(i,)) for i in range(racers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        winners = [i for i, x in enumerate(res) if x == 200]
        print(f"  round {r + 1}: winners {winners}, answers {sorted(set(map(str, res)))}, stored {state(s3s[0], b, key)}")


def check_race(s3s, b):
    print(" If-None-Match: * racers")
    race(s3s, b, "race-inm", "IfNoneMatch")
    print(" If-Match racers")
    race(s3s, b, "race-im", "IfMatch")


def check_counter(s3s, b, workers=8, increments=40):
    k = "counter"
    s3s[0].put_object(Bucket=b, Key=k, Body=b"0")
    acked = [0]
    conflicts = [0]
    lock = threading.Lock()

    def work(i):
        c = s3s[i % len(s3s)]
        for _ in range(increments * 10 // workers):
            with lock:
                if acked[0] >= increments:
                    return
            r = c.get_object(Bucket=b, Key=k)
            v = int(r["Body"].read())
            try:
                c.put_object(Bucket=b, Key=k, Body=str(v + 1).encode(), IfMatch=r["ETag"])
                with lock:
                    acked[0] += 1
            except botocore.exceptions.ClientError:
                with lock:
                    conflicts[0] += 1

    ts = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    final = int(s3s[0].get_object(Bucket=b, Key=k)["Body"].read())
    print(f"  CAS counter: {acked[0]} acknowledged, {conflicts[0]} conflicts, final value {final}")


def empty(s3, b, versions=False):
    if versions:
        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=b):
                for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=b, Key=v["Key"], VersionId=v["VersionId"])
        except botocore.exceptions.ClientError:
            pass
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=b, Key=o["Key"])
    try:
        for u in s3.list_multipart_uploads(Bucket=b).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=b, Key=u["Key"], UploadId=u["UploadId"])
    except botocore.exceptions.ClientError:
        pass


CHECKS = {
    "put": check_put,
    "delete": check_delete,
    "copy": check_copy,
    "get": check_get,
    "range": check_range,
    "multipart": check_multipart,
    "versioning": check_versioning,
}
SPREAD = {"race": check_race, "counter": check_counter}


def main():
    if len(sys.argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    urls, ak, sk = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    wanted = sys.argv[4:] or list(CHECKS) + list(SPREAD)
    unknown = [w for w in wanted if w not in CHECKS and w not in SPREAD]
    if unknown:
        print(f"unknown check(s) {unknown}; known: {list(CHECKS) + list(SPREAD)}", file=sys.stderr)
        return 2
    s3s = [client(u, ak, sk) for u in urls]
    b = f"crosscheck-{uuid.uuid4().hex[:12]}"
    s3s[0].create_bucket(Bucket=b)
    print(f"boto3 {boto3.__version__} against {', '.join(urls)} on {time.strftime('%Y-%m-%d')}")
    try:
        for w in wanted:
            print(f"[{w}]")
            if w in CHECKS:
                CHECKS[w](s3s[0], b)
            else:
                SPREAD[w](s3s, b)
    finally:
        empty(s3s[0], b)
        try:
            s3s[0].delete_bucket(Bucket=b)
        except botocore.exceptions.ClientError as e:
            print(f"(deleting the bucket answered {e.response['Error'].get('Code')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
