"""Human feedback: items, the judgement store, the labelling session, its web app and the scripted annotator."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from textgym.feedback.app import Server, create_app, page_html
from textgym.feedback.items import Item, item_id, load_items
from textgym.feedback.session import LabelSession, UnknownItem
from textgym.feedback.simulate import SimulatedAnnotator
from textgym.feedback.store import DuplicateJudgement, JudgementStore
from textgym.rewards.preference import load_pairs, load_ratings


def length_reward(prompts: list[str], completions: list[str], **info: object) -> list[float]:
    """A stand-in taste: longer is better."""
    return [float(len(c)) for c in completions]


def pair_items(n: int) -> list[Item]:
    return [Item(f"prompt {i}", (f"short {i}", f"a much longer completion {i}")) for i in range(n)]


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# -- items -----------------------------------------------------------------------------------------------


def test_items_from_every_row_format(tmp_path):
    path = write_jsonl(
        tmp_path / "items.jsonl",
        [
            {"prompt": "A", "completions": ["a1", "a2", "a3"]},
            {"prompt": "B", "completion": "b1", "score": 0.5},  # a rollout file's rows
            {"prompt": "B", "completion": "b2"},
            {"prompt": "B", "completion": "b1"},  # a duplicate is dropped
            {"prompt": "C", "chosen": "c1", "rejected": "c2"},  # a preference file, labelled again
        ],
    )
    pairs = [(i.prompt, i.completions) for i in load_items(path, "pairs")]
    assert pairs == [("A", ("a1", "a2")), ("B", ("b1", "b2")), ("C", ("c1", "c2"))]  # a3 has no partner
    ratings = [(i.prompt, i.completions) for i in load_items(path, "ratings")]
    assert len(ratings) == 7 and ("A", ("a3",)) in ratings


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "items\\.jsonl:2: not valid JSON"),
        ('{"prompt": "x"}', 'items\\.jsonl:2: expected a JSON object with a string "prompt"'),
        ('{"prompt": "x", "completions": "one"}', "items\\.jsonl:2: expected"),
        ('{"prompt": 3, "completion": "c"}', "items\\.jsonl:2: expected"),
    ],
)
def test_a_malformed_items_file_names_the_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "items.jsonl", [{"prompt": "p", "completions": ["a", "b"]}, line])
    with pytest.raises(ValueError, match=message):
        load_items(path, "pairs")


def test_items_errors(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "p", "completion": "only one"}])
    with pytest.raises(ValueError, match="no pairs to label"):
        load_items(path, "pairs")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_items(tmp_path / "missing.jsonl", "pairs")
    with pytest.raises(ValueError, match="unknown labelling mode 'stars'"):
        load_items(path, "stars")


# -- store -----------------------------------------------------------------------------------------------


def test_store_writes_what_the_reward_trainer_reads_and_resumes(tmp_path):
    path = tmp_path / "prefs.jsonl"
    store = JudgementStore(path, "pairs")
    store.add_pair("p", chosen="good", rejected="bad", annotator="ann")
    with pytest.raises(DuplicateJudgement, match="already judged"):
        store.add_pair("p", chosen="bad", rejected="good", annotator="ann")  # the same pair, either way round
    assert load_pairs(path) == [{"prompt": "p", "chosen": "good", "rejected": "bad"}]
    again = JudgementStore(path, "pairs")  # a new session on the same file
    assert again.labelled_ids() == {item_id("p", ["good", "bad"])}
    assert again.remove(item_id("p", ["good", "bad"])) and path.read_text() == ""
    assert not again.remove("nothing")

    ratings = JudgementStore(tmp_path / "ratings.jsonl", "ratings")
    ratings.add_rating("p", "text", 4, annotator="ann")
    assert load_ratings(ratings.path) == [{"prompt": "p", "completion": "text", "rating": 4.0}]


def test_store_refuses_a_broken_or_other_mode_file(tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}, '{"prompt": "q"}'])
    with pytest.raises(ValueError, match=r"prefs\.jsonl:2"):
        JudgementStore(path, "pairs")
    with pytest.raises(ValueError, match="holds pair judgements, not ratings"):
        JudgementStore(write_jsonl(path, [{"prompt": "p", "chosen": "a", "rejected": "b"}]), "ratings")


def _label_in_process(path: str, start: int) -> None:
    store = JudgementStore(path, "pairs")
    for i in range(start, start + 15):
        store.add_pair(f"p{i}", chosen="a", rejected="b", annotator=f"process {start}")


def test_two_processes_writing_one_file_lose_nothing(tmp_path):
    path = str(tmp_path / "prefs.jsonl")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_label_in_process, args=(path, start)) for start in (0, 100)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    assert sorted(p["prompt"] for p in load_pairs(path)) == sorted(f"p{i}" for i in [*range(15), *range(100, 115)])


# -- session ---------------------------------------------------------------------------------------------


def test_session_queue_leases_skips_and_undo(tmp_path):
    items = pair_items(3)
    session = LabelSession(items, JudgementStore(tmp_path / "prefs.jsonl", "pairs"))
    first, second = session.next_item(), session.next_item()  # two tabs: two different items
    assert first["id"] != second["id"]
    session.skip(first["id"])  # to the back of the queue
    third = session.next_item()
    assert third["id"] not in (first["id"], second["id"])
    # the display order is shuffled per item; choice is an index into the item, whatever the side
    shown = third["completions"]
    progress = session.judge(third["id"], choice=shown[1]["index"])
    assert progress == {"labelled": 1, "total": 3, "remaining": 2, "agreement": None, "agreement_n": 0}
    assert session.store.rows()[0]["chosen"] == shown[1]["text"]
    assert session.undo() == third["id"] and session.store.rows() == []
    assert session.next_item()["id"] == third["id"]  # the undone item comes first
    assert session.undo() is None


def test_session_rejects_bad_judgements(tmp_path):
    session = LabelSession(pair_items(2), JudgementStore(tmp_path / "prefs.jsonl", "pairs"))
    item = session.next_item()["id"]
    for bad in (2, -1, None, True, 0.0, "0"):
        with pytest.raises(ValueError, match="choice must be 0 or 1"):
            session.judge(item, choice=bad)
    with pytest.raises(UnknownItem, match="no item 'nope'"):
        session.judge("nope", choice=0)
    session.judge(item, choice=0)
    with pytest.raises(DuplicateJudgement):
        session.judge(item, choice=1)
    rate = LabelSession([Item("p", ("c",))], JudgementStore(tmp_path / "ratings.jsonl", "ratings"), rating_scale=5)
    for bad in (0, 6, 2.5, None):
        with pytest.raises(ValueError, match="rating must be a whole number from 1 to 5"):
            rate.judge(Item("p", ("c",)).id, rating=bad)
    with pytest.raises(ValueError, match="pairs need 2 completion"):
        LabelSession([Item("p", ("c",))], JudgementStore(tmp_path / "other.jsonl", "pairs"))


def test_session_resumes_and_reports_agreement_with_a_reward_model(tmp_path):
    path = tmp_path / "prefs.jsonl"
    items = pair_items(4)
    session = LabelSession(items, JudgementStore(path, "pairs"), reward_model=length_reward)
    for _ in range(3):
        shown = session.next_item()
        longer = max(shown["completions"], key=lambda c: len(c["text"]))
        shorter = min(shown["completions"], key=lambda c: len(c["text"]))
        progress = session.judge(shown["id"], choice=(longer if _ < 2 else shorter)["index"])
    assert progress["agreement"] == pytest.approx(2 / 3) and progress["agreement_n"] == 3
    resumed = LabelSession(items, JudgementStore(path, "pairs"))  # a new session skips what is labelled
    assert resumed.progress()["remaining"] == 1
    assert resumed.next_item()["id"] not in {row_id for row_id in JudgementStore(path, "pairs").labelled_ids()}


def test_ratings_agreement_is_rank_correlation(tmp_path):
    items = [Item("p", ("x" * n,)) for n in (1, 5, 9)]
    session = LabelSession(items, JudgementStore(tmp_path / "r.jsonl", "ratings"), reward_model=length_reward)
    for item, rating in zip(items, (1, 3, 5), strict=True):
        progress = session.judge(item.id, rating=rating)
    assert progress["agreement"] == pytest.approx(1.0)


# -- the web app -----------------------------------------------------------------------------------------


def test_app_endpoints_and_errors(tmp_path):
    session = LabelSession(pair_items(2), JudgementStore(tmp_path / "prefs.jsonl", "pairs"))
    client = create_app(session).test_client()
    assert client.get("/api/config").get_json() == {"mode": "pairs", "rating_scale": 5, "total": 2}
    item = client.get("/api/next").get_json()["item"]
    assert client.post("/api/judge", json={"item": item["id"], "choice": 7}).status_code == 400
    assert client.post("/api/judge", data="not json").status_code == 400
    assert client.post("/api/judge", json={"choice": 0}).status_code == 400
    missing = client.post("/api/judge", json={"item": "nope", "choice": 0})
    assert missing.status_code == 404 and "nope" in missing.get_json()["error"]
    assert client.post("/api/judge", json={"item": item["id"], "choice": 0}).status_code == 200
    assert client.post("/api/judge", json={"item": item["id"], "choice": 1}).status_code == 409
    assert client.post("/api/skip", json={"item": "nope"}).status_code == 404
    assert client.post("/api/undo", json={}).get_json()["undone"] == item["id"]
    assert client.get("/api/progress").get_json()["labelled"] == 0


def test_page_needs_no_internet():
    html = page_html()
    assert "<script>" in html and "<style>" in html
    assert "http://" not in html and "https://" not in html and " src=" not in html


def test_missing_flask_says_what_to_install(monkeypatch, tmp_path):
    from textgym.feedback.app import require_flask

    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'textgym\[feedback\]'"):
        require_flask()


def test_two_simulated_annotators_on_one_server_lose_and_duplicate_nothing(tmp_path):
    items = pair_items(24)
    session = LabelSession(items, JudgementStore(tmp_path / "prefs.jsonl", "pairs"))
    server = Server(create_app(session))
    try:
        annotators = [SimulatedAnnotator(server.url, length_reward) for _ in range(2)]
        counts: list[dict[str, int]] = []
        threads = [threading.Thread(target=lambda a=a: counts.append(a.label())) for a in annotators]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        server.stop()
    rows = load_pairs(session.store.path)
    assert sorted(r["prompt"] for r in rows) == sorted(i.prompt for i in items)  # each item exactly once
    assert all(r["chosen"].startswith("a much longer") for r in rows)  # judged by the annotator's taste
    assert sum(c["judged"] for c in counts) == 24 and all(c["judged"] > 0 for c in counts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_killing_the_server_mid_write_leaves_valid_jsonl(tmp_path):
    """SIGKILL the `textgym label` server while judgements stream in: the file is whole JSONL and holds every
    acknowledged judgement (at most the one being written is lost)."""
    data = tmp_path / "items.jsonl"
    write_jsonl(data, [{"prompt": i.prompt, "completions": list(i.completions)} for i in pair_items(400)])
    out, port = tmp_path / "prefs.jsonl", _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "textgym.cli", "label", "--data", str(data), "--out", str(out), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/api/config")
        acknowledged = 0
        annotator = SimulatedAnnotator(url, length_reward)

        def label() -> None:
            nonlocal acknowledged
            try:
                while True:
                    annotator.label(limit=1)
                    acknowledged += 1
            except OSError:  # the server is gone
                pass

        worker = threading.Thread(target=label)
        worker.start()
        while acknowledged < 30 and worker.is_alive():
            time.sleep(0.01)
        assert acknowledged >= 30, "the labeller stopped before the server was killed"
        os.kill(server.pid, signal.SIGKILL)
        worker.join(30)
    finally:
        server.kill()
        server.wait()
    rows = load_pairs(out)  # raises on a torn line
    assert acknowledged <= len(rows) <= acknowledged + 1


# -- reward models from ratings --------------------------------------------------------------------------


def test_rank_helpers_match_scipy():
    from scipy import stats

    from textgym.rewards.preference import average_ranks, concordance, spearman

    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    other = [2.0, 7.0, 1.0, 8.0, 2.0, 8.0, 1.0, 8.0, 2.0, 8.0]
    assert average_ranks(values) == stats.rankdata(values).tolist()
    assert spearman(values, other) == pytest.approx(stats.spearmanr(values, other).statistic)
    # concordance over pairs with different ratings = (1 + Kendall's tau-a over those pairs) / 2, no score ties
    scores, ratings = [0.3, 0.1, 0.9, 0.4, 0.7], [2, 1, 5, 3, 3]
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5) if ratings[i] != ratings[j]]
    tau = sum((scores[i] - scores[j]) * (ratings[i] - ratings[j]) > 0 for i, j in pairs) / len(pairs)
    assert concordance(scores, ratings) == pytest.approx(tau)


def test_reward_model_from_ratings_learns_real_sentiment(tmp_path, capsys):
    """Ratings of real critic snippets (fresh 4-5, rotten 1-2): the trained model ranks held-out snippets, is an
    env reward on the ratings' scale, and `textgym reward train` reads ratings files."""
    import random

    from textgym.cli import main
    from textgym.rewards.base import make_reward
    from textgym.rewards.preference import load, rt_pairs, train_ratings

    rng = random.Random(0)
    rows = []
    for pair in rt_pairs()[:300]:
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "rating": rng.choice([4, 5])})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "rating": rng.choice([1, 2])})
    artifact = train_ratings(rows, hidden=0, progress=False)  # a linear head: a few hundred ratings overfit an MLP
    assert artifact["kind"] == "ratings" and artifact["n_held_out"] >= 20
    assert artifact["held_out_correlation"] > 0.3 and artifact["held_out_accuracy"] > 0.65
    path = write_jsonl(tmp_path / "ratings.jsonl", rows)
    assert main(["reward", "train", "--data", str(path), "--hidden", "0", "--out", str(tmp_path / "rm.pt")]) == 0
    assert "held-out correlation with the ratings" in capsys.readouterr().out
    assert load(tmp_path / "rm.pt")["held_out_spearman"] == pytest.approx(artifact["held_out_spearman"])
    reward = make_reward("preference", model=str(tmp_path / "rm.pt"))
    good, bad = reward(["A critic's review of Heat:"] * 2, ["A gripping, superb thriller.", "Dull and lifeless."])
    assert good > bad and 0 < bad < good < 6  # the ratings' own scale
    assert main(["reward", "eval", "--model", str(tmp_path / "rm.pt"), "--data", str(path)]) == 0
    assert "held-out correlation" in capsys.readouterr().out


