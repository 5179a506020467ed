"""`connector notify test CHANNEL`: a sample message reaches the channel; a failing channel exits 1 with the error."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from tests.pipeline.test_notifications import Receiver


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "connector.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/state.db"\n\n[notifications]\nenabled = true\n\n'
                    f'[[notifications.channels]]\nname = "ops"\nurl = "{url}"\nsecret = "k"\non = ["routed"]\n')
    return str(path)


def test_notify_test_sends_a_sample_message(tmp_path: Path) -> None:
    receiver = Receiver()
    try:
        result = CliRunner().invoke(main, ["notify", "test", "ops", "--config", _config(tmp_path, receiver.url)])
        assert result.exit_code == 0, result.output
        [message] = receiver.messages()
        assert message["event"] == "test" and set(message) >= {"lead", "owner", "score", "grade", "reasons", "sla_due_at"}
        assert receiver.received[0][0]["x-connector-signature"].startswith("sha256=")
    finally:
        receiver.close()


def test_notify_test_exits_1_with_the_error_when_the_channel_fails(tmp_path: Path) -> None:
    receiver = Receiver(failures=1)
    try:
        result = CliRunner().invoke(main, ["notify", "test", "ops", "--config", _config(tmp_path, receiver.url)])
        assert result.exit_code == 1 and "HTTP 500" in result.output
        unknown = CliRunner().invoke(main, ["notify", "test", "nope", "--config", _config(tmp_path, receiver.url)])
        assert unknown.exit_code == 1 and "no channel named 'nope'" in unknown.output
    finally:
        receiver.close()


def test_notify_test_reaches_a_reps_email_through_smtp(tmp_path: Path) -> None:
    from connector.sandbox.receivers import SmtpReceiver

    with SmtpReceiver(user="connector", password="pw") as smtp:
        path = tmp_path / "connector.toml"
        path.write_text(f'[store]\nurl = "sqlite:///{tmp_path}/state.db"\n\n[notifications]\nenabled = true\n\n'
                        f'[[routing.reps]]\nemail = "ava@example.com"\nnotify = "{smtp.mailto_url("ava@example.com")}"\n')
        result = CliRunner().invoke(main, ["notify", "test", "rep:ava@example.com", "--config", str(path)])
        assert result.exit_code == 0, result.output
        [mail] = smtp.mails
        assert mail.rcpt_tos == ["ava@example.com"] and mail.subject == "Test message from the CRM lead connector"
        assert "Test Lead — Head of Testing, Example Inc." in mail.text and "Score 80 (hot)" in mail.text
