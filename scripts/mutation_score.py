"""``make mutate``: mutation testing of the modules where a silent bug hurts users most, scored per module.

mutmut (pinned in the ``mutation`` extra) makes one-line bugs in the files of ``[tool.mutmut] only_mutate``
(pyproject.toml), runs the tests that reach each one, and this prints, per module, how many of them the
tests caught (killed or timed out), then every survivor with the command that shows its diff, and the
time the run took. It exits 1 when a module scores under ``--goal`` (90 %). Not part of ``make test``.

Each ``only_mutate`` entry is a group, scored on its own line; ``--modules`` runs only the groups it names
(``make mutate MODULES="appliance/hub.py appliance/api/*"``). mutmut first runs the test selection once
to learn which tests call which function (cached in mutants/), then, for each mutant, only the tests that
called the mutated function: a group's tests are the selected tests that reach it, which is why the
selection holds fast tests only. After adding tests, ``--survivors`` runs again only what the last run did
not catch. Where only part of a file is in scope, ``FUNCTIONS`` narrows it. mutmut 3 leaves decorated
functions alone (aiohttp middlewares, the API's route handlers, properties): tests over HTTP pin those.
"""

from __future__ import annotations

import argparse
import fnmatch
import re
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = Path(sys.executable).with_name("mutmut")
# Parts of a module in scope. History: only retention; the recorder around it has its own, slower,
# integration tests. WebSocket: the filtering, rate limiting and delivery a subscriber sees (its unit
# tests); the handshake, auth and message loop are tested end to end by
# tests/integration/test_websocket.py, too slow to run for each of their ~450 mutants.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "appliance/integrations/websocket.py": (
        "filtered_text",
        "_person_passes",
        "data_kind",
        "envelope",
        "take",
        "_subscribe",
        "_deliver",
        "_id",
    ),
    "appliance/store/history.py": (
        "apply_retention",
        "_delete_before",
        "_delete_chunk",
        "_oldest_slice_end",
        "_give_back_free_pages",
        "_used_bytes",
        "used_bytes",
    ),
}
CAUGHT = frozenset({"killed", "timeout", "caught by type check"})
# "appliance.hub.xǁHubǁpublish__mutmut_3" or "appliance.csi.formats.esp_udp.x_parse_adr018__mutmut_1"
_NAME = re.compile(r"^(?P<module>[\w.]+)\.x(?:ǁ\w+ǁ|_)(?P<function>\w+?)__mutmut_\d+$")


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    path: str
    function: str
    status: str


def groups() -> list[str]:
    """The ``only_mutate`` entries of pyproject.toml: one score line each."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def chosen(patterns: list[str], wanted: list[str]) -> list[str]:
    """The groups ``wanted`` names: an entry itself, a glob matching it, or a file in it (all groups when
    none). Files count because make's shell expands ``MODULES="appliance/csi/formats/*.py"`` to them."""
    if not wanted:
        return patterns
    picked = [
        p for p in patterns if any(p == w or fnmatch.fnmatch(p, w) or fnmatch.fnmatch(w, p) for w in wanted)
    ]
    if not picked:
        raise SystemExit(f"--modules {' '.join(wanted)} names no group; groups: {', '.join(patterns)}")
    return picked


# Functions that run only while their module is imported, before mutmut switches a mutant on: mutmut
# cannot test them, so they are not scored. test_contracts' schema files check the models _data_message
# builds; the layout tests of test_formats_esp_csv check every index table _span builds.
IMPORT_TIME: dict[str, tuple[str, ...]] = {
    "appliance/integrations/websocket.py": ("_data_message",),
    "appliance/csi/formats/espressif.py": ("_span",),
}


def in_scope(path: str, function: str) -> bool:
    if function in IMPORT_TIME.get(path, ()):
        return False
    return path not in FUNCTIONS or function in FUNCTIONS[path]


def name_globs(patterns: list[str]) -> list[str]:
    """mutmut mutant-name globs for what is in scope (whole modules, or FUNCTIONS of a module)."""
    globs = []
    for pattern in patterns:
        module = pattern.removesuffix(".py").replace("/", ".")
        functions = FUNCTIONS.get(pattern)
        if functions is None:
            globs.append(f"{module}.*")
        else:
            globs += [f"{module}.x*{function}__mutmut_*" for function in functions]
    return globs


def results() -> list[Mutant]:
    listing = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    mutants = []
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        match = _NAME.match(name)
        if match is None:
            continue
        path = match["module"].replace(".", "/") + ".py"
        if in_scope(path, match["function"]):
            mutants.append(Mutant(name, path, match["function"], status))
    return mutants


def report(mutants: list[Mutant], patterns: list[str], goal: float) -> bool:
    """Print the score per group and the survivors; whether every group reaches ``goal``."""
    ok = True
    print(f"{'module':44} {'mutants':>8} {'caught':>7} {'score':>7}")
    for pattern in patterns:
        mine = [m for m in mutants if fnmatch.fnmatch(m.path, pattern)]
        caught = sum(m.status in CAUGHT for m in mine)
        score = caught / len(mine) if mine else 0.0
        ok &= score >= goal
        label = pattern + (" (part)" if pattern in FUNCTIONS else "")
        print(f"{label:44} {len(mine):8d} {caught:7d} {score:7.1%}{'' if score >= goal else '  < goal'}")
    survivors = [m for m in mutants if m.status not in CAUGHT]
    print(f"\n{len(survivors)} not caught ({dict(Counter(m.status for m in survivors))}); see each with:")
    for mutant in survivors:
        print(f"  {mutant.status:10} mutmut show {mutant.name}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goal", type=float, default=0.90, help="lowest score per module (%(default)s)")
    parser.add_argument("--report-only", action="store_true", help="score the last run without running")
    parser.add_argument(
        "--survivors",
        action="store_true",
        help="run again only what the last run did not catch (after new tests)",
    )
    parser.add_argument(
        "--modules",
        nargs="*",
        default=[],
        metavar="GROUP",
        help="only these only_mutate entries, or globs of them (all by default)",
    )
    parser.add_argument("--max-children", type=int, default=1, help="parallel test processes (%(default)s)")
    args = parser.parse_args()
    patterns = chosen(groups(), args.modules)
    started = time.monotonic()
    if not args.report_only:
        if args.survivors:
            names = [
                m.name
                for m in results()
                if m.status not in CAUGHT and any(fnmatch.fnmatch(m.path, p) for p in patterns)
            ]
        else:
            names = name_globs(patterns)
        if names:
            command = [str(MUTMUT), "run", "--max-children", str(args.max_children), *names]
            subprocess.run(command, cwd=ROOT, check=True)
    mutants = [m for m in results() if any(fnmatch.fnmatch(m.path, p) for p in patterns)]
    ok = report(mutants, patterns, args.goal)
    if not args.report_only:
        print(f"\nmutmut ran for {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
