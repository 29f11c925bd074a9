"""SMTP sender: the URL's parsing, and real sends to a local aiosmtpd server: headers, threading, the deterministic
Message-ID, a UTF-8 body, STARTTLS and implicit TLS, login, and each failure mapped to transient or permanent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.deliveries import claimed
from tests.smtp_server import LocalSmtpServer, tls_contexts
from threadline.channels.senders.smtp import SmtpSender, SmtpTarget, message_id, parse_smtp_url
from threadline.core.delivery import Delivery, PermanentSendError, TransientSendError
from threadline.core.errors import ConfigurationError
from threadline.core.types import Channel
from threadline.product.loopback import free_port as closed_port

FROM = "Demo Store <support@example.com>"
CUSTOMER = "jane.doe@example.net"
BODY = "Hi Jane,\n\nYour refund of 12,50 € is on its way — café order 🎉 #W2611340.\n\nBest regards,\nDemo Store"
PARENT = "<CAF=abc123@mail.gmail.com>"
REFERENCES = ["<first@mail.gmail.com>", "<CAF=abc123@mail.gmail.com>"]
SECRET = "p@ss:w/rd?#%"  # characters that must be percent-encoded in the URL


def delivery(key: str = "email:msg-41:0", **payload: Any) -> Delivery:
    fields: dict[str, Any] = {
        "subject": "Re: Where is my order?",
        "in_reply_to": PARENT,
        "references": REFERENCES,
        **payload,
    }
    return claimed(
        idempotency_key=key,
        channel=Channel.EMAIL,
        provider="smtp",
        recipient=CUSTOMER,
        body=BODY,
        payload={name: value for name, value in fields.items() if value is not None},
    )


@pytest.fixture
def server() -> Iterator[LocalSmtpServer]:
    with LocalSmtpServer() as running:
        yield running


def sender(url: str, **kwargs: Any) -> SmtpSender:
    return SmtpSender(url, from_address=FROM, timeout_s=kwargs.pop("timeout_s", 2.0), local_hostname="test", **kwargs)


def only(server: LocalSmtpServer) -> EmailMessage:
    assert len(server.messages) == 1
    return server.messages[0]


# --- the URL ------------------------------------------------------------------------------------------------


def test_parse_smtp_url_reads_host_port_login_and_tls_mode() -> None:
    target = parse_smtp_url("smtp://apikey:s%40cret%2Fx@smtp.example.com:587")
    expected = SmtpTarget(host="smtp.example.com", port=587, username="apikey", password="s@cret/x")
    assert target == replace(expected, starttls_required=True)  # a login never crosses the network in clear
    assert not target.implicit_tls
    assert not parse_smtp_url("smtp://apikey:pw@relay.internal:587?starttls=auto").starttls_required
    assert not parse_smtp_url("smtp://relay.internal").starttls_required  # no login: upgraded when offered
    assert parse_smtp_url("smtp://relay.internal").port == 25
    secure = parse_smtp_url("smtps://u:p@smtp.example.com")
    assert (secure.port, secure.implicit_tls) == (465, True)
    assert parse_smtp_url("SMTP://u:p@smtp.example.com:587/?starttls=required").starttls_required
    assert parse_smtp_url("smtp://[::1]:2525").host == "::1"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:hunter2@smtp.example.com", "smtp:// or smtps://"),
        ("smtp.example.com:587", "smtp:// or smtps://"),
        ("smtp://user:hunter2@:587", "no host"),
        ("smtp://user:hunter2@smtp.example.com:99999", "port"),
        ("smtp://user:hunter2@smtp.example.com:abc", "port"),
        ("smtp://user:hunter2@smtp.example.com/mail", "no path"),
        ("smtp://user:hunter2@smtp.example.com?starttls=maybe", "starttls=required"),
        ("smtps://user:hunter2@smtp.example.com?starttls=required", "smtps://"),
        ("smtp://user@smtp.example.com", "both a user and a password"),
        ("smtp://user:hunter2%C3%A9@smtp.example.com", "ASCII"),
    ],
)
def test_parse_smtp_url_refuses_bad_urls_without_echoing_the_password(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_smtp_url(url)
    assert problem in caught.value.message
    assert "THREADLINE_SMTP_URL" in caught.value.message
    assert "hunter2" not in str(caught.value)


def test_the_password_never_appears_in_a_repr() -> None:
    target = parse_smtp_url("smtp://user:hunter2@smtp.example.com:587")
    assert "hunter2" not in repr(target)
    assert "hunter2" not in target.redacted
    assert target.redacted == "smtp://user@smtp.example.com:587?starttls=required"
    assert "hunter2" not in repr(SmtpSender(target, from_address=FROM))


def test_a_from_address_without_a_domain_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        SmtpSender("smtp://localhost", from_address="Demo Store")


# --- a real send --------------------------------------------------------------------------------------------


def test_send_delivers_a_threaded_reply_with_headers_and_utf8_body(server: LocalSmtpServer) -> None:
    receipt = sender(server.url).send(delivery())

    received = server.received[0]
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == (CUSTOMER,)
    message = only(server)
    assert message["To"] == CUSTOMER
    assert message["From"] == FROM
    assert message["Subject"] == "Re: Where is my order?"
    assert message["In-Reply-To"] == PARENT
    assert message["References"] == " ".join(REFERENCES)
    assert message["X-Threadline-Delivery"] == "41"
    assert message["Date"]
    assert message["Auto-Submitted"] is None  # an agent's or the assistant's answer is not an auto-reply
    assert message.get_content_charset() == "utf-8"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().replace("\r\n", "\n").rstrip("\n") == BODY
    assert receipt.provider_message_id == message["Message-ID"]
    assert receipt.delivered is False


def test_lines_on_the_wire_end_in_crlf_and_stay_seven_bit(server: LocalSmtpServer) -> None:
    sender(server.url).send(delivery(subject="Re: Où est ma commande ? " + "très longue " * 12))

    raw = server.received[0].raw
    assert raw.count(b"\n") == raw.count(b"\r\n") > 10
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert all(byte < 128 for byte in raw)  # headers RFC 2047-encoded, body quoted-printable
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert only(server)["Subject"] == "Re: Où est ma commande ? " + ("très longue " * 12).strip()


def test_message_id_is_derived_from_the_idempotency_key(server: LocalSmtpServer) -> None:
    smtp = sender(server.url)
    first = smtp.send(delivery("email:msg-41:0")).provider_message_id
    again = smtp.send(delivery("email:msg-41:0")).provider_message_id
    other = smtp.send(delivery("email:msg-41:1")).provider_message_id

    assert first == again != other
    assert [message["Message-ID"] for message in server.messages] == [first, again, other]
    assert first == message_id("email:msg-41:0", "example.com")
    assert first.startswith("<") and first.endswith("@example.com>")
    assert len(first.split("@")[0]) == 33  # "<" and 32 hex digits


def test_defaults_without_subject_or_threading_and_automated_notice(server: LocalSmtpServer) -> None:
    sender(server.url).send(delivery(subject=None, in_reply_to=None, references=None, automated=True))

    message = only(server)
    assert message["Subject"] == "Re: your message"
    assert message["In-Reply-To"] is None and message["References"] is None
    assert message["Auto-Submitted"] == "auto-replied"


def test_a_line_break_in_a_payload_header_cannot_add_a_header(server: LocalSmtpServer) -> None:
    sender(server.url).send(delivery(subject="Hello\r\nBcc: victim@example.org", in_reply_to="<a@b>\nX-Evil: 1"))

    message = only(server)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert message["Subject"] == "Hello Bcc: victim@example.org"
    assert server.received[0].rcpt_tos == (CUSTOMER,)


def test_a_recipient_that_is_not_an_address_is_permanent(server: LocalSmtpServer) -> None:
    with pytest.raises(PermanentSendError, match="not an email address"):
        sender(server.url).send(delivery().model_copy(update={"recipient": "jane"}))
    assert server.received == []


# --- refusals -----------------------------------------------------------------------------------------------


def test_a_451_reply_to_data_is_transient(server: LocalSmtpServer) -> None:
    server.script_reply("451 4.3.0 try later")
    with pytest.raises(TransientSendError) as caught:
        sender(server.url).send(delivery())
    assert caught.value.status == 451
    assert "try later" in caught.value.message
    sender(server.url).send(delivery())  # the retry goes through
    assert len(server.messages) == 1


def test_a_550_reply_to_data_is_permanent_with_the_server_text(server: LocalSmtpServer) -> None:
    server.script_reply("550 5.1.1 no such user")
    with pytest.raises(PermanentSendError) as caught:
        sender(server.url).send(delivery())
    assert caught.value.status == 550
    assert "550 5.1.1 no such user" in caught.value.message


def test_a_refused_recipient_is_permanent_and_greylisting_is_transient(server: LocalSmtpServer) -> None:
    server.script_reply("550 5.1.1 <jane.doe@example.net>: no such user", stage="RCPT")
    with pytest.raises(PermanentSendError) as refused:
        sender(server.url).send(delivery())
    assert refused.value.status == 550 and "no such user" in refused.value.message

    server.script_reply("450 4.2.0 greylisted, come back later", stage="RCPT")
    with pytest.raises(TransientSendError) as greylisted:
        sender(server.url).send(delivery())
    assert greylisted.value.status == 450 and "greylisted" in greylisted.value.message
    assert server.received == []


# --- login --------------------------------------------------------------------------------------------------


def test_the_login_from_the_url_is_used() -> None:
    with LocalSmtpServer(auth=("shop@example.com", SECRET)) as server:
        assert "%40" in server.url  # the test server's URL percent-encodes the login
        sender(server.url).send(delivery())
        assert server.received[0].login == "shop@example.com"
        assert server.failed_logins == []


def test_a_refused_login_is_permanent_names_the_setting_and_hides_the_password() -> None:
    with LocalSmtpServer(auth=("shop", "right-password")) as server:
        url = server.url.replace("right-password", "wrong-password")
        with pytest.raises(PermanentSendError) as caught:
            sender(url).send(delivery())
        assert "SMTP login refused" in caught.value.message
        assert "THREADLINE_SMTP_URL" in caught.value.message
        assert caught.value.status == 535
        assert "wrong-password" not in str(caught.value) and "right-password" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__context__ is not None  # suppressed, not chained
        assert set(server.failed_logins) == {"shop"}  # smtplib tries PLAIN, then LOGIN
        assert server.received == []


def test_a_server_that_requires_login_refuses_a_url_without_one() -> None:
    with LocalSmtpServer(auth=("shop", "pw")) as server:
        anonymous = server.url.replace("shop:pw@", "")
        with pytest.raises(PermanentSendError) as caught:
            sender(anonymous).send(delivery())
        assert caught.value.status == 530
        assert "THREADLINE_SMTP_URL" in caught.value.message


# --- TLS ----------------------------------------------------------------------------------------------------


def test_starttls_is_used_when_the_server_offers_it(tmp_path: Path) -> None:
    server_tls, client_tls = tls_contexts(tmp_path)
    with LocalSmtpServer(starttls=server_tls, auth=("shop", "pw")) as server:
        sender(server.url, ssl_context=client_tls).send(delivery())
        assert server.received[0].tls
        assert server.received[0].login == "shop"


def test_starttls_offered_with_an_untrusted_certificate_is_permanent(tmp_path: Path) -> None:
    server_tls, _ = tls_contexts(tmp_path)
    with LocalSmtpServer(starttls=server_tls) as server:
        with pytest.raises(PermanentSendError, match="certificate did not verify"):
            sender(server.url).send(delivery())  # the system trust store does not know the test certificate
        assert server.received == []


def test_plain_text_when_starttls_is_not_offered_unless_required(server: LocalSmtpServer) -> None:
    sender(server.url).send(delivery())
    assert server.received[0].tls is False

    with pytest.raises(PermanentSendError, match="does not offer STARTTLS"):
        sender(server.url + "?starttls=required").send(delivery())
    assert len(server.received) == 1


def test_smtps_speaks_tls_from_the_start(tmp_path: Path) -> None:
    server_tls, client_tls = tls_contexts(tmp_path)
    with LocalSmtpServer(implicit_tls=server_tls) as server:
        assert server.url.startswith("smtps://")
        sender(server.url, ssl_context=client_tls).send(delivery())
        assert server.received[0].tls
        assert only(server)["Subject"] == "Re: Where is my order?"


# --- the network --------------------------------------------------------------------------------------------


def test_a_closed_port_is_transient() -> None:
    with pytest.raises(TransientSendError, match="ConnectionRefusedError"):
        sender(f"smtp://user:hunter2@127.0.0.1:{closed_port()}").send(delivery())


def test_a_server_that_never_greets_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever says 220
        port = silent.getsockname()[1]
        with pytest.raises(TransientSendError, match=r"did not answer within 0\.3 s"):
            sender(f"smtp://127.0.0.1:{port}", timeout_s=0.3).send(delivery())


def _one_shot_server(reply: bytes) -> tuple[socket.socket, threading.Thread]:
    """A listener that answers one connection with `reply` and hangs up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize(
    ("greeting", "error"),
    [
        (b"421 4.3.2 mx.test.invalid busy, try again\r\n", TransientSendError),
        (b"554 5.7.1 no SMTP service here\r\n", PermanentSendError),
        (b"", TransientSendError),  # hung up before greeting
    ],
)
def test_a_refusing_or_vanishing_greeting(greeting: bytes, error: type[Exception]) -> None:
    listener, thread = _one_shot_server(greeting)
    with listener, pytest.raises(error):
        sender(f"smtp://127.0.0.1:{listener.getsockname()[1]}").send(delivery())
    thread.join(timeout=2)
