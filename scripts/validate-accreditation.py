#!/usr/bin/env python3
"""Validates an airlock accreditation package with independent validators.

    validate-accreditation.py DIR
        every document of the package in DIR: oscal/*.json, sbom/*.cdx.json, sbom/*.spdx.json
    validate-accreditation.py [--oscal FILE]... [--cyclonedx FILE]... [--spdx FILE]...
        the files given

Validators (installed by scripts/install-deps.sh into .tools/venv; run this with that venv's
python): `trestle validate` (compliance-trestle) for OSCAL, in a throw-away trestle
workspace; cyclonedx-python-lib's JsonStrictValidator for CycloneDX 1.6; `pyspdxtools -i`
(spdx-tools) for SPDX 2.3.

`trestle validate` resolves an SSP's imported profile or catalog. This script runs offline:
before validating, it points the workspace copy's `import-profile` href at a local copy of
the same NIST file (`--nist DIR`, by file name; default ../shared/reference/nist beside the
repository). Nothing else in the document is touched; an href with no local copy is an error.

Prints one line per file, `ok KIND FILE` or `invalid KIND FILE: REASON`. Exit status: 0 when
every file is valid, 1 when one is not, 2 when a validator is missing or the call is wrong
(a missing validator is never a skip).
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

# Where `trestle init` expects each OSCAL model, by its root key.
OSCAL_FOLDERS = {
    "component-definition": "component-definitions",
    "system-security-plan": "system-security-plans",
    "catalog": "catalogs",
    "profile": "profiles",
}


def fail(message):
    """A validator that cannot run: exit 2, never a pass."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def tool(name):
    """A console script installed beside this interpreter (the venv's bin)."""
    path = pathlib.Path(sys.executable).parent / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            fail(f"`{name}` is not installed beside {sys.executable}; run scripts/install-deps.sh test")
        return found
    return str(path)


def last_lines(text, n=6):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def localize_import(target, workspace, nist):
    """Points an SSP copy's import-profile at the local copy of the NIST file it names."""
    try:
        doc = json.loads(target.read_text())
        href = doc["system-security-plan"]["import-profile"]["href"]
    except (ValueError, KeyError, TypeError):
        return  # the schema validation reports what is missing
    name = href.rsplit("/", 1)[-1]
    local = pathlib.Path(nist, name)
    if not local.is_file():
        fail(f"the SSP imports {href}, which has no local copy {local} (pass --nist DIR)")
    pathlib.Path(workspace, "nist").mkdir(exist_ok=True)
    shutil.copyfile(local, pathlib.Path(workspace, "nist", name))
    doc["system-security-plan"]["import-profile"]["href"] = f"trestle://nist/{name}"
    target.write_text(json.dumps(doc, indent=2))


def validate_oscal(files, report, nist):
    trestle = tool("trestle")
    with tempfile.TemporaryDirectory(prefix="trestle-") as workspace:
        init = subprocess.run([trestle, "init"], cwd=workspace, capture_output=True, text=True)
        if init.returncode != 0:
            fail(f"`trestle init` failed: {init.stdout}{init.stderr}")
        for i, file in enumerate(files):
            try:
                root = next(iter(json.loads(pathlib.Path(file).read_text())))
            except (OSError, ValueError, StopIteration) as e:
                report("oscal", file, f"not a JSON document: {e}")
                continue
            folder = OSCAL_FOLDERS.get(root)
            if folder is None:
                report("oscal", file, f"unknown OSCAL model `{root}`")
                continue
            target = pathlib.Path(workspace, folder, f"model{i}", f"{root}.json")
            target.parent.mkdir(parents=True)
            shutil.copyfile(file, target)
            if root == "system-security-plan":
                localize_import(target, workspace, nist)
            run = subprocess.run(
                [trestle, "validate", "-f", str(target.relative_to(workspace))],
                cwd=workspace,
                capture_output=True,
                text=True,
            )
            output = run.stdout + run.stderr
            if run.returncode == 0 and "VALID" in output and "NOT VALID" not in output:
                report("oscal", file, None)
            else:
                report("oscal", file, f"trestle validate exited {run.returncode}: {last_lines(output)}")


def validate_cyclonedx(files, report):
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as e:
        fail(f"cyclonedx-python-lib with json-validation is not installed ({e}); run scripts/install-deps.sh test")
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    for file in files:
        try:
            error = validator.validate_str(pathlib.Path(file).read_text())
        except Exception as e:  # a validator that cannot run is a failure, not a pass
            report("cyclonedx", file, f"validator error: {e}")
            continue
        report("cyclonedx", file, None if error is None else str(error).splitlines()[0])


def validate_spdx(files, report):
    pyspdxtools = tool("pyspdxtools")
    for file in files:
        run = subprocess.run([pyspdxtools, "-i", file, "--version", "SPDX-2.3"], capture_output=True, text=True)
        if run.returncode == 0:
            report("spdx", file, None)
        else:
            report("spdx", file, f"pyspdxtools exited {run.returncode}: {last_lines(run.stdout + run.stderr)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", nargs="?", help="an accreditation package folder")
    parser.add_argument("--oscal", action="append", default=[], metavar="FILE")
    parser.add_argument("--cyclonedx", action="append", default=[], metavar="FILE")
    parser.add_argument("--spdx", action="append", default=[], metavar="FILE")
    default_nist = pathlib.Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "nist"
    parser.add_argument("--nist", default=str(default_nist), metavar="DIR", help="local copies of NIST OSCAL content")
    args = parser.parse_args()
    oscal, cyclonedx, spdx = list(args.oscal), list(args.cyclonedx), list(args.spdx)
    if args.package:
        root = pathlib.Path(args.package)
        oscal += sorted(str(p) for p in root.glob("oscal/*.json"))
        cyclonedx += sorted(str(p) for p in root.glob("sbom/*.cdx.json"))
        spdx += sorted(str(p) for p in root.glob("sbom/*.spdx.json"))
        if not oscal:
            fail(f"{root} holds no oscal/*.json: not an accreditation package")
    if not (oscal or cyclonedx or spdx):
        parser.print_usage(sys.stderr)
        sys.exit(2)

    failures = []

    def report(kind, file, problem):
        if problem is None:
            print(f"ok {kind} {file}", flush=True)
        else:
            failures.append(file)
            print(f"invalid {kind} {file}: {problem}", flush=True)

    if oscal:
        validate_oscal(oscal, report, args.nist)
    if cyclonedx:
        validate_cyclonedx(cyclonedx, report)
    if spdx:
        validate_spdx(spdx, report)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
