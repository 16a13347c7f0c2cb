"""Safe YAML loading: values, locations, YAML 1.2 scalars, and every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from storybuild.errors import ManifestError, SourceLoc
from storybuild.manifest.yamlevents import FAST_LOADER, PURE_LOADER, Builder
from storybuild.manifest.yamlload import MAX_ALIAS_NODES, MAX_BYTES, MAX_DEPTH, load_yaml, loads_yaml


def problems(text: str | bytes) -> list[tuple[str, str]]:
    """(location, message) of every diagnostic loading `text` raises."""
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(ManifestError) as caught:
        loads_yaml(raw, "f.yaml")
    return [(str(d.loc), d.message) for d in caught.value.diagnostics]


def test_values_and_locations() -> None:
    doc = loads_yaml(b"a:\n  b: [1, two, {c: 3.5}]\n  d: |\n    text {{ x }}\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, "two", {"c": 3.5}], "d": "text {{ x }}\n"}}
    assert doc.locs.key(("a", "b")) == SourceLoc("f.yaml", 2, 3)
    assert doc.locs.value(("a", "b")) == SourceLoc("f.yaml", 2, 6)
    assert doc.locs.value(("a", "b", 1)) == SourceLoc("f.yaml", 2, 10)
    assert doc.locs.key(("a", "b", 2, "c")) == SourceLoc("f.yaml", 2, 16)
    # A block scalar's text starts on the line after its `|`, at its indentation.
    assert doc.locs.text(("a", "d")) == SourceLoc("f.yaml", 4, 5)
    # Paths that were never written fall back to their nearest written ancestor.
    assert doc.locs.value(("a", "b", 9)) == SourceLoc("f.yaml", 2, 6)


def test_columns_count_characters_not_bytes() -> None:
    doc = loads_yaml("név: {ünï: x}\n".encode(), "f.yaml")
    assert doc.locs.value(("név", "ünï")) == SourceLoc("f.yaml", 1, 12)


def test_quoted_text_location_is_inside_the_quotes() -> None:
    doc = loads_yaml(b'p: "{{ a }}"\n', "f.yaml")
    assert doc.locs.text(("p",)) == SourceLoc("f.yaml", 1, 5)


def test_yaml_1_2_core_scalars() -> None:
    doc = loads_yaml(b"a: no\nb: on\nc: yes\nd: true\ne: ~\nf: 0x1F\ng: 0o17\nh: 1_000\ni: -2.5e3\n"
                     b"j: '3'\nk: !!str 4\nl: 2024-01-01\nm: 1:20\nn: !!float 2\n", "f.yaml")
    assert doc.data == {"a": "no", "b": "on", "c": "yes", "d": True, "e": None, "f": 31, "g": 15,
                        "h": "1_000", "i": -2500.0, "j": "3", "k": "4", "l": "2024-01-01", "m": "1:20", "n": 2.0}


def test_keys_are_always_text_as_written() -> None:
    assert loads_yaml(b"1: a\ntrue: b\nnull: c\n").data == {"1": "a", "true": "b", "null": "c"}


def test_aliases_are_copied_and_located() -> None:
    doc = loads_yaml(b"a: &cast\n  - {ref: mara}\nb: *cast\n", "f.yaml")
    assert doc.data["a"] == doc.data["b"] and doc.data["a"] is not doc.data["b"]
    assert doc.locs.value(("b",)) == SourceLoc("f.yaml", 3, 4)  # the alias itself
    assert doc.locs.value(("b", 0, "ref")) == SourceLoc("f.yaml", 2, 11)  # inside: the anchored original


def test_duplicate_keys() -> None:
    assert problems("a:\n  b: 1\n  c: 2\n  b: 3\n") == [("f.yaml:4:3", "duplicate key 'b' (first at line 2)")]


def test_tabs_in_indentation() -> None:
    assert problems("a:\n\tb: 1\n\tc: 2\n") == [("f.yaml:2:1", "tab character in indentation (and 1 more lines)")]


def test_tabs_inside_values_are_fine() -> None:
    assert loads_yaml(b'a: "x\ty"\nb: c\td\n').data == {"a": "x\ty", "b": "c\td"}


def test_alias_bomb_is_bounded() -> None:
    lines = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    for level in "bcdefgh":
        prev = chr(ord(level) - 1)
        lines.append(f"{level}: &{level} [" + ", ".join([f"*{prev}"] * 10) + "]")
    found = problems("\n".join(lines) + "\n")
    assert len(found) == 1 and found[0][1] == f"aliases expand to more than {MAX_ALIAS_NODES} nodes"


def test_recursive_alias() -> None:
    assert problems("a: &x [1, *x]\n") == [("f.yaml:1:11", "alias *x refers to a value that contains it")]


def test_deep_nesting_is_refused_not_crashed() -> None:
    found = problems("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    # The root mapping is the first level, so the 64th bracket is one too many.
    assert found == [(f"f.yaml:1:{3 + MAX_DEPTH}", f"nesting deeper than {MAX_DEPTH} levels")]


# Our limits are ours: the same diagnostic with libyaml's loader (whose scanner has limits
# of its own in some PyYAML releases) and with the pure-Python one.
LOADERS = sorted({FAST_LOADER, PURE_LOADER}, key=lambda cls: cls.__name__)


def built_with(loader_class: type, text: str) -> list[tuple[str, str]]:
    diags: list = []
    Builder(text, "f.yaml", diags).run(loader_class)
    return [(str(d.loc), d.message) for d in diags]


@pytest.mark.parametrize("loader_class", LOADERS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("brackets", [MAX_DEPTH + 5, 999, 1001, 100_000])
def test_depth_limit_is_the_same_with_every_loader(loader_class: type, brackets: int) -> None:
    text = "a: " + "[" * brackets + "]" * brackets + "\n"
    assert built_with(loader_class, text) == [(f"f.yaml:1:{3 + MAX_DEPTH}", f"nesting deeper than {MAX_DEPTH} levels")]
    block = "".join(" " * level + f"k{level}:\n" for level in range(MAX_DEPTH + 2)) + " " * (MAX_DEPTH + 2) + "x: 1\n"
    assert built_with(loader_class, block) == [(f"f.yaml:{MAX_DEPTH + 1}:{MAX_DEPTH + 1}", f"nesting deeper than {MAX_DEPTH} levels")]


@pytest.mark.parametrize("loader_class", LOADERS, ids=lambda cls: cls.__name__)
def test_alias_limit_and_syntax_errors_are_the_same_with_every_loader(loader_class: type) -> None:
    lines = ["a: &a [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"{c}: &{c} [" + ", ".join([f"*{chr(ord(c) - 1)}"] * 10) + "]" for c in "bcdefgh"]
    assert built_with(loader_class, "\n".join(lines) + "\n") == [
        ("f.yaml:5:36", f"aliases expand to more than {MAX_ALIAS_NODES} nodes")]
    assert built_with(loader_class, "a: [1, 2\nb: 3\n")[0][0] == "f.yaml:2:2"


def test_a_syntax_error_after_deep_but_allowed_nesting_is_reported_as_such() -> None:
    text = "a: " + "[" * 10 + "]" * 10 + "\nb: [\n"
    ((where, message),) = problems(text)
    assert message.startswith("invalid YAML") and where.startswith("f.yaml:3")


def test_oversized_file(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(ManifestError) as caught:
        load_yaml(str(big), "big.yaml")
    (diag,) = caught.value.diagnostics
    assert diag.message.startswith("file is too large") and diag.code == "too-large"


def test_non_utf8_and_binary_content() -> None:
    assert problems(b"a: caf\xe9\n") == [("f.yaml:1:7", "not valid UTF-8: byte 0xe9 cannot start a character")]
    assert problems(b"a: 1\nb: \x00\n") == [("f.yaml:2:4", "binary content (a NUL byte): this is not a YAML text file")]
    assert problems(b"\xff\xfea\x00") == [("f.yaml:1:1", "file is UTF-16; manifests must be UTF-8")]
    assert problems(b"a: \x07\n") == [("f.yaml:1:4", "control character U+0007 is not allowed in YAML")]


def test_utf8_bom_is_accepted() -> None:
    assert loads_yaml(b"\xef\xbb\xbfa: 1\n").data == {"a": 1}


def test_tags_are_refused() -> None:
    assert problems("a: !!python/object/apply:os.system [ls]\nb: !custom 3\nc: !!set {x: null}\n") == [
        ("f.yaml:1:4", "the tag !!python/object/apply:os.system is not allowed"),
        ("f.yaml:2:4", "the tag !custom is not allowed"),
        ("f.yaml:3:4", "the tag !!set is not allowed"),
    ]


def test_core_tags_must_fit_their_value() -> None:
    assert problems("a: !!int seven\n") == [("f.yaml:1:4", "'seven' is not a valid int")]


def test_empty_documents_and_wrong_roots() -> None:
    for empty in ("", "# only a comment\n", "---\n", "~\n"):
        assert problems(empty) == [("f.yaml:1:1", "the manifest is empty")]
    assert problems("- a\n") == [("f.yaml:1:1", "the manifest must be a mapping of sections (version, project, ...), "
                                               "found a list")]
    assert problems("just text\n")[0][1].endswith("found the value 'just text'")


def test_syntax_errors_point_at_the_problem() -> None:
    ((where, message),) = problems("a: [1, 2\nb: 3\n")
    assert where.startswith("f.yaml:2:") and message.startswith("invalid YAML: ")  # the rest is the parser's


@pytest.mark.parametrize("loader_class", LOADERS, ids=lambda cls: cls.__name__)
def test_a_character_that_cannot_start_a_value_is_named_with_every_loader(loader_class: type) -> None:
    # libyaml and PyYAML's own parser word this differently; the diagnostic is ours.
    ((where, message),) = built_with(loader_class, "a: @x\n")
    assert where == "f.yaml:1:4" and message.startswith("invalid YAML: '@' cannot start a plain value")


def test_merge_keys_and_second_documents_are_refused() -> None:
    assert problems("a: &x {b: 1}\nc:\n  <<: *x\n") == [("f.yaml:3:3", "merge keys (<<) are not supported")]
    assert problems("a: 1\n---\nb: 2\n") == [("f.yaml:2:1", "a manifest is a single YAML document, found a second one")]


def test_non_finite_numbers_are_refused() -> None:
    assert problems("a: .inf\nb: .nan\n") == [("f.yaml:1:4", ".inf is not a finite number"),
                                             ("f.yaml:2:4", ".nan is not a finite number")]


def test_keys_must_be_scalars() -> None:
    assert problems("? [a, b]\n: 1\n") == [("f.yaml:1:3", "mapping keys must be plain text, not a list or mapping")]


def test_every_problem_is_reported_at_once() -> None:
    assert len(problems("a: 1\na: 2\nb: !!python/name:os.system x\nc: {d: 1, d: 2}\n")) == 3


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_yaml(str(tmp_path / "absent.yaml"), "absent.yaml")
    assert caught.value.diagnostics[0].message.startswith("cannot read file")
