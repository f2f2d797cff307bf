#!/usr/bin/env python3
"""Generate crates/protocol/src/schema_gen.rs from Apache Kafka's JSON message specs.

The specs (common/message/*Request.json and RequestHeader.json) are resources
inside the kafka-clients jar. This script reads them straight from the jar and
writes a compact Rust table describing, for every request API, each field's
type, versions, nullable versions, flexible versions and tags. The validation
pass in src/validate.rs walks that table; nothing here is copied from any other
project's code.

Usage (from the repository root):
    python3 crates/protocol/gen/gen_schema.py [--jar PATH] [--check]

--check compares the generated text with the committed file and exits 1 if it
differs (the test `schema_gen_is_current` runs this when the jar is present).
"""
import argparse
import glob
import json
import os
import re
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CRATE = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(CRATE))
OUT = os.path.join(CRATE, "src", "schema_gen.rs")
KAFKA_VERSION = "4.1.2"

PRIMS = {
    "bool": "Bool",
    "int8": "Int8",
    "int16": "Int16",
    "uint16": "Uint16",
    "int32": "Int32",
    "uint32": "Uint32",
    "int64": "Int64",
    "float64": "Float64",
    "uuid": "Uuid",
    "string": "String",
    "bytes": "Bytes",
    "records": "Records",
}
MAX = 0x7FFF


def default_jar():
    cands = [os.path.join(REPO, ".cache", "kafka", "lib", f"kafka-clients-{KAFKA_VERSION}.jar"),
             os.path.expanduser(f"~/.m2/repository/org/apache/kafka/kafka-clients/{KAFKA_VERSION}/kafka-clients-{KAFKA_VERSION}.jar")]
    for c in cands:
        if os.path.exists(c):
            return c
    return cands[0]


def parse_json_with_comments(text):
    # The specs use // line comments; strings never contain "//" at line start.
    out = []
    for line in text.splitlines():
        s = line.lstrip()
        if s.startswith("//"):
            continue
        out.append(line)
    return json.loads("\n".join(out))


def versions(s):
    """Parse a Kafka version spec ("0+", "3-5", "7", "none") to (lo, hi)."""
    if s is None or s == "none":
        return (1, 0)  # empty
    s = s.strip()
    if s.endswith("+"):
        return (int(s[:-1]), MAX)
    if "-" in s:
        lo, hi = s.split("-")
        return (int(lo), int(hi))
    return (int(s), int(s))


def v_expr(v):
    lo, hi = v
    if lo > hi:
        return "V::NONE"
    return f"V::new({lo}, {'X' if hi == MAX else hi})"


class Gen:
    def __init__(self):
        self.structs = []  # (qualified name, [field dict])  resolved later
        self.struct_fields = []

    def add_struct(self, qname, fields, scope):
        idx = len(self.structs)
        self.structs.append(qname)
        self.struct_fields.append(None)
        scope[qname.split(".")[-1]] = idx
        return idx

    def message(self, spec):
        scope = {}
        # Common structs first, so fields can refer to them by name.
        common = spec.get("commonStructs", [])
        for cs in common:
            self.add_struct(f"{spec['name']}.{cs['name']}", cs["fields"], scope)
        root = self.add_struct(spec["name"], spec["fields"], scope)
        for cs in common:
            idx = scope[cs["name"]]
            self.struct_fields[idx] = self.fields(spec, cs["fields"], scope)
        self.struct_fields[root] = self.fields(spec, spec["fields"], scope)
        return root

    def fields(self, spec, fields, scope):
        out = []
        for fd in fields:
            t = fd["type"]
            array = t.startswith("[]")
            base = t[2:] if array else t
            if base in PRIMS:
                ty = f"T::{PRIMS[base]}"
            else:
                if "fields" in fd:
                    idx = self.add_struct(f"{spec['name']}.{base}", fd["fields"], scope)
                    self.struct_fields[idx] = self.fields(spec, fd["fields"], scope)
                elif base in scope:
                    idx = scope[base]
                else:
                    raise SystemExit(f"{spec['name']}: unknown type {t} for field {fd['name']}")
                ty = f"T::Struct({idx})"
            tag = fd.get("tag")
            out.append({
                "name": fd["name"],
                "ty": ty,
                "array": array,
                "versions": versions(fd.get("versions")),
                "nullable": versions(fd.get("nullableVersions")),
                "tagged": versions(fd.get("taggedVersions")) if tag is not None else (1, 0),
                "tag": tag,
                "flexible": versions(fd["flexibleVersions"]) if "flexibleVersions" in fd else None,
            })
        return out


