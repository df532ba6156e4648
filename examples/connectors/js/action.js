// The greet action in JavaScript: the same logic as the Rust and Python examples.
// A value returned is the step's output; a thrown {code, message, retryable} is its
// step-error; a thrown list of {path, message} rejects a config.
import { log } from "flowd:connector/log@0.1.0";

function problems(config) {
  const c = JSON.parse(config);
  if (c === null) return [];
  if (typeof c !== "object" || Array.isArray(c)) return [{ path: "", message: "expected a table" }];
  if ("greeting" in c && typeof c.greeting !== "string") {
    return [{ path: "greeting", message: "expected a string" }];
  }
  return [];
}

export const action = {
  validate(config) {
    const found = problems(config);
    if (found.length > 0) throw found;
  },

  // `input` holds the trigger's payload and earlier steps' outputs; this step needs
  // only its config, where the flow places the name (`name = "{{ trigger.body.name }}"`).
  run(ctx, config, input) {
    const c = JSON.parse(config);
    if (c.name === "busy") {
      throw { code: "busy", message: "the greeter is busy, try again", retryable: true };
    }
    // A config without a name is a bug in the flow: this throws a TypeError (a trap).
    const name = c.name.toUpperCase();
    const greeting = c.greeting ?? "Hello";
    log("info", "greet", `greeting ${name} in ${ctx.flow}`);
    return JSON.stringify({ message: `${greeting}, ${name}!` });
  },
};
