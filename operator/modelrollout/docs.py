"""The ModelDeployment reference in README.md, generated from the CRD so the two never disagree.

python -m modelrollout.docs          # print the reference table
python -m modelrollout.docs --write  # replace it in README.md between the markers
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- reference:start -->", "<!-- reference:end -->"


def _type(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = schema.get("type", "object")
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if "enum" in schema:
        return " \\| ".join(str(value) for value in schema["enum"])
    return kind


def _rows(schema: dict[str, Any], path: str, depth: int) -> list[str]:
    rows = []
    for name, child in (schema.get("properties") or {}).items():
        field = f"{path}.{name}"
        description = " ".join(str(child.get("description", "")).split()).replace("|", "\\|")
        default = child.get("default")
        shown_default = "" if default is None else f"`{json.dumps(default)}`"
        rows.append(f"| `{field}` | {_type(child)} | {shown_default} | {description} |")
        nested = child.get("items", {}) if child.get("type") == "array" else child
        if depth > 1 and (nested.get("properties")) and name != "template":
            rows += _rows(nested, field + ("[]" if child.get("type") == "array" else ""), depth - 1)
    return rows


def reference(crd_path: Path = REPO / "crds" / "modeldeployment.yaml") -> str:
    crd = yaml.safe_load(crd_path.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    lines = ["| field | type | default | description |", "|---|---|---|---|", *_rows(spec, "spec", depth=6)]
    return "\n".join(lines)


def replace_in(readme: str, table: str) -> str:
    before, _, rest = readme.partition(START)
    _, _, after = rest.partition(END)
    return f"{before}{START}\n{table}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ModelDeployment reference from the CRD")
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    table = reference()
    if args.write:
        readme = REPO / "README.md"
        readme.write_text(replace_in(readme.read_text(), table))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
