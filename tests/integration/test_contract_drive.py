"""Drive executor against the Drive stand-in: real aiohttp + google-auth, real HTTP on 127.0.0.1.

The service-account key is generated for the test; its token_uri points at the Google token
stand-in, so google-auth's own token request is exercised too.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.config import Settings, load_settings
from executors.base import JSON, AuthError, PermanentError, PlatformDisabled
from executors.drive import DriveExecutor, build
from executors.google_auth import DRIVE_SCOPES, TokenSource, load_credentials
from executors.sandbox.drive import FOLDER_MIME, SANDBOX_FOLDER_ID, DriveStandIn
from executors.sandbox.google import (
    GoogleTokenStandIn,
    make_service_account_key,
    start_google_standins,
)
from executors.sheets import build as build_sheets
from tests.integration.contract import (
    SLOW_TIMEOUT,
    ContractSuite,
    CountingThrottle,
    Op,
    Platform,
    pytest_generate_tests,
)

__all__ = ["pytest_generate_tests"]
RESULT = ("file_id", "web_view_link")


@functools.cache
def _shared_key() -> JSON:
    """One RSA key for the module: generating one takes a few hundred milliseconds."""
    return make_service_account_key("http://127.0.0.1:9/token")


def _key(tokens: GoogleTokenStandIn) -> JSON:
    return tokens.add_key(_shared_key())


def _settings(tokens: GoogleTokenStandIn, drive: DriveStandIn, **extra: Any) -> Settings:
    return load_settings(
        _env_file=None,
        google_service_account_key=json.dumps(_key(tokens)),
        google_drive_api_url=drive.base_url,
        drive_folder_id=SANDBOX_FOLDER_ID,
        drive_share_with="team@example.com",
        **extra,
    )


def _seed_file(drive: DriveStandIn, name: str = "seed.txt") -> str:
    file_id = f"seed-{len(drive.files)}"
    drive.files[file_id] = {
        "id": file_id,
        "name": name,
        "mimeType": "text/plain",
        "parents": [SANDBOX_FOLDER_ID],
        "webViewLink": f"https://drive.google.com/file/d/{file_id}/view",
        "permissions": [],
        "content": "",
    }
    return file_id


def _gone(key: str = "file_id") -> Any:
    def check(drive: DriveStandIn, data: JSON, result: JSON) -> None:
        assert result[key] not in drive.files

    return check


def _uploaded(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    stored = drive.files[result["file_id"]]
    assert stored["parents"] == [SANDBOX_FOLDER_ID]
    assert stored["mimeType"] == "text/csv"
    assert drive.content(result["file_id"]) == b"a,b\n1,2\n"


def _folder(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    assert drive.files[result["file_id"]]["mimeType"] == FOLDER_MIME
    assert drive.files[result["file_id"]]["name"] == "Invoices"


def _organized(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    inside = drive.children(result["folder_id"])
    assert sorted(f["name"] for f in inside) == ["a.txt", "b.bin"]
    assert [f["web_view_link"] for f in result["files"]] == [
        drive.files[f["file_id"]]["webViewLink"] for f in result["files"]
    ]
    assert drive.content(result["files"][1]["file_id"]) == b"\x00\x01"


def _organize_undone(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    assert result["folder_id"] not in drive.files
    assert all(f["file_id"] not in drive.files for f in result["files"])


def _shared(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    [permission] = drive.files[data["file_id"]]["permissions"]
    assert permission["emailAddress"] == "team@example.com"
    assert permission["role"] == "writer"
    assert permission["id"] == result["permission_id"]


def _unshared(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    assert drive.files[data["file_id"]]["permissions"] == []


def _linked(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    assert result["web_view_link"] == drive.files[data["file_id"]]["webViewLink"]


def _unchanged(drive: DriveStandIn, data: JSON, result: JSON) -> None:
    assert data["file_id"] in drive.files


CASES = [
    Op(
        "upload_file",
        setup=lambda d: {"name": "r.csv", "content": "a,b\n1,2\n", "mime_type": "text/csv"},
        done=_uploaded,
        undone=_gone(),
        result_keys=RESULT,
        required=("name", "content"),
    ),
    Op(
        "create_folder",
        setup=lambda d: {"name": "Invoices"},
        done=_folder,
        undone=_gone(),
        result_keys=RESULT,
        required=("name",),
    ),
    Op(
        "organize_attachments",
        setup=lambda d: {
            "folder_name": "Bug 42",
            "files": [
                {"name": "a.txt", "content": "log"},
                {
                    "name": "b.bin",
                    "content": base64.b64encode(b"\x00\x01").decode(),
                    "encoding": "base64",
                    "mime_type": "application/octet-stream",
                },
            ],
        },
        done=_organized,
        undone=_organize_undone,
        result_keys=(*RESULT, "folder_id", "files"),
        required=("folder_name", "files"),
    ),
    Op(
        "share",
        setup=lambda d: {"file_id": _seed_file(d), "role": "writer"},
        done=_shared,
        undone=_unshared,
        result_keys=("file_id", "permission_id"),
        required=("file_id",),
    ),
    Op(
        "get_link",
        setup=lambda d: {"file_id": _seed_file(d)},
        done=_linked,
        undone=_unchanged,
        result_keys=RESULT,
        required=("file_id",),
    ),
]


@pytest.fixture
async def tokens() -> AsyncIterator[GoogleTokenStandIn]:
    server = GoogleTokenStandIn()
    async with server:
        yield server


@pytest.fixture
async def drive(tokens: GoogleTokenStandIn) -> AsyncIterator[DriveStandIn]:
    server = DriveStandIn(tokens)
    async with server:
        yield server


def _executor(settings: Settings, throttle: CountingThrottle) -> DriveExecutor:
    credentials = load_credentials(settings.google_service_account_key, DRIVE_SCOPES)
    tokens = TokenSource(credentials, platform="drive", timeout=SLOW_TIMEOUT)
    return DriveExecutor(settings, tokens, throttle, timeout=SLOW_TIMEOUT)


class TestDriveContract(ContractSuite):
    CASES = CASES

    @pytest.fixture
    async def platform(
        self, tokens: GoogleTokenStandIn, drive: DriveStandIn
    ) -> AsyncIterator[Platform]:
        throttle = CountingThrottle()
        executor = _executor(_settings(tokens, drive), throttle)
        yield Platform(executor, drive, throttle)
        await executor.aclose()


async def test_token_comes_from_the_key_token_uri_and_is_reused(
    tokens: GoogleTokenStandIn, drive: DriveStandIn
) -> None:
    executor = _executor(_settings(tokens, drive), CountingThrottle())
    try:
        await executor.operations["create_folder"]({"name": "one"})
        await executor.operations["create_folder"]({"name": "two"})
    finally:
        await executor.aclose()
    assert len(tokens.stats.calls("POST", "/token")) == 1
    assert len(drive.children(SANDBOX_FOLDER_ID)) == 2


async def test_401_forgets_the_token_and_the_next_attempt_gets_a_new_one(
    tokens: GoogleTokenStandIn, drive: DriveStandIn
) -> None:
    executor = _executor(_settings(tokens, drive), CountingThrottle())
    try:
        await executor.operations["create_folder"]({"name": "one"})
        tokens.revoke_all()
        with pytest.raises(AuthError):
            await executor.operations["create_folder"]({"name": "two"})
        await executor.operations["create_folder"]({"name": "three"})
    finally:
        await executor.aclose()
    assert len(tokens.stats.calls("POST", "/token")) == 2
    assert sorted(f["name"] for f in drive.children(SANDBOX_FOLDER_ID)) == ["one", "three"]


async def test_a_key_the_token_endpoint_does_not_know_is_an_auth_error(
    tokens: GoogleTokenStandIn, drive: DriveStandIn
) -> None:
    key = _key(tokens)
    other = GoogleTokenStandIn()
    async with other:
        stranger = {**other.service_account_key(), "token_uri": key["token_uri"]}
    settings = _settings(tokens, drive).model_copy(
        update={"google_service_account_key": json.dumps(stranger)}
    )
    executor = _executor(settings, CountingThrottle())
    try:
        with pytest.raises(AuthError):
            await executor.operations["create_folder"]({"name": "x"})
    finally:
        await executor.aclose()
    assert drive.stats.calls() == []


async def test_partial_organize_leaves_nothing_behind(
    tokens: GoogleTokenStandIn, drive: DriveStandIn
) -> None:
    executor = _executor(_settings(tokens, drive), CountingThrottle())
    drive.faults.set("503", path="/upload/", count=10)
    data = {"folder_name": "half", "files": [{"name": "a", "content": "x"}]}
    try:
        with pytest.raises(Exception, match="injected"):
            await executor.operations["organize_attachments"](data)
    finally:
        await executor.aclose()
    assert drive.children(SANDBOX_FOLDER_ID) == []


async def test_share_with_a_domain_and_bad_content_is_refused(
    tokens: GoogleTokenStandIn, drive: DriveStandIn
) -> None:
    executor = _executor(_settings(tokens, drive), CountingThrottle())
    file_id = _seed_file(drive)
    try:
        result = await executor.operations["share"]({"file_id": file_id, "domain": "example.com"})
        with pytest.raises(PermanentError, match="base64"):
            await executor.operations["upload_file"](
                {"name": "x", "content": "not base64!", "encoding": "base64"}
            )
    finally:
        await executor.aclose()
    assert result["type"] == "domain"
    assert drive.files[file_id]["permissions"][0]["domain"] == "example.com"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "GOOGLE_SERVICE_ACCOUNT_KEY is not set"),
        ("/nonexistent/key.json", "cannot read key file"),
        ('{"type": "service_account"}', "lacks client_email, private_key, token_uri"),
    ],
)
def test_build_disables_the_platform_without_a_usable_key(key: str | None, reason: str) -> None:
    settings = load_settings(_env_file=None, google_service_account_key=key)
    with pytest.raises(PlatformDisabled, match=reason):
        build(settings, CountingThrottle())


async def test_build_reads_a_key_file(
    tokens: GoogleTokenStandIn, drive: DriveStandIn, tmp_path: Any
) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(_key(tokens)))
    settings = _settings(tokens, drive).model_copy(update={"google_service_account_key": str(path)})
    executor = build(settings, CountingThrottle())
    try:
        assert (await executor.check()).ok
    finally:
        await executor.aclose()


async def test_sandbox_google_standins_keep_files_rows_and_key_across_a_restart(
    tmp_path: Any,
) -> None:
    google = await start_google_standins(tmp_path, {"drive": (1000, 100.0)})
    try:
        settings = load_settings(_env_file=None, **google.settings())
        drive = build(settings, CountingThrottle())
        sheets = build_sheets(settings, CountingThrottle())
        uploaded = await drive.operations["upload_file"]({"name": "n.txt", "content": "hi"})
        await sheets.operations["log_action"]({"action_id": "a1", "status": "succeeded"})
        await drive.aclose()
        await sheets.aclose()
    finally:
        await google.stop()
    again = await start_google_standins(tmp_path)
    try:
        assert again.key["private_key_id"] == google.key["private_key_id"]
        assert again.drive.content(uploaded["file_id"]) == b"hi"
        assert again.sheets.rows("Actions")[1][1] == "a1"
        settings = load_settings(_env_file=None, **again.settings())
        drive = build(settings, CountingThrottle())
        assert (await drive.check()).ok
        await drive.aclose()
    finally:
        await again.stop()
