"""Gradio chat values <-> pipeline turns (no gradio import, so they are easy to test).

Gradio hands history back normalised (``{"type": "text"|"file", ...}`` items) while values we
build ourselves use the short forms (a string, ``{"path": ...}``); both are accepted. What each
file IS comes from ``pipelines.attachments`` (by content, remembered per file version): the
history is rebuilt on every message, and earlier files are not probed again.
"""

from __future__ import annotations

from pipelines import attachments
from pipelines.errors import BadInputError
from pipelines.messages import Turn


def user_message(message: dict | str | None) -> dict:
    """A MultimodalTextbox value -> a chatbot message (files first, then text, like the prompt)."""
    if isinstance(message, str):
        message = {"text": message, "files": []}
    message = message or {}
    content: list = [{"path": _file_path(f)} for f in message.get("files") or []]
    text = (message.get("text") or "").strip()
    if text:
        content.append(text)
    return {"role": "user", "content": content}


def textbox_value(chat_message: dict) -> dict:
    """The inverse of ``user_message``: put a user turn back into the textbox (undo / retry)."""
    text_parts, files = _split_content(chat_message.get("content"))
    return {"text": "\n".join(text_parts), "files": files}


def to_turns(history: list[dict]) -> tuple[Turn, ...]:
    """Chatbot history -> turns. Files are classified by their content, never their name."""
    turns = []
    for message in history:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        text_parts, files = _split_content(message.get("content"))
        attached = tuple(attachments.classify(path) for path in files) if role == "user" else ()
        turns.append(Turn(role, "\n".join(text_parts).strip(), attached))
    return tuple(_merge_consecutive(turns))


def _split_content(content) -> tuple[list[str], list[str]]:
    items = content if isinstance(content, (list, tuple)) else [content]
    texts, files = [], []
    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(item.get("text") or "")
        elif isinstance(item, dict):
            files.append(_file_path(item))
    return texts, files


def _file_path(item) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        inner = item.get("file", item)
        path = inner.get("path") if isinstance(inner, dict) else getattr(inner, "path", None)
        if path:
            return str(path)
    path = getattr(item, "path", None)
    if path:
        return str(path)
    raise BadInputError("An attachment could not be read; please upload it again.")


def _merge_consecutive(turns: list[Turn]) -> list[Turn]:
    """Gradio may split one user message into several bubbles; the model wants one turn per role."""
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].role == turn.role:
            last = merged[-1]
            text = "\n".join(t for t in (last.text, turn.text) if t)
            merged[-1] = Turn(turn.role, text, last.attachments + turn.attachments)
        else:
            merged.append(turn)
    return merged
