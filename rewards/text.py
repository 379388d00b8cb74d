"""The texts a reward grades: the prompt rubrics are keyed on and the response, from TRL's standard or
conversational prompts and completions."""

from __future__ import annotations

from typing import Any

from judges.types import content_text, last_user_turn


def prompt_text(prompt: Any) -> str:
    """The text rubrics are keyed on: a string prompt as is, else the last user turn of the conversation (the
    last message where there is no user turn)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        user = last_user_turn(prompt)
        if user is not None:
            return user
        return content_text(prompt[-1].get("content")) if prompt and isinstance(prompt[-1], dict) else ""
    return str(prompt)


def completion_text(completion: Any) -> str:
    """The response graded: a string completion as is, else its assistant messages' content joined."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        msgs = [m for m in completion if isinstance(m, dict)]
        assistant = [m for m in msgs if m.get("role", "assistant") == "assistant"]
        return "\n\n".join(content_text(m.get("content")) for m in (assistant or msgs)).strip("\n")
    if isinstance(completion, dict):
        return content_text(completion.get("content"))
    return str(completion)