def load_specs(jar):
    specs = {}
    with zipfile.ZipFile(jar) as z:
        for name in z.namelist():
            m = re.match(r"^common/message/(\w+)\.json$", name)
            if not m:
                continue
            base = m.group(1)
            if base.endswith(("Request", "Response")) or base in ("RequestHeader", "ResponseHeader"):
                specs[base] = parse_json_with_comments(z.read(name).decode("utf-8"))
    return specs


def render(jar):
    specs = load_specs(jar)
    if "RequestHeader" not in specs:
        raise SystemExit(f"{jar}: no common/message/RequestHeader.json inside")
    g = Gen()
    header = g.message(specs["RequestHeader"])
    header_flex = versions(specs["RequestHeader"].get("flexibleVersions"))

    def messages(kind):
        out = []
        for name in sorted(specs, key=lambda n: (specs[n].get("apiKey", -1), n)):
            spec = specs[name]
            if spec.get("type") != kind:
                continue
            valid = versions(spec.get("validVersions"))
            if valid[0] > valid[1]:
                continue  # removed API (validVersions "none")
            root = g.message(spec)
            out.append((spec["apiKey"], spec["name"], valid, versions(spec.get("flexibleVersions")), root))
        return out

    apis = messages("request")
    response_header = g.message(specs["ResponseHeader"])
    response_header_flex = versions(specs["ResponseHeader"].get("flexibleVersions"))
    responses = messages("response")

    lines = []
    w = lines.append
    w("// @generated by crates/protocol/gen/gen_schema.py; do not edit by hand.")
    w(f"// Source: Apache Kafka {KAFKA_VERSION} message specs (common/message/*Request.json,")
    w(f"// *Response.json, RequestHeader.json and ResponseHeader.json inside")
    w(f"// kafka-clients-{KAFKA_VERSION}.jar).")
    w("// Regenerate from the repository root with:")
    w(f"//     python3 crates/protocol/gen/gen_schema.py --jar .cache/kafka/lib/kafka-clients-{KAFKA_VERSION}.jar")
    w("// (tools/kafka/fetch downloads the jar). The test `schema_gen_is_current` fails")
    w("// when this file differs from the generator's output and the jar is present.")
    w("")
    w("use crate::schema::{ApiSchema, Field as F, StructDef, Ty as T, Versions as V, X};")
    w("")
    w(f"/// The Apache Kafka release the table was generated from.")
    w(f'pub(crate) const KAFKA_VERSION: &str = "{KAFKA_VERSION}";')
    w("")
    w("/// Index of the request header in [`STRUCTS`].")
    w(f"pub(crate) const REQUEST_HEADER: u16 = {header};")
    w(f"/// Flexible versions of the request header.")
    w(f"pub(crate) const REQUEST_HEADER_FLEXIBLE: V = {v_expr(header_flex)};")
    w("/// Index of the response header in [`STRUCTS`].")
    w(f"pub(crate) const RESPONSE_HEADER: u16 = {response_header};")
    w(f"/// Flexible versions of the response header.")
    w(f"pub(crate) const RESPONSE_HEADER_FLEXIBLE: V = {v_expr(response_header_flex)};")
    w("")
    w("/// Every struct of every request and response, by index.")
    w("pub(crate) static STRUCTS: &[StructDef] = &[")
    for idx, (qname, fields) in enumerate(zip(g.structs, g.struct_fields)):
        w(f"    // {idx}")
        w(f'    StructDef {{ name: "{qname}", fields: &[')
        for f in fields:
            e = f'F::new("{f["name"]}", {f["ty"]}, {"true" if f["array"] else "false"}, {v_expr(f["versions"])})'
            if f["nullable"][0] <= f["nullable"][1]:
                e += f'.nullable({v_expr(f["nullable"])})'
            if f["tag"] is not None:
                e += f'.tagged({f["tag"]}, {v_expr(f["tagged"])})'
            if f["flexible"] is not None:
                e += f'.flexible({v_expr(f["flexible"])})'
            w(f"        {e},")
        w("    ] },")
    w("];")
    w("")
    w("/// Every request API with its valid and flexible versions, sorted by API key.")
    w("pub(crate) static REQUESTS: &[ApiSchema] = &[")
    for key, name, valid, flex, root in apis:
        w(f'    ApiSchema {{ api_key: {key}, name: "{name}", valid: {v_expr(valid)}, flexible: {v_expr(flex)}, body: {root} }},')
    w("];")
    w("")
    w("/// Every response API with its valid and flexible versions, sorted by API key.")
    w("pub(crate) static RESPONSES: &[ApiSchema] = &[")
    for key, name, valid, flex, root in responses:
        w(f'    ApiSchema {{ api_key: {key}, name: "{name}", valid: {v_expr(valid)}, flexible: {v_expr(flex)}, body: {root} }},')
    w("];")
    w("")
    return "\n".join(lines), g, apis


