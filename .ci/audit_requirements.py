"""Known-vulnerability audit of what requirements.txt installs (the pins AND their dependencies).

    python .ci/audit_requirements.py [requirements.txt]

1. Pins every distribution that requirements.txt pulls in, at the version installed here (the
   file itself has ranges such as ``pillow>=11``; what is audited is what is actually running).
2. Runs ``pip-audit --no-deps --disable-pip`` on that list (PyPI's advisory data, or OSV).
3. Where pip-audit could not look a release up (some networks reach PyPI's project pages but not
   its per-release JSON), falls back to PyPI's project JSON, whose ``vulnerabilities`` list is
   authoritative for the LATEST release: used when the installed version is that release.

Exit status 1 when any known vulnerability is found; 0 otherwise, with every package that could
not be audited listed (a network question, not a finding).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import urllib.request
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

TIMEOUT_S = 30


def requirement_names(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            names.append(Requirement(line).name)
        except InvalidRequirement:
            print(f"skipping unparsable requirement: {line}")
    return names


def installed_closure(names: list[str]) -> dict[str, str]:
    """{canonical name: installed version} of ``names`` and everything they require (markers applied)."""
    found: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            print(f"not installed, not audited: {name}")
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return found


def pip_audit(pins: dict[str, str]) -> tuple[dict[str, list[str]], set[str]]:
    """({name: [vulnerability ids]}, names pip-audit could not audit)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pinned:
        pinned.write("".join(f"{name}=={version}\n" for name, version in sorted(pins.items())))
    command = [sys.executable, "-m", "pip_audit", "--no-deps", "--disable-pip", "--progress-spinner", "off",
               "--format", "json", "-r", pinned.name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    Path(pinned.name).unlink()
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        print(f"pip-audit gave no report (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return {}, set(pins)
    found, skipped = {}, set()
    for dependency in report.get("dependencies", []):
        name = canonicalize_name(dependency["name"])
        if dependency.get("skip_reason"):
            skipped.add(name)
        elif dependency.get("vulns"):
            found[name] = [v["id"] for v in dependency["vulns"]]
    return found, skipped


def project_json_audit(name: str, version: str) -> list[str] | None:
    """Vulnerability ids from PyPI's project JSON when ``version`` is the latest release, else None."""
    try:
        with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json", timeout=TIMEOUT_S) as response:
            project = json.load(response)
    except Exception as error:  # noqa: BLE001 - any network failure means "not audited"
        print(f"  {name}: PyPI unreachable ({type(error).__name__})")
        return None
    if project.get("info", {}).get("version") != version:
        return None
    return [v.get("id", "?") for v in project.get("vulnerabilities", [])]


def main(argv: list[str]) -> int:
    requirements = Path(argv[0] if argv else Path(__file__).resolve().parent.parent / "requirements.txt")
    pins = installed_closure(requirement_names(requirements))
    print(f"auditing {len(pins)} installed distributions required by {requirements.name}")
    found, unaudited = pip_audit(pins)
    print(f"pip-audit: {len(pins) - len(unaudited)} audited, {len(unaudited)} not reachable through it")
    still_unaudited = []
    for name in sorted(unaudited):
        ids = project_json_audit(name, pins[name])
        if ids is None:
            still_unaudited.append(f"{name}=={pins[name]}")
        elif ids:
            found[name] = ids
    audited = len(pins) - len(still_unaudited)
    for name, ids in sorted(found.items()):
        print(f"VULNERABLE {name}=={pins[name]}: {', '.join(ids)}")
    if still_unaudited:
        print(f"not audited (not the latest release, and per-release advisories are unreachable from here): "
              f"{', '.join(still_unaudited)}")
    gradio = f"gradio=={pins.get('gradio', '?')}"
    print(f"{audited} of {len(pins)} audited; {len(found)} with known vulnerabilities; "
          f"{gradio} {'NOT ' if gradio in still_unaudited else ''}audited")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
