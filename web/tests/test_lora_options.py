"""The page's LoRA choice, against a service whose (fake) engine has a LoRA library of three files, the last made
for another model: the fitting ones can be chosen with a strength, the other is shown disabled with the reason,
and the choice reaches the job's params."""

from __future__ import annotations

import sys

import pytest
from conftest import REPO, Page, running_service
from selenium.webdriver.common.by import By

FAKE_ENGINE = REPO / "Tests" / "JobServiceTests" / "Fixtures" / "fake_engine.py"


@pytest.fixture(scope="module")
def lora_server(tmp_path_factory):
    command = f"{sys.executable} {FAKE_ENGINE} --loras anime,cartoon,huge"
    yield from running_service(tmp_path_factory, "lora-service", ("--engine-command", command))


def test_loras_are_chosen_with_a_strength_and_reach_the_job(lora_server, browser, media):
    page = Page(browser, lora_server)
    page.open()
    page.js("document.querySelector('details.advanced').open = true")
    page.wait_until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#loras-list .lora")) == 3)
    huge = page.driver.find_element(By.ID, "lora-huge")
    assert huge.get_attribute("disabled") is not None
    assert "other shapes" in page.driver.find_element(By.CSS_SELECTOR, "#loras-list .is-unfit").text
    # Choose one LoRA at strength 0.5
    page.driver.find_element(By.ID, "lora-anime").click()
    page.js(
        "const s = document.querySelector('#lora-anime').parentElement.querySelector('input[type=range]');"
        "s.value = '0.5'; s.dispatchEvent(new Event('input'));"
    )
    page.driver.find_element(By.ID, "image-input").send_keys(str(media / "astronaut.png"))
    page.driver.find_element(By.ID, "audio-input").send_keys(str(media / "speech-en.wav"))
    page.driver.find_element(By.ID, "submit-button").click()
    page.wait_until(lambda d: "queued" in d.find_element(By.ID, "submit-status").text, timeout=60)
    request_id = page.js("return document.querySelector('#jobs .job').dataset.requestId")
    params = lora_server.get_json(f"api/status/{request_id}")["params"]
    assert params["loras"] == [{"name": "anime", "scale": 0.5}]
    assert not page.console_errors()
