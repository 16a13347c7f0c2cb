"""Sandboxed Jinja: rendering, located errors, the sandbox's limits, and prompt presets."""

from __future__ import annotations

import pytest

from storybuild.errors import ManifestError, SourceLoc, StorybuildError
from storybuild.model import Look, Preset
from storybuild.manifest.templating import (
    CATEGORIES, apply_presets, check_syntax, is_template, preset_negative, render, shipped_presets,
    template_variables,
)

LOC = SourceLoc("film.yaml", 10, 5)


def error_of(text: str, context: dict | None = None) -> tuple[str, str, str | None]:
    with pytest.raises(ManifestError) as caught:
        render(text, context or {}, LOC)
    (diag,) = caught.value.diagnostics
    return str(diag.loc), diag.message, diag.hint


def test_plain_text_is_returned_untouched() -> None:
    assert not is_template("a {curly} thing") and is_template("{{ x }}") and is_template("{% if x %}{% endif %}")
    assert render("a {curly} thing", {}, LOC) == "a {curly} thing"


def test_rendering_with_context() -> None:
    context = {"scene": {"location": "the harbour"}, "characters": {"mara": {"name": "Mara"}}}
    assert render("{{ characters.mara.name }} at {{ scene.location | upper }}", context, LOC) == "Mara at THE HARBOUR"


def test_syntax_errors_are_located_on_their_line() -> None:
    # After our prefix the words are Jinja's, which a newer Jinja may change: not asserted.
    where, message, hint = error_of("{{ x }")
    assert (where, hint) == ("film.yaml:10:5", None) and message.startswith("template syntax error: ")
    where, message, _ = error_of("line one\n{% for x in %}")
    assert where == "film.yaml:11:5" and message.startswith("template syntax error:")
    assert check_syntax("{{ fine }}") == [] and len(check_syntax("{{ broken", LOC)) == 1


def test_undefined_names_are_errors_with_suggestions() -> None:
    context = {"scene": {"location": "x"}, "characters": {"mara": {}}}
    assert error_of("{{ scen.location }}", context) == ("film.yaml:10:5", "undefined name 'scen' in template",
                                                        "did you mean 'scene'?")
    assert error_of("{{ characters.marra }}", context) == ("film.yaml:10:5", "undefined key 'marra' in template",
                                                           "did you mean 'mara'?")
    # Strict: an undefined value fails however it is used, not only when printed.
    assert error_of("{% if nothing %}x{% endif %}", context)[1] == "undefined name 'nothing' in template"
    assert error_of("a\n{{ nothing + 1 }}", context)[0] == "film.yaml:11:5"
    assert render("{{ nothing | default('fine') }}", context, LOC) == "fine"


def test_the_sandbox_refuses_unsafe_access() -> None:
    where, message, _ = error_of("{{ ''.__class__.__mro__ }}")
    assert message.startswith("template error: not allowed in a sandboxed template")
    assert error_of("{{ 'a' * 100000000 }}")[1].endswith("repetition too large")
    assert error_of("{{ range(10**6) | list }}")[1].endswith("range() is limited to 1000 items in templates")
    assert error_of("{{ 2 ** 100000 }}")[1].endswith("exponent too large")


def test_output_size_is_bounded() -> None:
    text = "{% for i in range(1000) %}{{ 'x' * 9000 }}{% endfor %}"
    assert error_of(text)[1].startswith("template output is too long")


def test_runtime_errors_are_diagnostics() -> None:
    assert error_of("{{ 1 / 0 }}")[1] == "template error: division by zero"


def test_shipped_presets_cover_every_category() -> None:
    presets = shipped_presets()
    assert tuple(presets) == CATEGORIES
    assert set(presets["style"]) == {"cinematic", "noir", "anime", "watercolor", "storybook", "claymation", "pixel-art"}
    assert set(presets["lighting"]) == {"dramatic", "soft", "golden-hour", "moonlit", "neon"}
    assert set(presets["mood"]) == {"tense", "calm", "epic", "whimsical", "melancholy"}
    assert set(presets["quality"]) == {"draft", "standard", "high"}
    for group in presets.values():
        for preset in group.values():
            assert "prompt" in template_variables(preset.template), preset.id
            assert render(preset.template, {"prompt": "a boat"}, preset.loc).startswith("a boat")


def test_presets_chain_in_category_order_with_negatives() -> None:
    presets = shipped_presets()
    prompt, negative = apply_presets("a lighthouse", Look(style="noir", mood="tense"), presets, negative="text")
    assert prompt.startswith("a lighthouse, film noir, black and white")
    assert prompt.endswith("tense atmosphere, uneasy stillness, suspense")
    assert negative == "text, color, bright daylight, cheerful"


def test_presets_tidy_an_empty_prompt_and_draft_adds_nothing() -> None:
    prompt, negative = apply_presets("", Look(style="anime", quality="draft"), shipped_presets())
    assert prompt.startswith("anime style") and not prompt.startswith(",")
    assert negative == "photo, photorealistic, 3d render"
    assert apply_presets("a cat", Look(), shipped_presets()) == ("a cat", "")


def test_manifest_presets_extend_and_override() -> None:
    presets = {c: dict(g) for c, g in shipped_presets().items()}
    presets["style"]["noir"] = Preset("style", "noir", "{{ prompt }} in shadows", "sunshine")
    presets["mood"]["eerie"] = Preset("mood", "eerie", "eerie {{ prompt }}")
    assert apply_presets("a pier", Look(style="noir", mood="eerie"), presets) == ("eerie a pier in shadows", "sunshine")


def test_unknown_preset_is_an_error() -> None:
    with pytest.raises(StorybuildError, match="unknown mood preset 'gloomy'"):
        apply_presets("x", Look(mood="gloomy"), shipped_presets())


def test_preset_negative_is_read_from_the_template() -> None:
    assert preset_negative('{%- set negative = "blur" -%}{{ prompt }}') == "blur"
    assert preset_negative("{{ prompt }}, sharp") == ""


LOOKUPS = ["{{ scene.location }}, x", "a\r\nb {{ scene.n }}\n", "{{scene.flag}} {{ scene.none }} {{ scene.lst }}\n\n",
           "{{ characters.mara.name }}'s { brace }", "line1\n{{ scene.nope }}", "{{ nope }}",
           "{{ scene.location.upper }}", "{{ scene.location.__class__ }}", "{{ characters.mara }}",
           "x {{ scene.items }}", "{{ range }}", "{{ true }}", "{{- scene.location }}"]


@pytest.mark.parametrize("text", LOOKUPS)
def test_the_lookup_fast_path_renders_exactly_like_jinja(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import storybuild.manifest.templating as templating

    context = {"scene": {"location": "the docks", "n": 1.0, "flag": True, "none": None, "lst": [1, "a"]},
               "characters": {"mara": {"name": "Mara"}}}

    def outcome() -> tuple:
        try:
            return ("ok", render(text, context, LOC))
        except ManifestError as err:
            (diag,) = err.diagnostics
            return ("error", diag.loc, diag.message, diag.hint)

    fast = outcome()
    monkeypatch.setattr(templating, "_simple_parts", lambda text: None)
    assert fast == outcome()


def test_shipped_negatives_read_without_jinja_match_jinja() -> None:
    from storybuild.manifest.templating import compile_template

    for group in shipped_presets().values():
        for preset in group.values():
            module = compile_template(preset.template).make_module({"prompt": ""})
            assert preset.negative == str(getattr(module, "negative", "") or ""), preset.id