def test_a_bad_ratings_line_names_file_and_line(tmp_path, capsys):
    from textgym.cli import main

    path = write_jsonl(
        tmp_path / "r.jsonl",
        [{"prompt": "p", "completion": "c", "rating": 3}, '{"prompt": "p", "completion": "c", "rating": NaN}'],
    )
    assert main(["reward", "train", "--data", str(path), "--out", str(tmp_path / "rm.pt")]) == 2
    assert f"{path}:2: missing or invalid: rating" in capsys.readouterr().err


def test_label_command_reports_a_bad_items_file(tmp_path, capsys):
    from textgym.cli import main

    path = write_jsonl(tmp_path / "items.jsonl", ['{"prompt": "p"}'])
    assert main(["label", "--data", str(path), "--out", str(tmp_path / "prefs.jsonl")]) == 2
    assert f"{path}:1: expected a JSON object" in capsys.readouterr().err
    assert main(["label", "--out", str(tmp_path / "prefs.jsonl")]) == 2
    assert "needs --data FILE or --env ENV_ID" in capsys.readouterr().err


def test_items_sampled_live_from_a_model_and_from_a_run_folder(tmp_path):
    from agents import make_trainer
    from textgym.feedback.items import sample_items

    pairs = sample_items("TextGen-Reverse-v0", 5, "pairs", model="tiny", batch_size=4, device="cpu")
    assert len(pairs) == 5 and len({p.id for p in pairs}) == 5
    assert all(len(p.completions) == 2 and p.completions[0] != p.completions[1] for p in pairs)
    ratings = sample_items("TextGen-Reverse-v0", 3, "ratings", model="tiny", batch_size=4, device="cpu")
    assert [len(r.completions) for r in ratings] == [1, 1, 1]
    run = tmp_path / "run"  # a run folder with a checkpoint: a policy to sample from
    trainer = make_trainer("reinforce", model="tiny", env_id="TextGen-Reverse-v0", batch_size=4, run_dir=str(run))
    trainer.save(run / "checkpoint.safetensors")
    trainer.close()
    versus = sample_items("TextGen-Reverse-v0", 2, "pairs", model="tiny", model_b=str(tmp_path / "run"), device="cpu")
    assert len(versus) == 2
