"""What notify says: the catalogue of message kinds and their Jinja2 templates.

Each kind (``KINDS``, from ``templates/kinds.toml``) has an SMS template and an e-mail in
text and HTML. Chinese SMS providers send only *approved templates* with parameters, never
free text, so an SMS is rendered in two steps: the message's params are turned into the
provider template's string parameters (``sms_params`` in kinds.toml), then
``templates/sms/<kind>.j2`` substitutes exactly those, as the provider will. The text we
render is therefore the text the member reads (plus the provider-added signature), and its
segment count is the one we pay for. ``templates/sms_codes.toml`` maps each kind to each
provider's template code.

Templates use ``StrictUndefined`` (a missing param raises instead of printing nothing);
HTML e-mails autoescape, so a wish title like ``<script>`` arrives as text. The one
e-mail that carries ready-made HTML is ``report_ready``: its body is the report the
reporting service built (``report.html``), passed as ``report_html`` wrapped in
``markupsafe.Markup`` (a plain str is escaped like any param), its charts inline
attachments (``cid:``); see :mod:`services.notify.mail`. The filters the templates use
are :mod:`services.notify.filters`.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, TemplateError
from jinja2.environment import TemplateExpression

from services.notify.filters import FILTERS, RenderError

__all__ = [
    "KINDS",
    "MAX_SEGMENTS",
    "SIGNATURE",
    "SMS_PROVIDERS",
    "TEMPLATES",
    "Kind",
    "RenderError",
    "RenderedEmail",
    "RenderedSms",
    "SmsTooLong",
    "approval_text",
    "load_sms_codes",
    "render_email",
    "render_sms",
    "sample_params",
    "segments",
    "sms_params",
]

TEMPLATES = Path(__file__).parent / "templates"
SIGNATURE = "在职党员进社区"
"""The signature providers put in front of every SMS (``【在职党员进社区】``)."""
MAX_SEGMENTS = 3
"""An SMS longer than this many segments is refused: shorten the params or use e-mail."""
SMS_PROVIDERS = ("aliyun", "tencent")

Audience = Literal["member", "community", "unit", "leader"]
SmsCodes = Mapping[str, Mapping[str, str]]
"""provider name → message kind → the provider's approved template code."""


class SmsTooLong(RenderError):
    """The SMS would need more than :data:`MAX_SEGMENTS` segments."""

    def __init__(self, kind: str, segments: int) -> None:
        super().__init__(f"{kind}: the SMS needs {segments} segments (at most {MAX_SEGMENTS})")
        self.kind = kind
        self.segments = segments


@dataclass(frozen=True)
class Kind:
    """One kind of message: who gets it, and what its SMS template takes."""

    name: str
    audience: Audience
    urgent: bool
    channels: tuple[str, ...]
    subject: str
    sms_params: Mapping[str, str] = field(repr=False)
    nonempty: tuple[str, ...] = ()
    sample: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sms_param_names(self) -> tuple[str, ...]:
        """The provider template's parameters, in Tencent's TemplateParamSet order."""
        return tuple(self.sms_params)


@dataclass(frozen=True)
class RenderedSms:
    """An SMS ready for any provider: the text as read, and the template parameters."""

    kind: str
    text: str
    """What the recipient reads, signature included (the file channel writes this)."""
    body: str
    """The text without the signature: the approved template with its params filled in."""
    template_code: Mapping[str, str]
    """provider name → template code, from the code table it was rendered with."""
    params: dict[str, str]
    segments: int

    def code_for(self, provider: str) -> str:
        try:
            return self.template_code[provider]
        except KeyError:
            raise RenderError(f"{self.kind}: no approved template code for {provider}") from None


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def segments(text: str) -> int:
    """How many SMS a text is billed as: 70 characters fit one, 67 each when split.

    Characters are UTF-16 code units, as the network encodes them (UCS-2): an emoji counts 2.
    """
    length = len(text.encode("utf-16-le")) // 2
    return 1 if length <= 70 else math.ceil(length / 67)


def render_sms(
    kind: str,
    params: Mapping[str, object],
    *,
    codes: SmsCodes | None = None,
    signature: str = SIGNATURE,
) -> RenderedSms:
    """Render ``kind``'s SMS; raise :class:`RenderError` if a param is missing or empty,
    or :class:`SmsTooLong` past :data:`MAX_SEGMENTS`."""
    spec = _kind(kind, params)
    values = sms_params(kind, params)
    body = _render(f"sms/{kind}.j2", values, kind)
    text = f"【{signature}】{body}"
    count = segments(text)
    if count > MAX_SEGMENTS:
        raise SmsTooLong(kind, count)
    table = _packaged_codes() if codes is None else codes
    template_code = {p: table[p][kind] for p in table if kind in table[p]}
    return RenderedSms(spec.name, text, body, template_code, values, count)


