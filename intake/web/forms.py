"""The report form, built from `intake.schema`: one source of truth.

Each schema field becomes a WTForms field with server-side validation whose
messages are short and say what to do; the template names the field next to
each message. `report_fields` turns a valid form into the ``fields`` object
of report.json.

Two costs per form are paid once per process instead (bench/throughput.py's
profile showed them as a third of a report's CPU): WTForms' own catalogue is
loaded once per language, not parsed from disk for each request as Flask-WTF
does; and a choice is checked against a frozen set of the schema's values
instead of a list of choice objects built for every field of every form. An
answer outside the set falls through to WTForms' own check, so what is
refused, and the message that says so, are unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from babel import support
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    Field,
    HiddenField,
    MultipleFileField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.i18n import messages_path
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from intake import schema
from intake.limits import MAX_ATTACHMENTS


class AtLeastOne:
    def __call__(self, form: FlaskForm, field: Field) -> None:
        if not field.data:
            raise ValidationError(_l("Choose at least one."))


class PartialDate:
    def __call__(self, form: FlaskForm, field: Field) -> None:
        if not field.data:
            return
        normalised = schema.normalise_partial_date(field.data)
        if normalised is None:
            raise ValidationError(
                _l(
                    "Write a year, a year and month, or a full date, "
                    "like 2026, 2026-03 or 2026-03-14."
                )
            )
        field.data = normalised


class FileCount:
    def __call__(self, form: FlaskForm, field: Field) -> None:
        chosen = [f for f in field.data or [] if getattr(f, "filename", "")]
        if len(chosen) > MAX_ATTACHMENTS:
            raise ValidationError(
                _l(
                    "Attach at most %(count)d files; leave out the least important ones.",
                    count=MAX_ATTACHMENTS,
                )
            )


class _AllowedSet:
    """A choice field whose accepted values are a frozen set built once from the schema."""

    def __init__(self, *args: Any, allowed: frozenset[str], **kwargs: Any):
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]
        self._allowed = allowed

    def _accepted(self) -> bool:
        return self.data in self._allowed  # type: ignore[attr-defined]

    def pre_validate(self, form: FlaskForm) -> None:
        # Only the common case is short-cut; anything else gets WTForms' own check and message.
        field: Any = self
        if field.process_errors or not field.validate_choice or not self._accepted():
            super().pre_validate(form)  # type: ignore[misc]


class SchemaRadioField(_AllowedSet, RadioField):
    pass


class SchemaSelectField(_AllowedSet, SelectField):
    pass


class SchemaSelectMultipleField(_AllowedSet, SelectMultipleField):
    def _accepted(self) -> bool:
        return bool(self.data) and all(value in self._allowed for value in self.data)


class _CachedTranslations:
    """WTForms' catalogue for the request's language, loaded once per process and language."""

    _lock = threading.Lock()
    _loaded: dict[str, support.Translations] = {}

    def _current(self) -> support.Translations:
        locale = str(get_locale())
        translations = self._loaded.get(locale)
        if translations is None:
            with self._lock:
                translations = self._loaded.get(locale)
                if translations is None:
                    translations = support.Translations.load(
                        messages_path(), [locale], domain="wtforms"
                    )
                    self._loaded[locale] = translations
        return translations

    def gettext(self, string: str) -> str:
        return self._current().ugettext(string)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self._current().ungettext(singular, plural, n)


_TRANSLATIONS = _CachedTranslations()


def _choices(field: schema.Field) -> list[SelectChoice]:
    choices = schema.country_choices() if field.kind == "country" else field.choices
    return [SelectChoice(c.value, c.label) for c in choices]


def _make_field(field: schema.Field) -> Field:
    required = [InputRequired(message=_l("This is required."))] if field.required else [Optional()]
    length = (
        [
            Length(
                max=field.max_length,
                message=_l("Shorten this to %(max)d characters at most.", max=field.max_length),
            )
        ]
        if field.max_length
        else []
    )
    kind = field.kind
    if kind in ("radio", "select", "country") or kind in schema.MULTI_KINDS:
        choices = _choices(field)
        allowed = frozenset(str(c.value) for c in choices)
    if kind == "radio":
        return SchemaRadioField(
            field.label,
            choices=choices,
            allowed=allowed,
            default=field.default,
            validators=required if field.required else [Optional()],
            validate_choice=True,
        )
    if kind in ("select", "country"):
        return SchemaSelectField(
            field.label,
            choices=[SelectChoice("", _l("Choose…")), *choices],
            allowed=allowed | {""},
            default=field.default or "",
            validators=required if field.required else [Optional()],
        )
    if kind in schema.MULTI_KINDS:
        return SchemaSelectMultipleField(
            field.label,
            choices=choices,
            allowed=allowed,
            default=[],
            validators=[AtLeastOne()] if field.required else [Optional()],
        )
    if kind == "checkbox":
        return BooleanField(field.label, default=False)
    if kind == "textarea":
        return TextAreaField(field.label, validators=required + length, filters=[unix_newlines])
    if kind == "partial_date":
        return StringField(field.label, validators=required + [PartialDate()])
    if kind == "files":
        return MultipleFileField(field.label, validators=[FileCount()])
    return StringField(field.label, validators=required + length)


def unix_newlines(value: Any) -> Any:
    """Line breaks as "\\n": browsers post a textarea with CRLF, the page's script reads
    it with LF; the report, and the length it is checked against, are the same either way."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def _build_form_class() -> type[FlaskForm]:
    attributes: dict[str, Any] = {name: _make_field(f) for name, f in schema.FIELDS.items()}
    attributes["keyring_version"] = HiddenField()

    def validate(self: FlaskForm, extra_validators: Any = None) -> bool:
        ok = FlaskForm.validate(self, extra_validators)
        values = {name: getattr(self, name).data for name in schema.FIELDS}
        for name, message in schema.conditional_errors(values).items():
            field = getattr(self, name)
            if not field.errors:  # one message per field: the first problem is enough
                field.errors = [message]
            ok = False
        return ok

    class Meta:
        def get_translations(self, form: FlaskForm) -> _CachedTranslations:
            return _TRANSLATIONS

    attributes["validate"] = validate
    attributes["Meta"] = Meta
    return type("ReportForm", (FlaskForm,), attributes)


