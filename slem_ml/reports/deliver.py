"""Mailing a report (SPEC §10): one message through the site's ``smtp:`` server, over STARTTLS.

The message is a proper MIME message (:class:`email.message.EmailMessage`): the subject the caller gives
(the schedules give the report's title, "Energy report — Whole site — March 2025"), a short text body, and
each file attached with its MIME type. The password is given by the caller (read from the environment
variable the settings name) and appears in no message, log line or exception: a failure is a
:class:`DeliveryError` saying in words what went wrong.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from slem_ml.config.reporting import SmtpSettings
from slem_ml.errors import SlemError

__all__ = ["MIME_TYPES", "DeliveryError", "build_message", "send_report"]

#: MIME type of each report format.
MIME_TYPES = {
    "pdf": ("application", "pdf"),
    "html": ("text", "html"),
    "xlsx": ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
}
_TIMEOUT_S = 60.0  # how long to wait for the mail server at each step [s]


class DeliveryError(SlemError):
    """A report could not be mailed; the message says why, in words (never the password)."""


def build_message(
    settings: SmtpSettings,
    to: Sequence[str],
    subject: str,
    text: str,
    attachments: Mapping[str, tuple[str, bytes]],
) -> EmailMessage:
    """The message: ``attachments`` maps a format (``pdf``, ``html``, ``xlsx``) to (file name, bytes)."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2] or None)
    message.set_content(text)
    for fmt, (name, content) in attachments.items():
        maintype, subtype = MIME_TYPES.get(fmt, ("application", "octet-stream"))
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return message


def send_report(
    settings: SmtpSettings,
    to: Sequence[str],
    subject: str,
    text: str,
    attachments: Mapping[str, tuple[str, bytes]],
    password: str | None,
    *,
    context: ssl.SSLContext | None = None,
) -> tuple[str, ...]:
    """Mail a report to ``to`` through ``settings``' server; return the addresses the server refused
    while accepting the others (the report went to those: it is sent).

    With ``starttls`` (the default): EHLO, STARTTLS with ``context`` (default: the system's trusted CAs,
    or ``settings.ca_file``), EHLO again, then sign in when ``settings.username`` is set.

    Raises
    ------
    DeliveryError
        When the server cannot be reached, refuses TLS, the sign-in or a recipient, or goes away.
    """
    if not to:
        raise DeliveryError("no addresses to send the report to")
    if settings.username is not None and not password:
        raise DeliveryError(
            f"no password for {settings.username} on {settings.host}: set the environment variable "
            f"{settings.password_env or '(smtp.password_env)'}"
        )
    message = build_message(settings, to, subject, text, attachments)
    where = f"{settings.host}:{settings.port}"
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=_TIMEOUT_S) as smtp:
            if settings.starttls:
                tls = context or ssl.create_default_context(cafile=settings.ca_file)
                smtp.ehlo()
                smtp.starttls(context=tls)
                smtp.ehlo()
            if settings.username is not None:
                smtp.login(settings.username, password or "")
            refused = smtp.send_message(message, from_addr=settings.sender, to_addrs=list(to))
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(
            f"the mail server {where} refused the sign-in as {settings.username} ({_said(exc)}): "
            f"check the password in {settings.password_env}"
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"the mail server {where} does not offer STARTTLS or sign-in") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(
            f"the mail server {where} refused every recipient ({', '.join(exc.recipients)})"
        ) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"the mail server {where} refused the report ({_said(exc)})") from None
    except ssl.SSLError as exc:
        raise DeliveryError(
            f"no secure connection to the mail server {where}: {exc.reason or exc} (its certificate is not "
            "trusted? smtp.ca_file names a CA to trust)"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"cannot reach the mail server {where}: {exc.strerror or exc}") from None
    return tuple(sorted(refused))


def _said(exc: smtplib.SMTPResponseException) -> str:
    """The server's answer as one short line: ``535 authentication failed``."""
    raw = exc.smtp_error
    words = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return f"{exc.smtp_code} {' '.join(words.split())}"[:200]
