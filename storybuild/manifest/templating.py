"""Sandboxed Jinja for manifest text, prompt presets and workflow bindings.

Templates come from manifests, which may come from someone else's repository, so they
run in jinja2's SandboxedEnvironment (no access to `_private` attributes or unsafe
callables), with StrictUndefined (a typo is an error, not an empty string), a small
`range`, guarded `*`/`**`, and a cap on output size. Errors become Diagnostics located in
the YAML file: a template's line n is the file line where its text starts, plus n - 1.

Prompt presets (style, lighting, mood, quality) ship as templates under
templates/presets/<category>/<id>.j2; each receives `prompt` and returns it enhanced and
may `{% set negative = "..." %}`. `apply_presets` chains them for the planner.

jinja2 is imported on first use, so commands that never render don't pay for it.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from storybuild.errors import Diagnostic, ManifestError, SourceLoc, StorybuildError
from storybuild.model import Look, Preset

CATEGORIES = ("style", "lighting", "mood", "quality")  # the order presets apply in
MAX_OUTPUT = 100_000  # characters a single template may produce
MAX_RANGE = 1_000  # items `range()` may produce
MAX_REPEAT = 10_000  # length a `*` repetition may produce
_MARKERS = ("{{", "{%", "{#")
_SET_NEGATIVE = re.compile(r'\{%-? *set negative = "([^"\\{}]*)" *-?%\}')
_UNDEFINED_OPERATORS = (
    "__iter__ __str__ __len__ __eq__ __ne__ __bool__ __hash__ __contains__ __add__ __radd__ __sub__ "
    "__rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __floordiv__ __rfloordiv__ __mod__ __rmod__ "
    "__pos__ __neg__ __call__ __getitem__ __lt__ __le__ __gt__ __ge__ __int__ __float__ __complex__ "
    "__pow__ __rpow__").split()


def is_template(text: str) -> bool:
    """Whether `text` contains Jinja markup (plain text is used as is, for speed)."""
    return "{" in text and any(marker in text for marker in _MARKERS)


def render(text: str, context: Mapping[str, Any], loc: SourceLoc | None = None) -> str:
    """Render `text` with `context`; raise ManifestError located at `loc` on any error.

    `loc` is where the template's first character is written in its file.
    """
    if not is_template(text):
        return text
    parts = _simple_parts(text)
    template = None if parts is not None else compile_template(text, loc)
    try:
        out = _render_simple(parts, context) if parts is not None else template.render(context)
    except _Undefined as exc:
        raise _error(_undefined_message(exc, context), loc, _line_of(exc), _undefined_hint(exc, context),
                     "template-undefined") from None
    except ManifestError:
        raise
    except Exception as exc:  # any runtime failure of a user's template is their error, not ours
        raise _error(f"template error: {_describe(exc)}", loc, _line_of(exc), None, "template") from None
    if len(out) > MAX_OUTPUT:
        raise _error(f"template output is too long ({len(out)} characters, at most {MAX_OUTPUT})", loc, 1,
                     None, "template")
    return out


def compile_template(text: str, loc: SourceLoc | None = None) -> Any:
    """Compile (cached by text) or raise a located syntax-error diagnostic."""
    try:
        return _compile(text)
    except _syntax_error() as exc:
        hint = "to write a literal '{{', use {{ '{{' }}" if "expected token" in str(exc.message) else None
        raise _error(f"template syntax error: {exc.message}", loc, exc.lineno or 1, hint, "template-syntax") from None


def check_syntax(text: str, loc: SourceLoc | None = None) -> list[Diagnostic]:
    """The syntax errors of a template, without rendering it."""
    if not is_template(text):
        return []
    try:
        compile_template(text, loc)
    except ManifestError as err:
        return err.diagnostics
    return []


def template_variables(text: str) -> set[str]:
    """Names a template reads from its context (for checking that a preset uses `prompt`)."""
    from jinja2 import meta

    env = environment()
    return meta.find_undeclared_variables(env.parse(text))


# --------------------------------------------------------------------------- the fast path
# Most manifest templates are text with `{{ a.b.c }}` lookups. Compiling each through Jinja
# costs ~1 ms, a second for a film of a thousand shots, so those are rendered here with
# exactly Jinja's semantics for them: the same sandboxed attribute-then-item lookup, the
# same strict undefined, str() of the result, and newlines normalised with one trailing
# newline dropped, as Jinja's lexer does. Anything else (filters, tags, whitespace control,
# globals, literals) goes through Jinja.

_EXPRESSION = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*) *\}\}")
_JINJA_NAMES = {"true", "false", "none", "True", "False", "None", "loop", "self", "super", "caller", "varargs",
                "kwargs"}


@lru_cache(maxsize=8192)
def _simple_parts(text: str) -> tuple[tuple[str, tuple[str, ...] | None, int], ...] | None:
    """(text, None, line) and (None, names, line) parts of a lookups-only template, or None."""
    source = "\n".join(text.splitlines())
    parts: list = []
    pos = 0
    for match in _EXPRESSION.finditer(source):
        literal = source[pos:match.start()]
        names = tuple(match.group(1).split("."))
        if any(marker in literal for marker in _MARKERS) or names[0] in _JINJA_NAMES or \
                names[0] in environment().globals:
            return None
        parts.append((literal, None, 0))
        parts.append((None, names, source.count("\n", 0, match.start()) + 1))
        pos = match.end()
    rest = source[pos:]
    if any(marker in rest for marker in _MARKERS):
        return None
    parts.append((rest, None, 0))
    return tuple(parts)


def _render_simple(parts: tuple, context: Mapping[str, Any]) -> str:
    env = environment()
    out = []
    for literal, names, line in parts:
        if names is None:
            out.append(literal)
            continue
        try:
            value = context[names[0]] if names[0] in context else env.undefined(name=names[0])
            for name in names[1:]:
                value = env.getattr(value, name)
            out.append(str(value))
        except Exception as exc:
            exc.template_line = line  # type: ignore[attr-defined]
            raise
    return "".join(out)


# --------------------------------------------------------------------------- presets


def apply_presets(prompt: str, look: Look, presets: Mapping[str, Mapping[str, Preset]],
                  negative: str = "") -> tuple[str, str]:
    """A shot's prompt enhanced by its look's presets, and the combined negative prompt.

    `look` should already be merged (shot over scene over project). Presets apply in
    CATEGORIES order, each receiving the previous result as `prompt`. `negative` (the
    shot's own) comes first in the negative prompt, then each preset's.
    """
    negatives = [negative.strip()] if negative.strip() else []
    for category in CATEGORIES:
        preset_id = getattr(look, category)
        if not preset_id:
            continue
        preset = presets.get(category, {}).get(preset_id)
        if preset is None:
            raise StorybuildError(f"unknown {category} preset '{preset_id}'")
        prompt = _tidy(render(preset.template, {"prompt": prompt}, preset.loc))
        if preset.negative.strip():
            negatives.append(preset.negative.strip())
    return prompt, _tidy(", ".join(negatives))


@lru_cache(maxsize=1)
def shipped_presets() -> dict[str, dict[str, Preset]]:
    """The presets shipped under templates/presets/<category>/<id>.j2."""
    root = resources.files("storybuild").joinpath("templates", "presets")
    out: dict[str, dict[str, Preset]] = {}
    for category in CATEGORIES:
        group: dict[str, Preset] = {}
        folder = root.joinpath(category)
        for entry in sorted(folder.iterdir(), key=lambda e: e.name) if folder.is_dir() else ():
            if entry.name.endswith(".j2"):
                text = entry.read_text(encoding="utf-8")
                preset_id = entry.name[:-3]
                loc = SourceLoc(f"<shipped>/presets/{category}/{entry.name}", 1, 1)
                group[preset_id] = Preset(category, preset_id, text, preset_negative(text, loc), loc)
        out[category] = group
    return out


def preset_negative(template: str, loc: SourceLoc | None = None) -> str:
    """The `negative` a preset template sets with `{% set negative = ... %}`, if any."""
    if "negative" not in template:
        return ""
    # The shipped presets set it as a plain string literal: read that without compiling
    # the template (loading a film with no templates then never imports Jinja).
    literal = _SET_NEGATIVE.search(template)
    if literal:
        return literal.group(1)
    module = compile_template(template, loc).make_module({"prompt": ""})
    return str(getattr(module, "negative", "") or "")


def _tidy(text: str) -> str:
    # Presets append ", more words"; an empty prompt must not leave a leading comma.
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"(?:\s*,\s*)+", ", ", text)
    return text.strip(" ,")


# --------------------------------------------------------------------------- the environment


@lru_cache(maxsize=1)
def environment() -> Any:
    """The shared sandboxed Jinja environment."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError, UndefinedError
    from jinja2.sandbox import SandboxedEnvironment

    class Error(_Undefined, UndefinedError):
        """Jinja's UndefinedError, carrying what was looked up and where."""

    class Undefined(StrictUndefined):
        __slots__ = ()

        def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
            if self._undefined_exception is SecurityError:  # the sandbox hid an unsafe attribute
                raise SecurityError(self._undefined_hint)
            raise Error(self._undefined_name, self._undefined_obj)

    # StrictUndefined binds its operators to the base class's function at class creation;
    # rebind them so every use of an undefined value raises our located error.
    for name in _UNDEFINED_OPERATORS:
        setattr(Undefined, name, Undefined._fail_with_undefined_error)

    class Sandbox(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            # A manifest must not allocate gigabytes with 'x' * 10**9.
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 100:
                raise SecurityError("exponent too large")
            if operator == "*":
                for seq, count in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and \
                            len(seq) * count > MAX_REPEAT:
                        raise SecurityError("repetition too large")
            return super().call_binop(context, operator, left, right)

    env = Sandbox(undefined=Undefined, autoescape=False, keep_trailing_newline=False)

    def small_range(*args: int) -> range:
        numbers = range(*args)
        if len(numbers) > MAX_RANGE:
            raise SecurityError(f"range() is limited to {MAX_RANGE} items in templates")
        return numbers

    env.globals["range"] = small_range
    return env


class _Undefined(Exception):
    """A template used an undefined name; `obj` is what it was looked up in (or missing)."""

    def __init__(self, name: Any, obj: Any):
        super().__init__(f"{name!r} is undefined")
        self.name, self.obj = name, obj


@lru_cache(maxsize=4096)
def _compile(text: str) -> Any:
    return environment().from_string(text)


def _syntax_error() -> type:
    from jinja2 import TemplateSyntaxError

    return TemplateSyntaxError


def _error(message: str, loc: SourceLoc | None, line: int, hint: str | None, code: str) -> ManifestError:
    return ManifestError([Diagnostic(message, _shift(loc, line), hint, code=code)])


def _shift(loc: SourceLoc | None, line: int) -> SourceLoc | None:
    # Later lines of a block scalar start at its indentation, which is where `loc` points.
    if loc is None or line <= 1 or loc.line <= 0:
        return loc
    return SourceLoc(loc.file, loc.line + line - 1, loc.col)


def _line_of(exc: BaseException) -> int:
    # The fast path records the line; Jinja rewrites tracebacks so that template frames
    # carry the template's line numbers.
    if getattr(exc, "template_line", None):
        return exc.template_line  # type: ignore[attr-defined]
    line, tb = 1, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "SecurityError":
        return f"not allowed in a sandboxed template: {exc}"
    return f"{exc}" if str(exc) else name


def _missing(obj: Any) -> bool:
    from jinja2.utils import missing

    return obj is missing


def _undefined_message(exc: Any, context: Mapping[str, Any]) -> str:
    if _missing(exc.obj):
        return f"undefined name '{exc.name}' in template"
    if isinstance(exc.obj, Mapping):
        return f"undefined key '{exc.name}' in template"
    return f"undefined attribute '{exc.name}' of {_kind(exc.obj)} in template"


def _undefined_hint(exc: Any, context: Mapping[str, Any]) -> str | None:
    options: list[str]
    if _missing(exc.obj):
        options = [str(k) for k in context]
    elif isinstance(exc.obj, Mapping):
        options = [str(k) for k in exc.obj]
    else:
        return None
    close = difflib.get_close_matches(str(exc.name), options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"defined here: {', '.join(sorted(options))}" if options and len(options) <= 12 else None


def _kind(obj: Any) -> str:
    if isinstance(obj, str):
        return "text"
    return f"a {type(obj).__name__}"
