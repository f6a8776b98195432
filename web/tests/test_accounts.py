"""API keys through the real binary (`--auth on`): the `keys` commands, 401s on the API and the WebSocket, a key's
WebSocket hearing only of its own jobs, revocation at once."""

from __future__ import annotations

import json

import pytest
import urllib3
import websocket


def create_key(server, name: str, *flags: str) -> dict:
    return json.loads(server.keys("create", "--name", name, "--json", *flags))


def call(server, method: str, path: str, token: str | None = None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib3.request(method, server.url + path, headers=headers, timeout=30, retries=False, **kwargs)


def submit(server, token: str, media) -> str:
    fields = {
        "image": ("astronaut.png", (media / "astronaut.png").read_bytes()),
        "audio": ("speech-en.wav", (media / "speech-en.wav").read_bytes()),
    }
    answer = call(server, "POST", "api/generate", token, fields=fields)
    assert answer.status == 200, answer.data
    return json.loads(answer.data)["request_id"]


def socket(server, token: str | None):
    header = [f"Authorization: Bearer {token}"] if token else []
    return websocket.create_connection(server.url.replace("http://", "ws://") + "ws", header=header, timeout=120)


@pytest.fixture(scope="module")
def keys(auth_server) -> dict:
    return {name: create_key(auth_server, name) for name in ("alice", "bob")}


def test_keys_create_prints_the_token_once_and_list_never_shows_it(auth_server, keys):
    alice = keys["alice"]
    assert alice["key"].startswith("itk_") and len(alice["key"]) > 40
    assert alice["webhook_secret"].startswith("whsec_") and alice["role"] == "user"
    listed = json.loads(auth_server.keys("list", "--json"))
    assert {k["name"] for k in listed} >= {"alice", "bob"}
    assert all("key" not in k and "webhook_secret" not in k for k in listed)


def test_the_api_and_the_websocket_need_a_key(auth_server, keys):
    answer = call(auth_server, "GET", "api/requests")
    assert answer.status == 401 and json.loads(answer.data)["error"]["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        socket(auth_server, None)
    assert refused.value.status_code == 401
    assert call(auth_server, "GET", "api/requests", keys["alice"]["key"]).status == 200
    assert json.loads(call(auth_server, "GET", "api/config").data)["auth"]["enabled"] is True


def test_a_keys_websocket_hears_only_of_its_own_jobs(auth_server, keys, media):
    # Given Bob and Alice listening
    bob, alice = socket(auth_server, keys["bob"]["key"]), socket(auth_server, keys["alice"]["key"])
    try:
        for listener in (bob, alice):
            assert json.loads(listener.recv())["type"] == "queue_update"  # the snapshot
        # When Alice submits a job
        job = submit(auth_server, keys["alice"]["key"], media)
        # Then Alice hears of it; Bob hears only the queue's counts change, without her job's id
        while (message := json.loads(alice.recv()))["type"] != "status_update":
            pass
        assert message["request_id"] == job
        while (message := json.loads(bob.recv()))["type"] != "queue_update":
            assert message.get("request_id") != job, message
        assert job not in message["queued_ids"] + message["processing_ids"]
        # And her job does not exist for Bob
        assert call(auth_server, "GET", f"api/status/{job}", keys["bob"]["key"]).status == 404
        assert call(auth_server, "GET", f"api/status/{job}", keys["alice"]["key"]).status == 200
    finally:
        bob.close()
        alice.close()


def test_a_revoked_key_is_refused_from_the_next_request_on(auth_server):
    carol = create_key(auth_server, "carol")
    assert call(auth_server, "GET", "api/requests", carol["key"]).status == 200
    auth_server.keys("revoke", carol["id"])
    answer = call(auth_server, "GET", "api/requests", carol["key"])
    assert answer.status == 401 and "revoked" in json.loads(answer.data)["error"]["message"]


def test_the_page_asks_for_a_key_shows_only_its_jobs_and_says_when_it_was_revoked(auth_server, keys, browser, media):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    erin = create_key(auth_server, "erin")
    own = submit(auth_server, erin["key"], media)
    other = submit(auth_server, keys["bob"]["key"], media)
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)

    def sign_in_with(key: str) -> None:
        field = browser.find_element(By.ID, "key-input")
        field.clear()
        field.send_keys(key)
        browser.find_element(By.ID, "sign-in-button").click()

    # A browser without a key sees the sign-in card, not the page
    browser.delete_all_cookies()
    browser.get(auth_server.url)
    wait.until(lambda d: d.find_element(By.ID, "sign-in").is_displayed())
    assert not browser.find_element(By.ID, "main").is_displayed()
    # A wrong key is refused with the server's reason
    sign_in_with("itk_not_a_real_key")
    wait.until(lambda d: "not accepted" in d.find_element(By.ID, "sign-in-message").text)
    # The right key opens the page, which lists this key's job and not Bob's
    sign_in_with(erin["key"])
    wait.until(lambda d: d.execute_script("return document.documentElement.dataset.state") == "ready")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-request-id="{own}"]'))
    assert not browser.find_elements(By.CSS_SELECTOR, f'[data-request-id="{other}"]')
    assert browser.find_element(By.ID, "sign-out").is_displayed()
    # The key is kept across reloads
    browser.refresh()
    wait.until(lambda d: d.execute_script("return document.documentElement.dataset.state") == "ready")
    # Once revoked, the page says so and asks again
    auth_server.keys("revoke", erin["id"])
    browser.refresh()
    wait.until(lambda d: d.find_element(By.ID, "sign-in").is_displayed())
    assert "revoked" in browser.find_element(By.ID, "sign-in-message").text
    # Signing out forgets the key
    sign_in_with(keys["alice"]["key"])
    wait.until(lambda d: d.find_element(By.ID, "sign-out").is_displayed())
    browser.find_element(By.ID, "sign-out").click()
    wait.until(lambda d: d.find_element(By.ID, "sign-in").is_displayed())
    browser.delete_all_cookies()