def sms_params(kind: str, params: Mapping[str, object]) -> dict[str, str]:
    """The provider template's string parameters, computed from the message's params."""
    spec = _kind(kind, params)
    values: dict[str, str] = {}
    for name, expression in spec.sms_params.items():
        try:
            value = _expression(expression)(**params)
            values[name] = str(value)
        except TemplateError as exc:
            raise RenderError(f"{kind}: SMS parameter {name}: {exc}") from None
    return values


def render_email(kind: str, params: Mapping[str, object]) -> RenderedEmail:
    """Render ``kind``'s e-mail: subject, plain text and autoescaped HTML."""
    spec = _kind(kind, params)
    try:
        subject = " ".join(_subject(spec.subject).render(**params).split())
    except TemplateError as exc:
        raise RenderError(f"{kind}: e-mail subject: {exc}") from None
    context = {**params, "subject": subject}
    text = _render(f"email/{kind}.txt.j2", context, kind)
    html = _render(f"email/{kind}.html.j2", context, kind)
    return RenderedEmail(subject, text + "\n", html + "\n")


def approval_text(kind: str, provider: str) -> str:
    """The SMS template text to submit to ``provider`` for approval, with its placeholders:
    ``${name}`` for Aliyun, ``{1}``, ``{2}`` ... (TemplateParamSet order) for Tencent."""
    names = _kind(kind, None).sms_param_names
    if provider == "aliyun":
        holders = {n: "${" + n + "}" for n in names}
    elif provider == "tencent":
        holders = {n: "{" + str(i) + "}" for i, n in enumerate(names, 1)}
    else:
        raise RenderError(f"no approval format for SMS provider {provider!r}")
    return _render(f"sms/{kind}.j2", holders, kind)


def sample_params(kind: str) -> dict[str, Any]:
    """Example params of ``kind`` (from kinds.toml): for tests, previews and forecasts."""
    return copy.deepcopy(dict(_kind(kind, None).sample))


def load_sms_codes(override: Path | None = None) -> dict[str, dict[str, str]]:
    """The template code table: the packaged one, with ``override``'s codes laid over it."""
    table = {p: dict(kinds) for p, kinds in _packaged_codes().items()}
    if override is not None:
        for provider, kinds in _read_codes(override).items():
            table.setdefault(provider, {}).update(kinds)
    return table


# --- internals ----------------------------------------------------------------------------


def _autoescape(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    undefined=StrictUndefined,
    autoescape=_autoescape,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(FILTERS)


def _render(template: str, context: Mapping[str, object], kind: str) -> str:
    try:
        return _env.get_template(template).render(**context).strip()
    except TemplateError as exc:
        raise RenderError(f"{kind}: {template}: {exc}") from None


def _kind(kind: str, params: Mapping[str, object] | None) -> Kind:
    spec = KINDS.get(kind)
    if spec is None:
        raise RenderError(f"unknown message kind {kind!r}")
    for name in spec.nonempty:
        if params is not None and name in params and not params[name]:
            raise RenderError(f"{kind}: {name} is empty (nothing to tell)")
    return spec


@cache
def _expression(source: str) -> TemplateExpression:
    return _env.compile_expression(source, undefined_to_none=False)


@cache
def _subject(source: str) -> Template:
    return _env.from_string(source)


@cache
def _packaged_codes() -> dict[str, dict[str, str]]:
    return _read_codes(TEMPLATES / "sms_codes.toml")


def _read_codes(path: Path) -> dict[str, dict[str, str]]:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RenderError(f"{path}: cannot read SMS template codes: {exc}") from None
    return {p: {k: str(c) for k, c in kinds.items()} for p, kinds in raw.items()}


def _load_kinds() -> dict[str, Kind]:
    raw = tomllib.loads((TEMPLATES / "kinds.toml").read_text(encoding="utf-8"))
    return {
        name: Kind(
            name=name,
            audience=spec["audience"],
            urgent=bool(spec.get("urgent", False)),
            channels=tuple(spec["channels"]),
            subject=spec["subject"],
            sms_params=dict(spec["sms_params"]),
            nonempty=tuple(spec.get("nonempty", ())),
            sample=spec.get("sample", {}),
        )
        for name, spec in raw.items()
    }


KINDS: dict[str, Kind] = _load_kinds()
"""Every message kind notify knows, by name."""
