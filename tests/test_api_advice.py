"""The "what to do" of every error: one table, worded for where the user is.

Every advice kind is rendered for both surfaces with every fact it can name; the CLI's words must
never send a user to a node action, and the node's never to a CLI-only flag.
"""

from __future__ import annotations

import pytest
from support import submodule

advice = submodule("api.advice")
errors = submodule("api.errors")

FACTS = [
    advice.AdviceFacts(),
    advice.AdviceFacts(task_id="t1", source_task_id="s1", field="prompt", journal_row=7,
                       rerun="grok-imagine generate cat --seed 3", limit_source="settings",
                       limit_file="/home/u/.config/grok-imagine/settings.json"),
    advice.AdviceFacts(limit_source="env"),
]  # fmt: skip
NODE_ONLY = ("queue", "grok load task", "the node", "settings \u203a", "parallel_tasks", "inputs")
CLI_ONLY = ("run the command", "--new", "--tasks", "grok-imagine task ", "grok-imagine key set")


@pytest.mark.parametrize("kind", list(advice.Advice))
@pytest.mark.parametrize("facts", FACTS)
def test_cli_advice_names_commands_and_node_advice_names_node_actions(kind, facts):
    cli_text = advice.advice_text(kind, advice.Surface.CLI, facts).lower()
    node_text = advice.advice_text(kind, advice.Surface.NODE, facts).lower()
    for word in NODE_ONLY:
        assert word not in cli_text, (kind, cli_text)
    if kind is advice.Advice.CHECK_UNCERTAIN and facts.source_task_id:
        # Grok Upscale has no seed input: a new upscale on purpose is only had from the CLI.
        node_text = node_text.replace(f"`grok-imagine upscale {facts.source_task_id} --new`", "")
    for word in CLI_ONLY:
        assert word not in node_text, (kind, node_text)
    if kind is advice.Advice.NONE:
        assert cli_text == node_text == ""
    else:
        assert cli_text and node_text and cli_text != node_text


def test_an_error_is_what_happened_plus_the_advice_for_its_surface():
    timeout = errors.TaskTimeoutError("t9", 5.0)
    rerun = "grok-imagine generate 'a cat' --seed 0"
    cli_line = timeout.line(errors.Surface.CLI, rerun=rerun)
    assert cli_line.startswith(timeout.what)
    assert f"Run `{rerun}` to resume it" in cli_line and "`grok-imagine task t9`" in cli_line
    assert str(timeout) == timeout.line(errors.Surface.NODE)
    assert "Queue the same node again" in str(timeout) and "Grok Load Task" in str(timeout)
    assert errors.what_happened(timeout) == timeout.what and "Queue" not in timeout.what


def test_advice_is_never_parsed_back_only_rendered():
    """The kind is data on the exception: a subclass chooses it, a raise site may override it."""
    assert errors.MissingKeyError().advice is advice.Advice.SET_KEY
    assert errors.InvalidRequestError("x", from_server=True).advice is advice.Advice.FIX_INPUT
    assert errors.InvalidRequestError("x").advice is advice.Advice.NONE
    assert errors.CancelledError(None).advice is advice.Advice.NONE
    assert errors.CancelledError("t1").advice is advice.Advice.RESUME
    assert errors.ServerError("x", advice=advice.Advice.NONE).advice is advice.Advice.NONE
