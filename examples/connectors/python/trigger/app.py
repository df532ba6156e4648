"""The greet trigger in Python: the same logic as the Rust and JavaScript examples.

Returning a string starts an execution with that payload, returning None drops the
event; `raise Err(StepError(...))` is its step-error. Any other exception traps.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.trigger import Event, Event_Http, Event_Manual
from wit_world.imports import log
from wit_world.imports.types import ConfigError, Context, StepError


def problems(config: str) -> list[ConfigError]:
    c = json.loads(config)
    if c is None:
        return []
    if not isinstance(c, dict):
        return [ConfigError(path="", message="expected a table")]
    if "greeting" in c and not isinstance(c["greeting"], str):
        return [ConfigError(path="greeting", message="expected a string")]
    return []


def payload(event: Event) -> dict:
    if isinstance(event, Event_Http):
        return json.loads(bytes(event.value.body))
    if isinstance(event, Event_Manual):
        return json.loads(event.value)
    return {"name": "schedule"}


class Trigger(exports.Trigger):
    def validate(self, config: str) -> None:
        found = problems(config)
        if found:
            raise Err(found)

    def accept(self, ctx: Context, config: str, event: Event) -> str | None:
        greeting = (json.loads(config) or {}).get("greeting", "Hello")
        body = payload(event)
        if body.get("name") == "nobody":
            return None
        if body.get("name") == "busy":
            raise Err(StepError(code="busy", message="the greeter is busy, try again", retryable=True))
        # An event without a name is a bug in the sender: this raises KeyError (a trap).
        name = body["name"].upper()
        log.log(log.Level.INFO, "greet", f"greeting {name} in {ctx.flow}")
        return json.dumps({"name": name, "message": f"{greeting}, {name}!"})
