#!/usr/bin/env python3
"""Generate compact FHIR R4 (4.0.1) definition facts for Kiln.

Reads HL7's npm package hl7.fhir.r4.examples@4.0.1 (unpacked by fetch.sh into
<repo>/.fhir-cache/hl7.fhir.r4.examples-4.0.1/package) and the list of
supported resource types in fhir-profiles/types.txt, and writes:

  fhir-profiles/r4/resources/<Type>.json     element tree per supported resource
  fhir-profiles/r4/datatypes.json            primitives (+regex) and complex datatypes
  fhir-profiles/r4/search-parameters.json    search parameters of the supported types
  fhir-profiles/r4/compartments/Patient.json Patient compartment membership

Only facts are written (no prose). Output is deterministic: running the
script twice on the same package yields byte-identical files.

Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CACHE_DIR = os.environ.get("FHIR_CACHE_DIR") or os.path.join(REPO, ".fhir-cache")
DEFAULT_PACKAGE = os.path.join(CACHE_DIR, "hl7.fhir.r4.examples-4.0.1", "package")

FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"
SYSTEM_PREFIX = "http://hl7.org/fhirpath/System."
SYSTEM_TYPE_MAP = {
    "String": "string",
    "Boolean": "boolean",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
}
# Search parameters without a FHIRPath expression that are still kept
# (with "expression": null): the special full-text / named-query parameters.
NO_EXPRESSION_OK = {"_text", "_content", "_query", "_filter", "_list", "_has", "_type"}
# Grammar-based / open code systems: a value set drawing on them is never
# written as a finite code list (the package's expansions of them are samples).
OPEN_SYSTEMS = {
    "http://unitsofmeasure.org",  # UCUM
    "urn:ietf:bcp:13",  # mime types
    "urn:ietf:bcp:47",  # languages
    "http://snomed.info/sct",
    "http://loinc.org",
}


# --------------------------------------------------------------------------
# helpers


def load_json(path: str) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def strip_version(url: str | None) -> str | None:
    if url is None:
        return None
    return url.split("|", 1)[0]


def last_segment(url: str) -> str:
    return strip_version(url).rstrip("/").rsplit("/", 1)[-1]


def dedupe(seq):
    seen = set()
    out = []
    for x in seq:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def render_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


class Output:
    """Collects the generated files, then writes them (or compares them, for --check)."""

    def __init__(self, root: str):
        self.root = root
        self.files: dict[str, bytes] = {}

    def add(self, rel: str, obj: Any) -> None:
        self.files[rel] = render_json(obj)

    def total_bytes(self) -> int:
        return sum(len(b) for b in self.files.values())

    def _existing(self) -> set[str]:
        found = set()
        for sub in ("resources", "structures", "compartments"):
            d = os.path.join(self.root, sub)
            if os.path.isdir(d):
                found.update(f"{sub}/{n}" for n in os.listdir(d) if n.endswith(".json"))
        for n in ("datatypes.json", "search-parameters.json"):
            if os.path.exists(os.path.join(self.root, n)):
                found.add(n)
        return found

    def write(self, quiet: bool) -> None:
        for rel, data in sorted(self.files.items()):
            path = os.path.join(self.root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                with open(path, "rb") as f:
                    if f.read() == data:
                        continue  # unchanged: keep the mtime
            except FileNotFoundError:
                pass
            with open(path, "wb") as f:
                f.write(data)
        for rel in sorted(self._existing() - set(self.files)):
            os.remove(os.path.join(self.root, rel))
            if not quiet:
                print(f"removed stale {rel}")

    def check(self) -> list[str]:
        problems = []
        for rel, data in sorted(self.files.items()):
            path = os.path.join(self.root, rel)
            try:
                with open(path, "rb") as f:
                    if f.read() != data:
                        problems.append(f"differs: {rel}")
            except FileNotFoundError:
                problems.append(f"missing: {rel}")
        for rel in sorted(self._existing() - set(self.files)):
            problems.append(f"stale (not generated any more): {rel}")
        return problems


def read_types(path: str) -> list[str]:
    types = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                types.append(line)
    dupes = {t for t in types if types.count(t) > 1}
    if dupes:
        sys.exit(f"generate.py: duplicate types in {path}: {sorted(dupes)}")
    return types


# --------------------------------------------------------------------------
# terminology


def not_selectable(concept: dict) -> bool:
    """Abstract concepts (property notSelectable/abstract = true) are not valid codes."""
    for p in concept.get("property", []):
        if p.get("code") in ("notSelectable", "abstract") and p.get("valueBoolean") is True:
            return True
    return False


def open_ended_systems(compose: dict) -> set[str]:
    """Systems that the compose includes without an explicit concept list."""
    return {inc["system"] for inc in compose.get("include", [])
            if inc.get("system") and not inc.get("concept")}


class Terminology:
    """Index of ValueSets / CodeSystems in the package and a small expander."""

    def __init__(self, package: str):
        self.value_sets: dict[str, dict] = {}
        self.expansions: dict[str, dict] = {}
        self.code_systems: dict[str, dict] = {}
        sources: list[dict] = []
        for name in ("Bundle-valuesets.json", "Bundle-v2-valuesets.json",
                     "Bundle-v3-valuesets.json", "Bundle-externals.json",
                     "Bundle-valueset-expansions.json"):
            path = os.path.join(package, name)
            if os.path.exists(path):
                for e in load_json(path).get("entry", []):
                    if "resource" in e:
                        sources.append(e["resource"])
        for path in sorted(glob.glob(os.path.join(package, "ValueSet-*.json"))
                           + glob.glob(os.path.join(package, "CodeSystem-*.json"))):
            sources.append(load_json(path))
        for r in sources:
            url = r.get("url")
            if not url:
                continue
            rt = r.get("resourceType")
            if rt == "CodeSystem":
                prev = self.code_systems.get(url)
                # prefer a version that actually carries its concepts
                if prev is None or (not prev.get("concept") and r.get("concept")):
                    self.code_systems[url] = r
            elif rt == "ValueSet":
                if "compose" in r and "compose" not in self.value_sets.get(url, {}):
                    self.value_sets[url] = r
                if r.get("expansion", {}).get("contains") and url not in self.expansions:
                    self.expansions[url] = r
                if url not in self.value_sets and url not in self.expansions:
                    self.value_sets[url] = r
        self._cache: dict[str, list[str] | None] = {}
        self.unexpandable: dict[str, str] = {}

    # -- code systems

    def _cs_codes(self, system: str) -> list[str] | None:
        cs = self.code_systems.get(system)
        if cs is None:
            return None
        if cs.get("content", "complete") != "complete" or not cs.get("concept"):
            return None
        out: list[str] = []

        def walk(concepts):
            for c in concepts:
                if "code" in c and not not_selectable(c):
                    out.append(c["code"])
                walk(c.get("concept", []))

        walk(cs["concept"])
        return out

    def _cs_descendants(self, system: str, code: str, include_self: bool) -> list[str] | None:
        cs = self.code_systems.get(system)
        if cs is None or cs.get("content", "complete") != "complete":
            return None
        found: list[str] | None = None

        def flatten(concepts, out):
            for c in concepts:
                if not not_selectable(c):
                    out.append(c["code"])
                flatten(c.get("concept", []), out)

        def walk(concepts):
            nonlocal found
            for c in concepts:
                if found is not None:
                    return
                if c.get("code") == code:
                    found = [code] if include_self and not not_selectable(c) else []
                    flatten(c.get("concept", []), found)
                    return
                walk(c.get("concept", []))

        walk(cs.get("concept", []))
        return found

    # -- value sets

    def _include(self, inc: dict, why: list[str]) -> list[str] | None:
        sets: list[list[str]] = []
        system = inc.get("system")
        if system:
            if inc.get("filter"):
                codes = None
                # only simple hierarchical filters on a local, complete code system
                if len(inc["filter"]) == 1:
                    flt = inc["filter"][0]
                    if flt.get("property") == "concept" and flt.get("op") in ("is-a", "descendent-of"):
                        codes = self._cs_descendants(system, flt.get("value"), flt["op"] == "is-a")
                if codes is None:
                    why.append(f"filter on {system}")
                    return None
            elif inc.get("concept"):
                codes = [c["code"] for c in inc["concept"]]
            else:
                codes = self._cs_codes(system)
                if codes is None:
                    why.append(f"code system {system} not available/complete")
                    return None
            sets.append(codes)
        for vs in inc.get("valueSet", []):
            codes = self.expand(vs, why)
            if codes is None:
                return None
            sets.append(codes)
        if not sets:
            why.append("empty include")
            return None
        result = sets[0]
        for other in sets[1:]:
            keep = set(other)
            result = [c for c in result if c in keep]
        return result

    def expand(self, url: str, why: list[str] | None = None, _stack: tuple = ()) -> list[str] | None:
        url = strip_version(url)
        if why is None:
            why = []
        if url in self._cache:
            if self._cache[url] is None and url in self.unexpandable:
                why.append(self.unexpandable[url])
            return self._cache[url]
        if url in _stack:
            why.append(f"cyclic value set {url}")
            return None
        result = None
        local_why: list[str] = []
        vs = self.value_sets.get(url)
        open_systems = set()
        if vs is not None and "compose" in vs:
            open_systems = open_ended_systems(vs["compose"]) & OPEN_SYSTEMS
            if open_systems:
                local_why.append(f"open/grammar-based code system {sorted(open_systems)[0]}")
            else:
                result = self._compose(vs["compose"], local_why)
        if result is None and not open_systems and url in self.expansions:
            exp = self.expansions[url]["expansion"]
            codes: list[str] = []
            listed = 0

            def walk(contains):
                nonlocal listed
                for c in contains:
                    if "code" in c:
                        listed += 1
                        if not c.get("abstract"):
                            codes.append(c["code"])
                    walk(c.get("contains", []))

            walk(exp.get("contains", []))
            total = exp.get("total")
            # a paged / truncated expansion (total > listed codes) is not usable
            if codes and (total is None or total <= listed):
                result = codes
                local_why = []
        if vs is None and url not in self.expansions:
            local_why.append(f"value set {url} not in package")
        if result is not None:
            result = dedupe(result)
        else:
            self.unexpandable[url] = "; ".join(dedupe(local_why)) or "unknown"
        why.extend(local_why)
        self._cache[url] = result
        return result

    def _compose(self, compose: dict, why: list[str]) -> list[str] | None:
        codes: list[str] = []
        for inc in compose.get("include", []):
            part = self._include(inc, why)
            if part is None:
                return None
            codes.extend(part)
        for exc in compose.get("exclude", []):
            part = self._include(exc, why)
            if part is None:
                return None
            drop = set(part)
            codes = [c for c in codes if c not in drop]
        return codes


# --------------------------------------------------------------------------
# structure definitions -> element trees


class ElementBuilder:
    def __init__(self, term: Terminology):
        self.term = term
        self.required_bindings: dict[str, list[str] | None] = {}

    def type_code(self, t: dict, rel_path: str, is_resource: bool) -> str:
        code = t["code"]
        if code.startswith(SYSTEM_PREFIX):
            if is_resource and rel_path == "id":
                return "id"
            for ext in t.get("extension", []):
                if ext.get("url") == FHIR_TYPE_EXT and ext.get("valueUrl"):
                    return ext["valueUrl"]
            return SYSTEM_TYPE_MAP.get(code[len(SYSTEM_PREFIX):], code)
        return code

    def element(self, el: dict, rel_path: str, is_resource: bool) -> dict:
        node: dict[str, Any] = {}
        if "contentReference" in el:
            node["contentReference"] = el["contentReference"].lstrip("#")
        node["min"] = el.get("min", 0)
        node["max"] = str(el.get("max", "*"))
        if "contentReference" not in el:
            types = dedupe(self.type_code(t, rel_path, is_resource) for t in el.get("type", []))
            node["types"] = types
            targets = set()
            profiles = set()
            for t in el.get("type", []):
                for tp in t.get("targetProfile", []):
                    targets.add(last_segment(tp))
                for p in t.get("profile", []):
                    profiles.add(last_segment(p))
            if targets and targets != {"Resource"}:
                node["targets"] = sorted(targets)
            if profiles:
                node["profiles"] = sorted(profiles)
        if el.get("isSummary"):
            node["summary"] = True
        if el.get("isModifier"):
            node["modifier"] = True
        b = el.get("binding")
        if b and b.get("strength") == "required":
            url = strip_version(b.get("valueSet"))
            codes = self.term.expand(url) if url else None
            node["binding"] = {"strength": "required", "valueSet": url, "codes": codes}
            self.required_bindings[url] = codes
        return node

    def tree(self, sd: dict) -> dict:
        is_resource = sd.get("kind") == "resource"
        elements = sd["snapshot"]["element"]
        root = elements[0]["path"]
        top: dict[str, dict] = {}
        by_path: dict[str, dict] = {}
        for el in elements[1:]:
            if "sliceName" in el:
                # the core spec has no slices; profile slices are not represented
                continue
            path = el["path"]
            if not path.startswith(root + "."):
                raise SystemExit(f"unexpected path {path} in {sd['id']}")
            rel = path[len(root) + 1:]
            node = self.element(el, rel, is_resource)
            if "." in rel:
                parent_rel, name = rel.rsplit(".", 1)
                parent = by_path.get(parent_rel)
                if parent is None:
                    raise SystemExit(f"orphan element {path} in {sd['id']}")
                parent.setdefault("elements", {})[name] = node
            else:
                top[rel] = node
            by_path[rel] = node
        return top


# --------------------------------------------------------------------------
# search parameters


def split_union(expr: str) -> list[str]:
    """Split a FHIRPath expression at top-level '|' (outside parens/strings)."""
    parts, depth, buf, quote = [], 0, [], None
    i = 0
    while i < len(expr):
        ch = expr[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < len(expr):
                buf.append(expr[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch in ("'", '"', "`"):
            quote = ch
            buf.append(ch)
        elif ch in "([{":
            depth += 1
            buf.append(ch)
        elif ch in ")]}":
            depth -= 1
            buf.append(ch)
        elif ch == "|" and depth == 0:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf).strip())
    return [p for p in parts if p]


def first_segment(part: str) -> str:
    s = part.lstrip("( \t")
    end = len(s)
    for i, ch in enumerate(s):
        if not (ch.isalnum() or ch == "_"):
            end = i
            break
    return s[:end]


def expression_for(expr: str | None, type_name: str) -> str | None:
    if expr is None:
        return None
    parts = split_union(expr)
    keep = [p for p in parts if first_segment(p) == type_name]
    if not keep:
        return expr
    return " | ".join(keep)


def build_search_params(package: str, types: list[str]) -> tuple[dict, dict]:
    bundle = load_json(os.path.join(package, "Bundle-searchParams.json"))
    params = [e["resource"] for e in bundle.get("entry", [])
              if e.get("resource", {}).get("resourceType") == "SearchParameter"]
    code_by_url = {p["url"]: p["code"] for p in params}
    supported = set(types)
    common: list[dict] = []
    by_type: dict[str, list[dict]] = {t: [] for t in sorted(types)}
    stats = {"skipped_no_expression": []}

    def make(p: dict, type_name: str | None) -> dict:
        expr = p.get("expression")
        out: dict[str, Any] = {
            "code": p["code"],
            "type": p["type"],
            "expression": expression_for(expr, type_name) if type_name else expr,
            "url": p["url"],
        }
        if p.get("target"):
            out["targets"] = sorted(set(p["target"]))
        if p.get("modifier"):
            out["modifiers"] = list(p["modifier"])
        if p.get("comparator"):
            out["comparators"] = list(p["comparator"])
        if "multipleOr" in p:
            out["multipleOr"] = bool(p["multipleOr"])
        if "multipleAnd" in p:
            out["multipleAnd"] = bool(p["multipleAnd"])
        if p.get("component"):
            out["components"] = [
                {"definition": c["definition"],
                 "code": code_by_url.get(c["definition"]),
                 "expression": c.get("expression")}
                for c in p["component"]
            ]
        return out

    for p in params:
        if not p.get("expression") and p["code"] not in NO_EXPRESSION_OK:
            stats["skipped_no_expression"].append(p["url"])
            continue
        bases = p.get("base", [])
        if "Resource" in bases or "DomainResource" in bases:
            common.append(make(p, None))
        for b in bases:
            if b in supported:
                by_type[b].append(make(p, b))
    key = lambda x: (x["code"], x["url"])  # noqa: E731
    common.sort(key=key)
    for t in by_type:
        by_type[t].sort(key=key)
        codes = [x["code"] for x in by_type[t]]
        dup = {c for c in codes if codes.count(c) > 1}
        if dup:
            stats.setdefault("duplicate_codes", {})[t] = sorted(dup)
    return {"common": common, "byType": by_type}, stats


# --------------------------------------------------------------------------
# main


def ensure_package(package: str, fetch: bool) -> None:
    if os.path.exists(os.path.join(package, "Bundle-resources.json")):
        return
    if not fetch:
        sys.exit(f"generate.py: package not found at {package} (run fhir-profiles/fetch.sh)")
    if os.path.abspath(package) != os.path.abspath(DEFAULT_PACKAGE):
        sys.exit(f"generate.py: package not found at {package}")
    print("generate.py: package missing, running fetch.sh", file=sys.stderr)
    subprocess.run(["bash", os.path.join(HERE, "fetch.sh")], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--package", default=DEFAULT_PACKAGE,
                    help="unpacked package/ directory of hl7.fhir.r4.examples@4.0.1")
    ap.add_argument("--types", default=os.path.join(HERE, "types.txt"))
    ap.add_argument("--out", default=os.path.join(HERE, "r4"))
    ap.add_argument("--no-fetch", action="store_true", help="do not run fetch.sh when the package is missing")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if the files on disk differ from what would be generated")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()

    ensure_package(args.package, not args.no_fetch)
    types = read_types(args.types)
    term = Terminology(args.package)
    builder = ElementBuilder(term)

    sds: dict[str, dict] = {}
    for name in ("Bundle-resources.json", "Bundle-types.json"):
        for e in load_json(os.path.join(args.package, name)).get("entry", []):
            r = e.get("resource", {})
            if r.get("resourceType") == "StructureDefinition":
                sds[r["id"]] = r

    out = Output(args.out)
    # 1. resources
    unknown = [t for t in types if t not in sds or sds[t].get("kind") != "resource"]
    if unknown:
        sys.exit(f"generate.py: not R4 resource types: {unknown}")
    for t in types:
        sd = sds[t]
        doc = {
            "type": t,
            "kind": "resource",
            "base": last_segment(sd["baseDefinition"]) if sd.get("baseDefinition") else None,
            "elements": builder.tree(sd),
        }
        out.add(f"resources/{t}.json", doc)

    # 1b. every other concrete R4 resource type, for validation only: a served resource may
    # contain (or a Bundle/Parameters carry) resources of any R4 type.
    for t, sd in sorted(sds.items()):
        if sd.get("kind") == "resource" and not sd.get("abstract") and t not in types and sd.get("derivation") == "specialization":
            doc = {
                "type": t,
                "kind": "resource",
                "base": last_segment(sd["baseDefinition"]) if sd.get("baseDefinition") else None,
                "elements": builder.tree(sd),
            }
            out.add(f"structures/{t}.json", doc)

    # 2. datatypes
    primitives: list[str] = []
    regexes: dict[str, str] = {}
    complex_: dict[str, dict] = {}
    for sid, sd in sds.items():
        kind = sd.get("kind")
        if kind == "primitive-type":
            primitives.append(sid)
            for el in sd["snapshot"]["element"]:
                if el["path"] == f"{sd['type']}.value":
                    for t in el.get("type", []):
                        for ext in t.get("extension", []):
                            if ext.get("url") == REGEX_EXT:
                                regexes[sid] = ext["valueString"]
        elif kind == "complex-type":
            entry: dict[str, Any] = {}
            if sd.get("baseDefinition"):
                entry["base"] = last_segment(sd["baseDefinition"])
            if sd.get("abstract"):
                entry["abstract"] = True
            if sd.get("derivation") == "constraint":
                entry["constraint"] = True
            entry["elements"] = builder.tree(sd)
            complex_[sid] = entry
    datatypes = {
        "primitives": sorted(primitives),
        "primitiveRegex": dict(sorted(regexes.items())),
        "complex": dict(sorted(complex_.items())),
    }
    out.add("datatypes.json", datatypes)

    # 3. search parameters
    sp, sp_stats = build_search_params(args.package, types)
    out.add("search-parameters.json", sp)

    # 4. compartments
    comp = load_json(os.path.join(args.package, "CompartmentDefinition-patient.json"))
    patient_comp = {r["code"]: list(r.get("param", [])) for r in comp.get("resource", [])}
    out.add("compartments/Patient.json", dict(sorted(patient_comp.items())))

    if args.check:
        problems = out.check()
        for p in problems:
            print(f"generate.py --check: {p}")
        if problems:
            print(f"generate.py --check: {args.out} is out of date; run python3 fhir-profiles/generate.py")
            return 1
        if not args.quiet:
            print(f"generate.py --check: {len(out.files)} files up to date")
        return 0
    out.write(args.quiet)

    if not args.quiet:
        print(f"wrote {len(types)} resource files, datatypes ({len(primitives)} primitives, "
              f"{len(complex_)} complex), {sum(len(v) for v in sp['byType'].values())} type search params "
              f"+ {len(sp['common'])} common, Patient compartment ({len(patient_comp)} types); "
              f"{out.total_bytes()} bytes")
        nulls = sorted(u for u, c in builder.required_bindings.items() if c is None)
        print(f"required bindings: {len(builder.required_bindings)}, not expandable: {len(nulls)}")
        for u in nulls:
            print(f"  {u}: {term.unexpandable.get(u, '?')}")
        if sp_stats.get("duplicate_codes"):
            print(f"duplicate search codes per type: {sp_stats['duplicate_codes']}")
        if sp_stats["skipped_no_expression"]:
            print(f"skipped search params without expression: {sp_stats['skipped_no_expression']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
