"""README.md tells the truth: the preview port, the commands it names, and the committed
demo lock (a fresh clone with the cache present rebuilds nothing)."""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from storybuild.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LOCAL_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)")


def _section(title: str) -> str:
    """The README's `## title` section, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def _table_rows() -> list[tuple[str, str]]:
    """(command cell, description cell) of each row of the Commands table."""
    rows = []
    for line in _section("Commands").splitlines():
        if not line.startswith("|") or set(line) <= set("|- "):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[0] != "command":  # the header
            rows.append((cells[0], cells[1]))
    assert rows, "README.md's Commands table has no rows"
    return rows


def _spans(text: str) -> list[str]:
    return [s.replace("\\|", "|") for s in re.findall(r"`([^`]+)`", text)]


def _command_words(command: str) -> list[str]:
    """`storybuild graph --format dot` → ["graph"]: the words that name the (sub)command."""
    words = command.split()
    assert words[0] == "storybuild", f"`{command}` is not a full storybuild command"
    named = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break  # an argument (DIR, [PATH], TARGET…) or an option
        named.append(word)
    return named


def _quick_start_commands() -> list[str]:
    """The `storybuild …` commands run by the Quick start's shell blocks."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", _section("Quick start"), re.S):
        for segment in re.split(r"&&|;|\n", block):
            segment = segment.strip()
            if segment.startswith("storybuild "):
                commands.append(segment)
    return commands


def _resolve(words: list[str]) -> click.Command:
    """The click command `storybuild <words>` runs (fails if any word names none)."""
    command: click.Command = main
    for i, word in enumerate(words):
        assert isinstance(command, click.Group), f"storybuild {' '.join(words[:i])} has no subcommands"
        sub = command.get_command(click.Context(command), word)
        assert sub is not None, f"storybuild {' '.join(words[:i + 1])}: no such command"
        command = sub
    return command


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


# ------------------------------------------------------------------ the preview port


def test_readme_preview_port_is_the_watch_default():
    from storybuild.preview.server import DEFAULT_PORT, PreviewServer

    watch_port = next(p for p in main.commands["watch"].params if p.name == "port")
    assert watch_port.default == DEFAULT_PORT, "storybuild watch --port and the preview server disagree"
    assert inspect.signature(PreviewServer).parameters["port"].default == DEFAULT_PORT
    ports = {int(p) for p in LOCAL_URL.findall(README)}
    assert ports == {DEFAULT_PORT}, f"README.md names preview port(s) {sorted(ports)}, the default is {DEFAULT_PORT}"
    named = {int(p) for p in LOCAL_URL.findall((ROOT / "docs" / "watch.md").read_text(encoding="utf-8"))}
    assert named == {DEFAULT_PORT}, f"docs/watch.md names preview port(s) {sorted(named)}, not {DEFAULT_PORT}"


# ------------------------------------------------------------------ the commands


def _readme_commands() -> list[tuple[str, str]]:
    """(command, description) for every command the table and the Quick start name."""
    named = []
    for cell, description in _table_rows():
        named += [(span, description) for span in _spans(cell)]
    named += [(command, "") for command in _quick_start_commands()]
    return named


def test_readme_names_the_commands_it_should():
    commands = [c for c, _ in _readme_commands()]
    # No shorthand such as "`storybuild gc` / `clean`": a reader takes it for `storybuild gc clean`.
    shorthand = [c for c in commands if not c.startswith("storybuild ")]
    assert not shorthand, f"README.md's command table names {shorthand}: write each command in full"
    assert "storybuild build" in commands  # the Quick start
    assert {"storybuild backends models", "storybuild stats", "storybuild watch [--preview]"} <= set(commands)


@pytest.mark.parametrize("command,description", _readme_commands(),
                         ids=[c for c, _ in _readme_commands()])
def test_readme_command_exists(command, description):
    words = _command_words(command)
    resolved = _resolve(words)
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, f"`storybuild {' '.join(words)} --help` exited {result.exit_code}:\n{result.output}"
    # The options the README gives it, in the command itself or in its description.
    options = _options(resolved)
    for span in [command, *_spans(description)]:
        for option in re.findall(r"(?:^|[\s\[])(--?[a-z][a-z-]*)", span):
            assert option in options, f"README.md: `storybuild {' '.join(words)}` has no option {option}"


def test_readme_inline_commands_exist():
    # `storybuild schema` and the like, named in the prose.
    prose = re.sub(r"^```.*?^```", "", README, flags=re.M | re.S)
    inline = [s for s in _spans(prose) if s.startswith("storybuild ")]
    assert inline
    for span in inline:
        _resolve(_command_words(span))


# ------------------------------------------------------------------ the committed demo lock


def _demo_copy(dest: Path) -> Path:
    """The repo-root demo project as a fresh clone has it: manifest, lock, assets, templates."""
    dest.mkdir()
    for name in ("storybuild.yaml", "storybuild.lock"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("assets", "templates"):  # templates/ is a symlink in the repo: copy what it holds
        shutil.copytree(ROOT / name, dest / name, symlinks=False)
    return dest


def test_committed_lock_matches_the_demo_plan(tmp_path):
    """Every key the planner computes for a fresh copy of the demo equals storybuild.lock's.

    Upstream outputs are taken from the lock (as a build does when the cache holds them),
    so each action's key is checked on its own; then plan() itself must find nothing to run.
    """
    from storybuild.engine.session import Session
    from storybuild.hashing import FileHasher, action_key
    from storybuild.model import FileInput
    from storybuild.planning.decision import input_digests, plan
    from storybuild.store import lockfile

    assert (ROOT / lockfile.LOCK_NAME).is_file(), "storybuild.lock is not in the repository root"
    root = _demo_copy(tmp_path / "demo")
    lock = lockfile.loads((root / lockfile.LOCK_NAME).read_text(encoding="utf-8"))
    cplan = Session(root).load_plan("full")
    order, statics = cplan.order, cplan.statics
    assert sorted(lock) == sorted(a.id for a in order), "storybuild.lock's targets are not the demo's actions"

    hasher = FileHasher(root)
    sources = {i.source.path: hasher.digest(i.source.path)
               for a in order for i in a.inputs if isinstance(i.source, FileInput)}
    missing = sorted(path for path, digest in sources.items() if digest is None)
    assert not missing, f"the demo copy lacks {missing}"
    locked_outputs = {target: entry.outputs for target, entry in lock.items()}

    wrong = []
    for action in order:
        digests = input_digests(action, sources, locked_outputs)
        key = action_key(statics[action.id].digest, digests)
        if key != lock[action.id].key:
            static = statics[action.id]
            wrong.append(f"{action.id}: planned {key[:12]}, locked {lock[action.id].key[:12]} "
                         f"(backend {action.backend} version {static.version}, config "
                         f"{json.dumps(static.config, sort_keys=True, default=str)})")
    # An action listed here has the lock's inputs, so its own part changed: the manifest, a
    # backend's VERSION or its config (the espeak backend's holds the espeakng-loader
    # release installed, so another release re-keys every line and what follows from it).
    assert not wrong, ("storybuild.lock does not match the demo: rebuild it (`storybuild build` in the repo "
                       "root) and commit the new lock. Keys that differ:\n  " + "\n  ".join(wrong))

    def cached(key: str, action_id: str):
        entry = lock.get(action_id)
        return entry.outputs if entry is not None and entry.key == key else None

    decided = plan(order, statics, sources, cached, {})
    assert [s.action.id for s in decided.steps] == []
    assert {i: f.key for i, f in decided.fresh.items()} == {i: e.key for i, e in lock.items()}
