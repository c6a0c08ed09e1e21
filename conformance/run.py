#!/usr/bin/env python3
"""Black-box FHIR R4 conformance checks against a running Kiln server.

Usage:
  python3 conformance/run.py --base http://127.0.0.1:8080/fhir [--examples DIR]

Prints one line per check, then a final line exactly of the form
"N passed, M failed"; exits 1 when any check failed (2 when the server
cannot be reached at all).

Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import sys
import time
import urllib.parse
from decimal import Decimal
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CACHE_DIR = os.environ.get("FHIR_CACHE_DIR") or os.path.join(REPO, ".fhir-cache")
DEFAULT_EXAMPLES = os.path.join(CACHE_DIR, "hl7.fhir.r4.examples-4.0.1", "package")
DEFAULT_KNOWN_INVALID = os.path.join(HERE, "known-invalid-examples.txt")

FHIR_JSON = "application/fhir+json"
# The first 25 entries of fhir-profiles/types.txt: these must be in the
# CapabilityStatement.
REQUIRED_TYPES = [
    "Patient", "Practitioner", "PractitionerRole", "Organization", "Location",
    "Encounter", "Observation", "Condition", "AllergyIntolerance", "MedicationRequest",
    "Appointment", "Schedule", "Slot", "Consent", "AuditEvent", "Provenance",
    "Coverage", "Communication", "CommunicationRequest", "DocumentReference",
    "Binary", "Questionnaire", "QuestionnaireResponse", "Endpoint", "Group",
]
REQUIRED_INTERACTIONS = ["read", "vread", "update", "delete", "create", "history-instance"]
EXAMPLE_FILE = re.compile(r"^([A-Z][A-Za-z]+)-(.+)\.json$")


class ServerUnreachable(Exception):
    pass


# --------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        self._json: Any = None
        self._json_error: str | None = None
        self._parsed = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self) -> Any:
        if not self._parsed:
            self._parsed = True
            try:
                self._json = parse_json(self.body)
            except (ValueError, UnicodeDecodeError) as e:
                self._json_error = str(e)
        return self._json

    def describe(self) -> str:
        return f"HTTP {self.status}" + (f" {first_issue(self.json())}" if is_oo(self.json()) else "")


class Client:
    """Minimal keep-alive HTTP/1.1 client on top of http.client."""

    def __init__(self, base: str, timeout: float):
        u = urllib.parse.urlsplit(base.rstrip("/"))
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SystemExit(f"run.py: --base must be an http(s) URL, got {base!r}")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.prefix = u.path.rstrip("/")
        self.timeout = timeout
        self.base = base.rstrip("/")
        self.conn: http.client.HTTPConnection | None = None
        # The access token the checks send (run-against-fresh-server.sh gets one).
        self.token = os.environ.get("KILN_TOKEN", "")

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Accept": FHIR_JSON}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            hdrs["Content-Type"] = FHIR_JSON
        hdrs.update(headers or {})
        url = self.prefix + path
        last_exc: Exception | None = None
        for attempt in range(2):
            if self.conn is None:
                self.conn = self._connect()
            try:
                self.conn.request(method, url, body=body, headers=hdrs)
                r = self.conn.getresponse()
                data = r.read()
                resp_headers = {k.lower(): v for k, v in r.getheaders()}
                if resp_headers.get("connection", "").lower() == "close":
                    self.close()
                return Response(r.status, resp_headers, data)
            except (ConnectionRefusedError, socket.gaierror) as e:
                self.close()
                raise ServerUnreachable(f"cannot connect to {self.scheme}://{self.host}:{self.port}: {e}") from e
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest, http.client.ResponseNotReady) as e:
                # stale keep-alive connection: retry once on a fresh one
                self.close()
                last_exc = e
                continue
            except (socket.timeout, TimeoutError) as e:
                self.close()
                raise TimeoutError(f"{method} {url}: timed out after {self.timeout}s") from e
            except OSError as e:
                self.close()
                raise ServerUnreachable(f"{method} {url}: {e}") from e
        raise ServerUnreachable(f"{method} {url}: connection dropped twice ({last_exc!r})")

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None


# --------------------------------------------------------------------------
# JSON helpers


def parse_json(data: bytes | str) -> Any:
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    # decimals are kept exact; see numbers_equal() for how they are compared
    return json.loads(data, parse_float=Decimal)


def is_oo(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("resourceType") == "OperationOutcome"


def first_issue(oo: Any) -> str:
    if not is_oo(oo):
        return ""
    issues = oo.get("issue") or []
    if not issues:
        return "(OperationOutcome without issues)"
    i = issues[0]
    text = i.get("diagnostics") or (i.get("details") or {}).get("text") or ""
    where = i.get("expression") or i.get("location") or []
    parts = [f"[{i.get('severity', '?')}/{i.get('code', '?')}]"]
    if where:
        parts.append(",".join(where))
    if text:
        parts.append(text)
    s = " ".join(parts).replace("\n", " ")
    more = len(issues) - 1
    if more > 0:
        s += f" (+{more} more issue{'s' if more > 1 else ''})"
    return s[:400]


# Kiln assigns an MRN (identifier system urn:kiln:tenant:<clinic>:mrn) to a Patient that has
# none: the one thing the server adds to what a client sent.
ASSIGNED_MRN_PREFIX = "urn:kiln:tenant:"


def normalize(resource: Any) -> Any:
    if not isinstance(resource, dict):
        return resource
    r = dict(resource)
    identifiers = r.get("identifier")
    if r.get("resourceType") == "Patient" and isinstance(identifiers, list):
        kept = [i for i in identifiers
                if not (isinstance(i, dict) and str(i.get("system", "")).startswith(ASSIGNED_MRN_PREFIX))]
        if kept:
            r["identifier"] = kept
        else:
            del r["identifier"]
    meta = r.get("meta")
    if isinstance(meta, dict):
        meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated")}
        if meta:
            r["meta"] = meta
        else:
            del r["meta"]
    return r


STRICT_DECIMALS = False


def numbers_equal(a: Any, b: Any) -> bool:
    """Numbers are compared as numbers: 1 == 1.0, 1.50 == 1.5.

    By default non-integers are compared as IEEE doubles, so a server that
    round-trips decimals through f64 passes (66.899999999999991 comes back as
    66.89999999999999). --strict-decimals compares exact decimal values.
    """
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if STRICT_DECIMALS:
        return Decimal(str(a)) == Decimal(str(b))
    try:
        return float(a) == float(b)
    except OverflowError:
        return Decimal(str(a)) == Decimal(str(b))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Return a human readable description of the first difference, or None."""
    if isinstance(a, bool) or isinstance(b, bool):
        if a is b:
            return None
        return f"{path or '/'}: expected {short(a)}, got {short(b)}"
    num = (int, float, Decimal)
    if isinstance(a, num) and isinstance(b, num):
        return None if numbers_equal(a, b) else f"{path}: expected {a}, got {b}"
    if type(a) is not type(b):
        return f"{path or '/'}: expected {short(a)}, got {short(b)}"
    if isinstance(a, dict):
        for k in a:
            if k not in b:
                return f"{path}/{k}: missing in server response"
        for k in b:
            if k not in a:
                return f"{path}/{k}: unexpected in server response ({short(b[k])})"
        for k in a:
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: expected {len(a)} items, got {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    return None if a == b else f"{path or '/'}: expected {short(a)}, got {short(b)}"


def short(v: Any) -> str:
    s = json.dumps(v, default=str, ensure_ascii=False)
    return s if len(s) <= 80 else s[:77] + "..."


# --------------------------------------------------------------------------
# reporting


class Reporter:
    def __init__(self, quiet: bool):
        self.passed = 0
        self.failed = 0
        self.quiet = quiet

    def ok(self, name: str, note: str = "") -> None:
        self.passed += 1
        if not self.quiet:
            print(f"PASS  {name}" + (f" -- {note}" if note else ""), flush=True)

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL  {name} -- {why}", flush=True)

    def check(self, name: str, cond: bool, why: str = "", note: str = "") -> bool:
        if cond:
            self.ok(name, note)
        else:
            self.fail(name, why or "check failed")
        return cond

    def info(self, line: str) -> None:
        print(line, flush=True)

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


# --------------------------------------------------------------------------
# checks


def check_metadata(client: Client, rep: Reporter) -> list[str]:
    """Returns the resource types the CapabilityStatement lists."""
    r = client.request("GET", "/metadata")
    if not rep.check("metadata: GET /metadata -> 200", r.status == 200, f"got HTTP {r.status}"):
        return []
    rep.check("metadata: Content-Type application/fhir+json",
              r.content_type.split(";")[0].strip().lower() == FHIR_JSON,
              f"got {r.content_type!r}")
    cs = r.json()
    if not rep.check("metadata: body is a CapabilityStatement",
                     isinstance(cs, dict) and cs.get("resourceType") == "CapabilityStatement",
                     f"resourceType={cs.get('resourceType') if isinstance(cs, dict) else type(cs).__name__}"):
        return []
    rep.check("metadata: fhirVersion == 4.0.1", cs.get("fhirVersion") == "4.0.1",
              f"got {cs.get('fhirVersion')!r}")
    rep.check("metadata: status present", bool(cs.get("status")), "missing status")
    rep.check("metadata: kind == instance", cs.get("kind") == "instance", f"got {cs.get('kind')!r}")
    fmts = cs.get("format") or []
    rep.check("metadata: format includes json",
              any(isinstance(f, str) and "json" in f.lower() for f in fmts), f"format={fmts!r}")
    rest = cs.get("rest") or []
    if not rep.check("metadata: rest[0].mode == server",
                     bool(rest) and isinstance(rest[0], dict) and rest[0].get("mode") == "server",
                     f"rest={short(rest)}"):
        return []
    listed: dict[str, dict] = {}
    for res in rest[0].get("resource") or []:
        if isinstance(res, dict) and res.get("type"):
            listed[res["type"]] = res
    for t in REQUIRED_TYPES:
        rep.check(f"metadata: lists required type {t}", t in listed, "not in rest[0].resource")
    for t in sorted(listed):
        res = listed[t]
        codes = {i.get("code") for i in res.get("interaction") or [] if isinstance(i, dict)}
        missing = [c for c in REQUIRED_INTERACTIONS if c not in codes]
        problems = []
        if missing:
            problems.append(f"missing interactions {missing}")
        if res.get("versioning") != "versioned":
            problems.append(f"versioning={res.get('versioning')!r}")
        rep.check(f"metadata: {t} interactions + versioning", not problems, "; ".join(problems))
    return sorted(listed)


def check_errors(client: Client, rep: Reporter) -> None:
    def expect(name: str, resp: Response, status: int) -> None:
        problems = []
        if resp.status != status:
            problems.append(f"expected HTTP {status}, got {resp.status}")
        if not is_oo(resp.json()):
            problems.append("body is not an OperationOutcome")
        rep.check(name, not problems, "; ".join(problems))

    expect("errors: GET unknown type -> 404 OperationOutcome",
           client.request("GET", "/NotARealResourceType"), 404)
    expect("errors: GET unknown type instance -> 404 OperationOutcome",
           client.request("GET", "/NotARealResourceType/some-id"), 404)
    expect("errors: POST malformed JSON to /Patient -> 400 OperationOutcome",
           client.request("POST", "/Patient", body=b'{"resourceType": "Patient", "name": [',
                          headers={"Content-Type": FHIR_JSON}), 400)
    expect("errors: GET /Patient/does-not-exist-xyz -> 404 OperationOutcome",
           client.request("GET", "/Patient/does-not-exist-xyz"), 404)
    expect("errors: GET /metadata Accept: application/fhir+xml -> 406 OperationOutcome",
           client.request("GET", "/metadata", headers={"Accept": "application/fhir+xml"}), 406)


# Types no client may write (the audit trail); their examples must be refused with 405.
SERVER_WRITTEN = {"AuditEvent"}


def load_known_invalid(path: str) -> dict[str, str]:
    known: dict[str, str] = {}
    if not os.path.exists(path):
        return known
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, reason = line.partition(" ")
            known[name.strip()] = reason.strip().lstrip("#-: ").strip()
    return known


def history_contains(bundle: Any, rtype: str, rid: str) -> bool:
    for e in bundle.get("entry") or []:
        if not isinstance(e, dict):
            continue
        res = e.get("resource")
        if isinstance(res, dict) and res.get("resourceType") == rtype and res.get("id") == rid:
            return True
        for u in (e.get("fullUrl"), (e.get("request") or {}).get("url")):
            if isinstance(u, str) and re.search(rf"(^|/){re.escape(rtype)}/{re.escape(rid)}(/_history/[^/]+)?$", u):
                return True
    return False


def check_examples(client: Client, rep: Reporter, examples_dir: str, supported: list[str],
                   known: dict[str, str], args: argparse.Namespace) -> None:
    if not os.path.isdir(examples_dir):
        rep.fail("examples: directory present",
                 f"{examples_dir} not found (run: bash fhir-profiles/fetch.sh)")
        return
    only = set(args.types.split(",")) if args.types else None
    supported_set = set(supported)
    files_by_type: dict[str, list[str]] = {}
    for name in sorted(os.listdir(examples_dir)):
        m = EXAMPLE_FILE.match(name)
        if not m:
            continue
        t = m.group(1)
        if t not in supported_set or (only is not None and t not in only):
            continue
        files_by_type.setdefault(t, []).append(name)

    stats: dict[str, dict[str, int]] = {}
    paste: list[str] = []
    listed_but_accepted: list[str] = []
    skipped_unsupported = 0
    for name in sorted(os.listdir(examples_dir)):
        m = EXAMPLE_FILE.match(name)
        if m and m.group(1) not in supported_set:
            skipped_unsupported += 1

    for t in sorted(files_by_type):
        names = files_by_type[t]
        if args.max_per_type:
            names = names[: args.max_per_type]
        st = stats.setdefault(t, {"accepted": 0, "rejected-expected": 0, "rejected": 0,
                                  "failed": 0, "skipped": 0})
        for name in names:
            label = f"example {name}"
            path = os.path.join(examples_dir, name)
            with open(path, "rb") as f:
                raw = f.read()
            try:
                example = parse_json(raw)
            except ValueError as e:
                st["skipped"] += 1
                rep.info(f"SKIP  {label} -- not valid JSON ({e})")
                continue
            if not isinstance(example, dict) or example.get("resourceType") != t:
                st["skipped"] += 1
                rep.info(f"SKIP  {label} -- resourceType is not {t}")
                continue
            rid = example.get("id")
            if not isinstance(rid, str) or not rid:
                st["skipped"] += 1
                rep.info(f"SKIP  {label} -- no id")
                continue
            rpath = f"/{t}/{urllib.parse.quote(rid, safe='')}"
            try:
                put = client.request("PUT", rpath, body=raw)
            except TimeoutError as e:
                st["failed"] += 1
                rep.fail(label, str(e))
                continue
            if t in SERVER_WRITTEN:
                # The audit trail is written by the server alone: every client write is 405.
                if put.status == 405 and is_oo(put.json()):
                    st["rejected-expected"] += 1
                    rep.ok(label, "refused as designed: AuditEvents are written by the server (HTTP 405)")
                else:
                    st["failed"] += 1
                    rep.fail(label, f"PUT {rpath}: expected 405 (server-written type), got {put.describe()}")
                continue
            if put.status in (400, 422) and is_oo(put.json()):
                diag = first_issue(put.json())
                if name in known:
                    st["rejected-expected"] += 1
                    rep.ok(label, f"rejected (expected: {known[name]}) HTTP {put.status} {diag}")
                elif args.allow_rejections:
                    st["rejected"] += 1
                    rep.ok(label, f"rejected (reported) HTTP {put.status} {diag}")
                    paste.append(f"{name}  {diag}")
                else:
                    st["rejected"] += 1
                    rep.fail(label, f"rejected (reported; not in known-invalid list) HTTP {put.status} {diag}")
                    paste.append(f"{name}  {diag}")
                continue
            if put.status not in (200, 201):
                st["failed"] += 1
                rep.fail(label, f"PUT {rpath}: expected 200/201, got {put.describe()}")
                continue
            # read back
            get = client.request("GET", rpath)
            if get.status != 200:
                st["failed"] += 1
                rep.fail(label, f"GET {rpath}: expected 200, got {get.describe()}")
                continue
            diff = first_difference(normalize(example), normalize(get.json()))
            if get.json() is None:
                diff = "GET body is not JSON"
            if diff:
                st["failed"] += 1
                rep.fail(label, f"round-trip mismatch at {diff}")
                continue
            hist = client.request("GET", rpath + "/_history")
            hb = hist.json()
            problems = []
            if hist.status != 200:
                problems.append(f"HTTP {hist.status}")
            elif not (isinstance(hb, dict) and hb.get("resourceType") == "Bundle"):
                problems.append("not a Bundle")
            else:
                if hb.get("type") != "history":
                    problems.append(f"Bundle.type={hb.get('type')!r}")
                if not history_contains(hb, t, rid):
                    problems.append(f"no entry for {t}/{rid}")
            if problems:
                st["failed"] += 1
                rep.fail(label, f"GET {rpath}/_history: " + "; ".join(problems))
                continue
            st["accepted"] += 1
            note = f"PUT {put.status}, read + history ok"
            if name in known:
                listed_but_accepted.append(name)
                if not args.lenient_known_invalid:
                    rep.fail(label, "accepted, but listed in known-invalid-examples.txt "
                                    f"({known[name]}): the server should refuse it")
                    st["accepted"] -= 1
                    st["failed"] += 1
                    continue
                note += " (NOTE: listed as known-invalid but accepted)"
            rep.ok(label, note)

    rep.info("")
    rep.info(f"Example summary per type (skipped {skipped_unsupported} example files of unsupported types):")
    rep.info(f"  {'type':<28}{'accepted':>9}{'rej-exp':>9}{'rejected':>9}{'failed':>8}{'skipped':>8}")
    tot = {"accepted": 0, "rejected-expected": 0, "rejected": 0, "failed": 0, "skipped": 0}
    for t in sorted(stats):
        s = stats[t]
        for k in tot:
            tot[k] += s[k]
        rep.info(f"  {t:<28}{s['accepted']:>9}{s['rejected-expected']:>9}{s['rejected']:>9}"
                 f"{s['failed']:>8}{s['skipped']:>8}")
    rep.info(f"  {'TOTAL':<28}{tot['accepted']:>9}{tot['rejected-expected']:>9}{tot['rejected']:>9}"
             f"{tot['failed']:>8}{tot['skipped']:>8}")
    if listed_but_accepted:
        rep.info("")
        rep.info(f"Listed in known-invalid-examples.txt but accepted ({len(listed_but_accepted)}): "
                 + ", ".join(listed_but_accepted))
    if paste:
        rep.info("")
        rep.info(f"Rejected examples not in {os.path.relpath(args.known_invalid, REPO)}; after review, "
                 "ready-to-paste lines (file name, then the server's first issue as the reason):")
        rep.info("----- 8< -----")
        for line in paste:
            rep.info(line)
        rep.info("----- 8< -----")
    rep.info("")


# --------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Black-box FHIR R4 conformance checks against a running Kiln server.")
    ap.add_argument("--base", required=True,
                    help="FHIR base URL of the server, e.g. http://127.0.0.1:8080/fhir")
    ap.add_argument("--examples", default=DEFAULT_EXAMPLES,
                    help="package/ directory of hl7.fhir.r4.examples@4.0.1 "
                         "(default: .fhir-cache/hl7.fhir.r4.examples-4.0.1/package; "
                         "get it with: bash fhir-profiles/fetch.sh)")
    ap.add_argument("--known-invalid", default=DEFAULT_KNOWN_INVALID,
                    help="list of examples the server is expected to reject")
    ap.add_argument("--types", help="comma-separated resource types: only round-trip examples of these")
    ap.add_argument("--max-per-type", type=int, default=0,
                    help="round-trip at most N examples per type (0 = all)")
    ap.add_argument("--skip-examples", action="store_true", help="skip the example round-trips")
    ap.add_argument("--allow-rejections", action="store_true",
                    help="count 400/422 rejections of unlisted examples as reported, not failed")
    ap.add_argument("--lenient-known-invalid", action="store_true",
                    help="only note (do not fail) when an example listed as known-invalid is accepted")
    ap.add_argument("--strict-decimals", action="store_true",
                    help="compare decimals exactly (FHIR requires decimal precision to be kept); "
                         "default compares them as IEEE doubles")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only failures and summaries")
    args = ap.parse_args()

    global STRICT_DECIMALS
    STRICT_DECIMALS = args.strict_decimals
    client = Client(args.base, args.timeout)
    rep = Reporter(args.quiet)
    known = load_known_invalid(args.known_invalid)
    started = time.monotonic()
    rc = 0
    try:
        supported = check_metadata(client, rep)
        check_errors(client, rep)
        if not args.skip_examples:
            if supported:
                check_examples(client, rep, args.examples, supported, known, args)
            else:
                rep.fail("examples", "no resource types in the CapabilityStatement; example round-trips not run")
    except ServerUnreachable as e:
        rep.fail("server reachable", f"{e} -- is Kiln running and is --base {args.base} right?")
        rc = 2
    except TimeoutError as e:
        rep.fail("server responsive", str(e))
        rc = 2
    finally:
        client.close()
    rep.info(f"(took {time.monotonic() - started:.1f}s against {args.base})")
    print(rep.summary(), flush=True)
    if rc:
        return rc
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
