"""The labelling web app (Flask): one page, a small JSON API, served on localhost by default.

Endpoints (all JSON): ``GET /api/config`` (mode, rating scale), ``GET /api/next`` (the next item and the progress),
``POST /api/judge`` (``{"item", "choice"}`` for a pair, ``{"item", "rating"}`` for a rating), ``POST /api/skip``
(``{"item"}``), ``POST /api/undo``, ``GET /api/progress``. A bad request is a 400, an unknown item a 404 and a
judgement of an item already judged a 409, each with ``{"error": message}``. The page (``GET /``) needs no
internet: its style and script are inline.

Example:
    >>> import tempfile, pathlib
    >>> from textgym.feedback.items import Item
    >>> from textgym.feedback.session import LabelSession
    >>> from textgym.feedback.store import JudgementStore
    >>> store = JudgementStore(pathlib.Path(tempfile.mkdtemp()) / "prefs.jsonl", "pairs")
    >>> client = create_app(LabelSession([Item("Hi", ("Hello!", "Go away."))], store)).test_client()
    >>> item = client.get("/api/next").get_json()["item"]
    >>> client.post("/api/judge", json={"item": item["id"], "choice": 0}).get_json()["progress"]["labelled"]
    1
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import resources
from typing import Any

from textgym.feedback.session import LabelSession, UnknownItem
from textgym.feedback.store import DuplicateJudgement

FLASK_MISSING = "the labelling app needs Flask: pip install 'textgym[feedback]' (or pip install flask)"


def require_flask() -> Any:
    """The ``flask`` module, or a ``ModuleNotFoundError`` that says what to install."""
    try:
        import flask
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(FLASK_MISSING) from err
    return flask


def page_html() -> str:
    """The labelling page."""
    return resources.files("textgym.feedback").joinpath("label.html").read_text(encoding="utf-8")


def create_app(session: LabelSession) -> Any:
    """A Flask app serving ``session`` (see the module docs for the endpoints)."""
    flask = require_flask()
    app = flask.Flask("textgym.feedback")
    html = page_html()

    def error(message: str, status: int) -> Any:
        return flask.jsonify({"error": message}), status

    def handled(action: Callable[[dict[str, Any]], Any]) -> Callable[[], Any]:
        def view() -> Any:
            body = flask.request.get_json(silent=True) if flask.request.method == "POST" else {}
            if body is None or not isinstance(body, dict):
                return error("expected a JSON object body", 400)
            try:
                return flask.jsonify(action(body))
            except UnknownItem as err:
                return error(str(err.args[0]), 404)
            except DuplicateJudgement as err:
                return error(str(err), 409)
            except ValueError as err:
                return error(str(err), 400)

        view.__name__ = action.__name__
        return view

    def config(_: dict[str, Any]) -> dict[str, Any]:
        return {"mode": session.mode, "rating_scale": session.rating_scale, "total": len(session.items)}

    def next_item(_: dict[str, Any]) -> dict[str, Any]:
        return {"item": session.next_item(), "progress": session.progress()}

    def judge(body: dict[str, Any]) -> dict[str, Any]:
        return {"progress": session.judge(_item_of(body), choice=body.get("choice"), rating=body.get("rating"))}

    def skip(body: dict[str, Any]) -> dict[str, Any]:
        return {"progress": session.skip(_item_of(body))}

    def undo(_: dict[str, Any]) -> dict[str, Any]:
        return {"undone": session.undo(), "progress": session.progress()}

    def progress(_: dict[str, Any]) -> dict[str, Any]:
        return session.progress()

    app.add_url_rule("/", "page", lambda: flask.Response(html, mimetype="text/html"))
    app.add_url_rule("/api/config", "config", handled(config))
    app.add_url_rule("/api/next", "next", handled(next_item))
    app.add_url_rule("/api/progress", "progress", handled(progress))
    app.add_url_rule("/api/judge", "judge", handled(judge), methods=["POST"])
    app.add_url_rule("/api/skip", "skip", handled(skip), methods=["POST"])
    app.add_url_rule("/api/undo", "undo", handled(undo), methods=["POST"])
    return app


def _item_of(body: dict[str, Any]) -> str:
    item = body.get("item")
    if not isinstance(item, str):
        raise ValueError(f"expected the item id as a string under 'item', got {item!r}")
    return item


class Server:
    """The app on a background thread (werkzeug's threaded server): ``url``, ``stop()``; port 0 picks a free one.

    Example:
        >>> server = Server(app, port=0)  # doctest: +SKIP
        >>> server.url  # doctest: +SKIP
        'http://127.0.0.1:40321'
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request: a scripted annotator makes many
        self._server = make_server(host, port, app, threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self._server.shutdown()
        self._thread.join()