def analyse(g, apis):
    """Report array element types that can encode to zero bytes (the validator must then
    bound their count by the bytes remaining, exactly as Kafka does)."""
    fixed = {"Bool": 1, "Int8": 1, "Int16": 2, "Uint16": 2, "Int32": 4, "Uint32": 4, "Int64": 8,
             "Float64": 8, "Uuid": 16}

    def min_struct(idx, v, flex):
        total = 1 if flex else 0
        for f in g.struct_fields[idx]:
            lo, hi = f["versions"]
            if not (lo <= v <= hi):
                continue
            tl, th = f["tagged"]
            if tl <= v <= th:
                continue
            total += min_field(f, v, flex)
        return total

    def min_field(f, v, flex):
        if f["array"]:
            return 1 if flex else 4
        ty = f["ty"][3:]
        if ty in fixed:
            return fixed[ty]
        if ty in ("String",):
            return 1 if flex else 2
        if ty in ("Bytes", "Records"):
            return 1 if flex else 4
        idx = int(ty[len("Struct("):-1])
        nl, nh = f["nullable"]
        if nl <= v <= nh:
            return 1
        return min_struct(idx, v, flex)

    zero = []
    for key, name, valid, flexr, root in apis:
        for v in range(valid[0], valid[1] + 1):
            flex = flexr[0] <= v <= flexr[1]
            stack = [root]
            seen = set()
            while stack:
                s = stack.pop()
                if s in seen:
                    continue
                seen.add(s)
                for f in g.struct_fields[s]:
                    lo, hi = f["versions"]
                    if not (lo <= v <= hi) or not f["ty"].startswith("T::Struct("):
                        continue
                    idx = int(f["ty"][len("T::Struct("):-1])
                    stack.append(idx)
                    if f["array"] and min_struct(idx, v, flex) == 0:
                        zero.append((name, v, f["name"]))
    return zero


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jar", default=default_jar())
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--out", default=OUT)
    a = ap.parse_args()
    if not os.path.exists(a.jar):
        print(f"jar not found: {a.jar} (run tools/kafka/fetch)", file=sys.stderr)
        sys.exit(2)
    text, g, apis = render(a.jar)
    zero = analyse(g, apis)
    for z in zero:
        print(f"note: {z[0]} v{z[1]} array {z[2]} has elements that can encode to zero bytes", file=sys.stderr)
    if a.check:
        cur = open(a.out).read() if os.path.exists(a.out) else ""
        if cur != text:
            print(f"{a.out} is stale; regenerate with gen_schema.py", file=sys.stderr)
            sys.exit(1)
        print(f"{a.out} is current ({len(apis)} request APIs, {len(g.structs)} structs)")
        return
    with open(a.out, "w") as f:
        f.write(text)
    print(f"wrote {a.out}: {len(apis)} request APIs, {len(g.structs)} structs; "
          f"{len(zero)} zero-size array element cases", file=sys.stderr)


if __name__ == "__main__":
    main()