ReportForm = _build_form_class()


def report_fields(form: FlaskForm) -> dict[str, Any]:
    """The ``fields`` of report.json: every schema field but the files, as typed."""
    fields: dict[str, Any] = {}
    for name, field in schema.FIELDS.items():
        if field.kind == "files":
            continue
        data = getattr(form, name).data
        if field.kind in schema.MULTI_KINDS:
            fields[name] = list(data or [])
        elif field.kind == "checkbox":
            fields[name] = bool(data)
        else:
            fields[name] = data or ""
    return fields


class ReceiptForm(FlaskForm):
    """A receipt typed back (the follow-up page), or posted by the page's script (thanks).

    Only its length is checked here; `intake.crypto.receipt.normalise_receipt`
    reads it.
    """

    receipt = StringField(validators=[InputRequired(), Length(max=200)])


#: The longest follow-up message: as long as a report's narrative.
MAX_MESSAGE = schema.FIELDS["narrative"].max_length or schema.DEFAULT_MAX_TEXT


class FollowUpForm(FlaskForm):
    """More text and files for the reviewers, sent from a mailbox page.

    `mailbox` is the page's ticket (`intake.web.receipts`), never the receipt.
    What is sent becomes a report container whose ``fields`` hold only
    ``narrative``: the message.
    """

    message = TextAreaField(
        _l("Your message"),
        validators=[Length(max=MAX_MESSAGE, message=_l(
            "Shorten this to %(max)d characters at most.", max=MAX_MESSAGE))],
        filters=[unix_newlines],
    )
    attachments = MultipleFileField(_l("Files"), validators=[FileCount()])
    keyring_version = HiddenField()
    mailbox = HiddenField()


class MailboxActionForm(FlaskForm):
    """Deleting a mailbox: its ticket, and "yes" once the source has confirmed."""

    mailbox = HiddenField()
    confirm = HiddenField()
