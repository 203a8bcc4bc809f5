"""The labelling page in a real headless browser (Debian's chromium + chromium-driver, driven by selenium): label
pairs by clicking and by keyboard, skip, undo, then train a reward model on the file and use it as an env reward.

Needs `apt install chromium chromium-driver` (scripts/setup-system.sh installs them) and `pip install selenium`
(in the dev extra). Skipped where they are missing, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from textgym.feedback.app import Server, create_app
from textgym.feedback.items import Item
from textgym.feedback.session import LabelSession
from textgym.feedback.store import JudgementStore
from textgym.rewards import preference

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromium-driver", CHROMEDRIVER)) if not path]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ModuleNotFoundError:
        missing.append("selenium (pip)")
    if missing:
        message = f"the browser test needs {', '.join(missing)}: bash scripts/setup-system.sh; pip install selenium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_label_in_a_browser_then_train_and_use_the_reward_model(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    # fresh (chosen) vs rotten critic snippets, real ones, of 12 different films
    fresh = {p["prompt"]: p["chosen"] for p in reversed(preference.load_pairs(preference.demo_data_path("rt")))}
    pairs = [p for p in preference.load_pairs(preference.demo_data_path("rt")) if fresh[p["prompt"]] == p["chosen"]]
    pairs = pairs[:12]
    session = LabelSession(  # the shipped fresh-vs-rotten model's agreement with the labels shows in the page
        [Item(p["prompt"], (p["chosen"], p["rejected"])) for p in pairs],
        JudgementStore(tmp_path / "prefs.jsonl", "pairs"),
        reward_model=preference.PreferenceReward("rt"),
    )
    server = Server(create_app(session))
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 30)

        def text(element_id: str) -> str:
            return browser.find_element(By.ID, element_id).text

        def wait_for_labelled(n: int) -> None:
            wait.until(lambda _: text("progress").startswith(f"{n} labelled"))

        def shown_prompt() -> str:
            wait.until(lambda _: text("prompt"))
            return text("prompt")

        def fresh_side() -> str:
            """`left` or `right`: the side showing the fresh snippet (the person's choice here)."""
            return "left" if text("text-left") == fresh[shown_prompt()] else "right"

        wait_for_labelled(0)
        for n in range(1, 6):  # five by clicking
            browser.find_element(By.ID, fresh_side()).click()
            wait_for_labelled(n)
        body = browser.find_element(By.TAG_NAME, "body")
        keys = {"left": ["1", Keys.ARROW_LEFT], "right": ["2", Keys.ARROW_RIGHT]}
        for n in range(6, 11):  # five by keyboard, digits and arrows
            body.send_keys(keys[fresh_side()][n % 2])
            wait_for_labelled(n)
        skipped = shown_prompt()
        body.send_keys("s")  # skip: another pair comes
        wait.until(lambda _: text("prompt") != skipped)
        last = shown_prompt()
        body.send_keys("2" if fresh_side() == "left" else "1")  # a wrong choice...
        wait_for_labelled(11)
        body.send_keys("u")  # ...undone: the same pair comes back, and the file forgets it
        wait_for_labelled(10)
        assert shown_prompt() == last and "Undone" in text("status")
        assert "agreement with the reward model" in text("progress")
        browser.save_screenshot(str(tmp_path / "label.png"))
        if os.environ.get("TEXTGYM_SCREENSHOT"):  # docs/label.png is made this way
            browser.save_screenshot(os.environ["TEXTGYM_SCREENSHOT"])
    finally:
        server.stop()

    rows = preference.load_pairs(tmp_path / "prefs.jsonl")
    assert len(rows) == 10 and all(r["chosen"] == fresh[r["prompt"]] for r in rows)
    assert skipped not in {r["prompt"] for r in rows} and last not in {r["prompt"] for r in rows}
    assert (tmp_path / "label.png").stat().st_size > 10_000

    artifact = preference.train(rows, hidden=0, progress=False)
    preference.save(artifact, tmp_path / "rm.pt")
    assert artifact["n_train"] + artifact["n_held_out"] == 10
    _env_reward_is_the_model(tmp_path / "rm.pt")


def _env_reward_is_the_model(model: Path) -> None:
    import gymnasium as gym

    import textgym  # noqa: F401

    env = gym.make("TextGen-Sentiment-v0", reward="preference", reward_kwargs={"model": str(model)})
    env.reset(seed=0)
    env.action_space.seed(0)
    terminated = truncated = False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    expected = preference.PreferenceReward(str(model))([info["prompt"]], [info["completion"]])[0]
    assert reward == pytest.approx(expected, abs=1e-5)


def test_rate_in_a_browser_by_click_and_key(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    items = [Item("Say something nice:", (text,)) for text in ("Lovely!", "Meh.", "Awful.", "Fine.")]
    session = LabelSession(items, JudgementStore(tmp_path / "ratings.jsonl", "ratings"), rating_scale=5)
    server = Server(create_app(session))
    given: dict[str, int] = {}
    try:
        browser.get(server.url)
        wait = WebDriverWait(browser, 30)
        progress = lambda: browser.find_element(By.ID, "progress").text  # noqa: E731
        wait.until(lambda _: progress().startswith("0 labelled"))
        assert not browser.find_element(By.ID, "right").is_displayed()  # one completion, five rating buttons
        for n, rating in enumerate((5, 2, 1, 4), 1):
            shown = browser.find_element(By.ID, "text-left").text
            if n % 2:
                browser.find_element(By.ID, f"rate-{rating}").click()
            else:
                browser.find_element(By.TAG_NAME, "body").send_keys(str(rating))
            given[shown] = rating
            wait.until(lambda _, n=n: progress().startswith(f"{n} labelled"))
        wait.until(lambda _: browser.find_element(By.ID, "done").is_displayed())
    finally:
        server.stop()
    rows = preference.load_ratings(tmp_path / "ratings.jsonl")
    assert {r["completion"]: r["rating"] for r in rows} == given


def test_two_tabs_labelling_at_once_lose_and_duplicate_nothing(browser, tmp_path):
    """Two tabs on one server, clicking in turn until everything is labelled. With leases they are shown different
    items; with no lease (lease_s=0) both show the same item, the second tab's judgement of it is refused ("already
    judged") and that tab moves on. Either way each item is judged exactly once."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    items = [Item(f"Prompt {i}:", (f"left text {i}", f"right text {i}")) for i in range(6)]
    for lease_s in (300.0, 0.0):
        store = JudgementStore(tmp_path / f"prefs{lease_s}.jsonl", "pairs")
        session = LabelSession(items, store, lease_s=lease_s)
        server = Server(create_app(session))
        refused = 0
        try:
            tabs = []
            for _ in range(2):
                if tabs:
                    browser.switch_to.new_window("tab")
                browser.get(server.url)
                tabs.append(browser.current_window_handle)
            wait = WebDriverWait(browser, 30)
            shown = []
            for tab in tabs:
                browser.switch_to.window(tab)
                wait.until(lambda _: browser.find_element(By.ID, "prompt").text)
                shown.append(browser.find_element(By.ID, "prompt").text)
            assert (shown[0] == shown[1]) == (lease_s == 0.0)
            for turn in range(30):
                if session.progress()["remaining"] == 0:
                    break
                browser.switch_to.window(tabs[turn % 2])
                if browser.find_element(By.ID, "done").is_displayed():
                    continue
                prompt = browser.find_element(By.ID, "prompt").text
                browser.find_element(By.ID, "left").click()
                # the page answers by showing another item (or the end)
                wait.until(
                    lambda _, prompt=prompt: (
                        browser.find_element(By.ID, "done").is_displayed()
                        or browser.find_element(By.ID, "prompt").text != prompt
                        or "Not saved" in browser.find_element(By.ID, "status").text
                    )
                )
                refused += "already judged" in browser.find_element(By.ID, "status").text
            browser.switch_to.window(tabs[1])
            browser.close()
            browser.switch_to.window(tabs[0])
        finally:
            server.stop()
        rows = preference.load_pairs(store.path)
        assert sorted(r["prompt"] for r in rows) == [i.prompt for i in items]  # each exactly once
        assert (refused > 0) == (lease_s == 0.0)
