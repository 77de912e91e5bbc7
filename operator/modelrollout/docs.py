"""README sections generated from their sources, so the two never disagree.

- `reference`: the ModelDeployment fields, from the CRD;
- `stages`: the stage table and state diagram, from the core's transition table;
- `gates`: where each automation level waits for a person, from the core's gate table.

python -m modelrollout.docs          # print every section
python -m modelrollout.docs --write  # replace each in README.md between its markers
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from modelrollout.core import hooks
from modelrollout.core.rollout import gates, transitions

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- reference:start -->", "<!-- reference:end -->"


def markers(section: str) -> tuple[str, str]:
    return f"<!-- {section}:start -->", f"<!-- {section}:end -->"


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


def stages() -> str:
    return f"{transitions.markdown_table()}\n\n```mermaid\n{transitions.mermaid()}\n```"


SECTIONS: dict[str, Callable[[], str]] = {
    "reference": reference,
    "stages": stages,
    "gates": gates.markdown_table,
    "hooks": hooks.markdown_table,
}


def shown_in(readme: str, section: str) -> str:
    start, end = markers(section)
    if start not in readme or end not in readme:
        raise ValueError(f"README.md has no {start} ... {end} markers")
    return readme.split(start, 1)[1].split(end, 1)[0].strip()


def replace_in(readme: str, section: str, text: str) -> str:
    start, end = markers(section)
    before, _, rest = readme.partition(start)
    _, _, after = rest.partition(end)
    return f"{before}{start}\n{text}\n{end}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="README sections generated from the CRD and the core's tables")
    parser.add_argument("--write", action="store_true", help="update README.md in place")
    args = parser.parse_args(argv)
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    for section, generate in SECTIONS.items():
        if args.write:
            readme = replace_in(readme, section, generate())
        else:
            print(f"{section}:\n{generate()}\n")
    if args.write:
        readme_path.write_text(readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
