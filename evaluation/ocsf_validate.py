#!/usr/bin/env python3
"""Validate an OCSF JSON-lines file (casa's `--ocsf-log`) against the official OCSF schema.

Each line must be a JSON object whose `class_uid` names an OCSF class; it is validated against
that class's JSON Schema (draft 2020-12), with the profiles its `metadata.profiles` names,
generated from the OCSF 1.8.0 schema export that the
`ocsf-json-schema` package ships (required attributes, types, enum values, no undefined
attributes, objects embedded). `metadata.version` must be the version validated against.

casa also writes a few OCSF 1.9.0-dev attributes that 1.8.0 does not define (README, "OCSF
output"): `ai_agent` at the top level and in each `evidences` item. They are checked here
against the 1.9.0-dev `ai_agent` object (`uid` required; `uid`, `name`, `instance_uid`
strings; nothing else), then removed before the 1.8.0 validation.

Usage: ocsf_validate.py FILE [--version 1.8.0] [--summary]
Exit 0: every line is valid (a count per class on stdout); 1: a line is not, with its line
number and the JSON path of the field (`FILE:LINE: path: problem`); 2: the file or the schema
package cannot be read.

Setup: ./setup.sh installs the pinned packages into a virtual environment
($CASA_TOOLCHAIN_DIR or ~/.cache/casa-toolchain)/ocsf-venv; run this script with its python.
"""

import argparse
import collections
import json
import sys

DEV_AI_AGENT_KEYS = {"uid": str, "name": str, "instance_uid": str}


def fail_dev(path, problem):
    return [(path, problem)]


def check_ai_agent(value, path):
    """The 1.9.0-dev `ai_agent` object, as casa writes it."""
    if not isinstance(value, dict):
        return fail_dev(path, "ai_agent must be an object")
    problems = []
    if "uid" not in value:
        problems.append((path + ".uid", "required attribute missing (OCSF 1.9.0-dev ai_agent)"))
    for key, val in value.items():
        kind = DEV_AI_AGENT_KEYS.get(key)
        if kind is None:
            problems.append((f"{path}.{key}", "not an attribute casa writes in ai_agent"))
        elif not isinstance(val, kind):
            problems.append((f"{path}.{key}", f"must be a {kind.__name__}"))
    return problems


def strip_dev_fields(event):
    """Check and remove the 1.9.0-dev attributes; returns the problems found."""
    problems = []
    if "ai_agent" in event:
        problems += check_ai_agent(event.pop("ai_agent"), "ai_agent")
    for i, ev in enumerate(event.get("evidences") or []):
        if isinstance(ev, dict) and "ai_agent" in ev:
            problems += check_ai_agent(ev.pop("ai_agent"), f"evidences[{i}].ai_agent")
    return problems


def json_path(error):
    parts = []
    for p in error.absolute_path:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "<event>"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--version", default="1.8.0")
    args = ap.parse_args()
    try:
        import jsonschema
        from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema
    except ImportError as e:
        print(f"ocsf_validate: {e}: run ./setup.sh (installs ocsf-json-schema and jsonschema)", file=sys.stderr)
        return 2
    try:
        schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=args.version))
    except Exception as e:  # the package raises plain exceptions for unknown versions
        print(f"ocsf_validate: OCSF schema {args.version}: {e}", file=sys.stderr)
        return 2
    validators = {}
    counts = collections.Counter()
    errors = 0
    try:
        lines = open(args.file, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"ocsf_validate: {e}", file=sys.stderr)
        return 2

    def report(lineno, path, problem):
        nonlocal errors
        errors += 1
        if errors <= 50:
            print(f"{args.file}:{lineno}: {path}: {problem}")

    for lineno, line in enumerate(lines, 1):
        try:
            event = json.loads(line)
        except ValueError as e:
            report(lineno, "<line>", f"not JSON: {e}")
            continue
        if not isinstance(event, dict):
            report(lineno, "<line>", "not a JSON object")
            continue
        uid = event.get("class_uid")
        try:
            name = schema.lookup_class_name_from_uid(class_uid=uid)
        except Exception:
            report(lineno, "class_uid", f"{uid!r} is not an OCSF {args.version} class")
            continue
        version = (event.get("metadata") or {}).get("version")
        if version != args.version:
            report(lineno, "metadata.version", f"{version!r}, validating against {args.version}")
        for path, problem in strip_dev_fields(event):
            report(lineno, path, problem)
        profiles = (event.get("metadata") or {}).get("profiles") or []
        if not (isinstance(profiles, list) and all(isinstance(p, str) for p in profiles)):
            report(lineno, "metadata.profiles", "must be a list of profile names")
            continue
        key = (name, tuple(sorted(profiles)))
        if key not in validators:
            try:
                js = schema.get_class_schema(class_name=name, profiles=list(key[1]))
            except Exception as e:
                report(lineno, "metadata.profiles", f"{profiles}: {e}")
                continue
            cls = jsonschema.validators.validator_for(js)
            cls.check_schema(js)
            validators[key] = cls(js, format_checker=cls.FORMAT_CHECKER)
        found = sorted(validators[key].iter_errors(event), key=lambda e: list(e.absolute_path))
        for err in found:
            report(lineno, json_path(err), err.message[:300])
        if not found:
            counts[f"{uid} {name}"] += 1
    if errors:
        print(f"ocsf_validate: {errors} problems in {args.file}", file=sys.stderr)
        return 1
    if not lines:
        print(f"ocsf_validate: {args.file} is empty", file=sys.stderr)
        return 1
    for cls_name, n in sorted(counts.items()):
        print(f"{cls_name}: {n}")
    print(f"ocsf_validate: {len(lines)} events valid against OCSF {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
