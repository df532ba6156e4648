"""The greet action in Python: the same logic as the Rust and JavaScript examples.

A value returned is the step's output; `raise Err(StepError(...))` is its step-error;
`raise Err([ConfigError(...)])` rejects a config. Any other exception traps.
"""

import json

from componentize_py_types import Err
from wit_world import exports
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


class Action(exports.Action):
    def validate(self, config: str) -> None:
        found = problems(config)
        if found:
            raise Err(found)

    # `input` holds the trigger's payload and earlier steps' outputs; this step needs
    # only its config, where the flow places the name (`name = "{{ trigger.body.name }}"`).
    def run(self, ctx: Context, config: str, input: str) -> str:
        c = json.loads(config)
        if c.get("name") == "busy":
            raise Err(StepError(code="busy", message="the greeter is busy, try again", retryable=True))
        # A config without a name is a bug in the flow: this raises KeyError (a trap).
        name = c["name"].upper()
        greeting = c.get("greeting", "Hello")
        log.log(log.Level.INFO, "greet", f"greeting {name} in {ctx.flow}")
        return json.dumps({"message": f"{greeting}, {name}!"})
