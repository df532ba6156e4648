// The greet trigger in JavaScript: the same logic as the Rust and Python examples.
// Returning a string starts an execution with that payload, returning null drops the
// event; a thrown {code, message, retryable} is its step-error.
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

// UTF-8 bytes to a string; QuickJS has no TextDecoder.
function utf8(bytes) {
  return decodeURIComponent(Array.from(bytes, (b) => "%" + b.toString(16).padStart(2, "0")).join(""));
}

function payload(event) {
  switch (event.tag) {
    case "http":
      return JSON.parse(utf8(event.val.body));
    case "manual":
      return JSON.parse(event.val);
    default:
      return { name: "schedule" };
  }
}

export const trigger = {
  validate(config) {
    const found = problems(config);
    if (found.length > 0) throw found;
  },

  accept(ctx, config, event) {
    const greeting = JSON.parse(config)?.greeting ?? "Hello";
    const body = payload(event);
    if (body.name === "nobody") return null;
    if (body.name === "busy") {
      throw { code: "busy", message: "the greeter is busy, try again", retryable: true };
    }
    // An event without a name is a bug in the sender: this throws a TypeError (a trap).
    const name = body.name.toUpperCase();
    log("info", "greet", `greeting ${name} in ${ctx.flow}`);
    return JSON.stringify({ name, message: `${greeting}, ${name}!` });
  },
};
