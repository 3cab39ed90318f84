"""The README and docs/*.md against the package: every code reference they make must exist, so drift fails CI.

Checked: `oe_text.x.y` names (imported and resolved), the names that Python code blocks import from `oe_text`, file
paths of the repository, and the flags of `oe-text` commands (and of the text recipes, which share the parser).
"""

import ast
import importlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
DOTTED = re.compile(r"(?<![\w/.-])oe_text(?:\.[A-Za-z_]\w*)+")
PATH = re.compile(r"(?<![\w/.~-])(?:oe_text|recipes|benchmarks|examples|docs|tests|notebooks)/[\w/.-]*[\w/]")
# recipes/lm_oe.py has its own parser (LMRecipeArguments); `oe-text train --task lm` uses it too.
CLI = re.compile(
    r"(?:\boe-text\s+(train|evaluate|detect|score)|recipes/(?:sst2|trec|newsgroups)_oe\.py|(recipes/lm_oe\.py))\b"
)


def _doc_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def _code_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(text)]


def _resolve(dotted: str):
    """The object `dotted` names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)  # AttributeError: the name drifted
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_dotted_names_exist(doc):
    missing = []
    for name in sorted(set(DOTTED.findall(doc.read_text(encoding="utf-8")))):
        try:
            _resolve(name)
        except (ImportError, AttributeError) as err:
            missing.append(f"{name} ({type(err).__name__}: {err})")
    assert not missing, f"{_doc_id(doc)} names what the package does not have: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_python_blocks_import_existing_names(doc):
    missing, checked = [], 0
    for lang, code in _code_blocks(doc.read_text(encoding="utf-8")):
        if lang != "python":
            continue
        tree = ast.parse(code)  # a code block that is not valid Python is drift too
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "oe_text":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    checked += 1
                    if not hasattr(module, alias.name):
                        missing.append(f"from {node.module} import {alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "oe_text":
                        checked += 1
                        importlib.import_module(alias.name)
    assert not missing, f"{_doc_id(doc)} imports names that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_repository_paths_exist(doc):
    text = doc.read_text(encoding="utf-8")
    tracked = set(subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split())
    missing = []
    for path in sorted(set(PATH.findall(text))):
        if "*" in path or "<" in path or path.startswith("outputs/"):
            continue
        # Written outputs (`outputs/...`) and gitignored files are not references to the repository.
        if not (REPO / path).exists() and not any(t.startswith(path) for t in tracked):
            missing.append(path)
    assert not missing, f"{_doc_id(doc)} refers to files that do not exist: {missing}"


def _known_flags() -> dict[str, set[str]]:
    from transformers import HfArgumentParser

    from oe_text import OETrainingArguments, RecipeArguments
    from oe_text.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    flags = {name: {s for a in sub._actions for s in a.option_strings} for name, sub in commands.items()}
    from oe_text.lm_recipe import LMRecipeArguments

    recipe = HfArgumentParser((RecipeArguments, OETrainingArguments))
    flags["train"] = {s for a in recipe._actions for s in a.option_strings}
    flags["recipe"] = flags["train"]
    lm_recipe = HfArgumentParser((LMRecipeArguments, OETrainingArguments))
    flags["train-lm"] = {s for a in lm_recipe._actions for s in a.option_strings} | {"--task"}
    flags["train"] |= {"--task"}
    return flags


def _commands(text: str) -> list[str]:
    """Each command line of the shell blocks (continuations joined) and each inline code span naming a command."""
    lines = []
    for lang, code in _code_blocks(text):
        if lang in ("bash", "sh", "shell", "console", ""):
            lines += code.replace("\\\n", " ").splitlines()
    lines += re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
    return [line for line in lines if CLI.search(line)]


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_cli_flags_exist(doc):
    known, unknown = _known_flags(), []
    for line in _commands(doc.read_text(encoding="utf-8")):
        match = CLI.search(line)
        command = match.group(1) or ("train-lm" if match.group(2) else "recipe")
        if command == "train" and re.search(r"--task[ =]lm\b", line):
            command = "train-lm"
        rest = line[match.end() :].split("#")[0].split("|")[0]
        try:
            words = shlex.split(rest)
        except ValueError:
            words = rest.split()
        for word in words:
            flag = word.split("=")[0]
            if re.fullmatch(r"--[a-z][\w-]*", flag) and flag not in known[command]:
                unknown.append(f"{flag} in `{line.strip()}`")
    assert not unknown, f"{_doc_id(doc)} uses flags the commands do not have: {unknown}"


def test_no_absolute_paths_of_a_machine_in_tracked_files():
    # Docs, examples and results refer to the mirror as ../shared/mirror or $OE_TEXT_MIRROR, never one machine's path.
    pattern = re.compile("(?<![\\w.~])/" + "(?:work|root|Users)/")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    found = []
    for name in tracked:
        path = REPO / name
        if (
            path.suffix not in {".py", ".md", ".ipynb", ".cfg", ".toml", ".txt", ".yaml", ".yml", ""}
            or not path.is_file()
        ):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
            if pattern.search(line):
                found.append(f"{name}:{number}")
    assert not found, f"absolute machine paths in tracked files: {found}"
