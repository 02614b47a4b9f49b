// The chat's checks of names and messages, with its refusals' words, as
// chatlab's validation makes them: shared by the reference server
// (chat-server.mjs) and the benchmark's cluster node (bench/cluster_node.mjs).

export const LIMITS = { name: 32, message: 2000, room: 32 };

export class Refused extends Error {}

export function describe(value) {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  return `a ${typeof value}`;
}

export function checkCharacters(text, what, allowed = "") {
  for (const char of text) {
    const code = char.codePointAt(0);
    if (code >= 0xd800 && code <= 0xdfff) {
      throw new Refused(`${what} contains an unpaired surrogate (invalid UTF-16)`);
    }
    if ((code < 0x20 || (code >= 0x7f && code < 0xa0)) && !allowed.includes(char)) {
      const hex = code.toString(16).toUpperCase().padStart(4, "0");
      throw new Refused(`${what} contains the control character U+${hex}`);
    }
  }
}

export function checkVisible(text, what) {
  // trim() keeps zero-width spaces, joiners, a BOM and lone combining marks.
  if (!/[\p{L}\p{N}\p{P}\p{S}]/u.test(text)) {
    throw new Refused(`${what} has no visible character`);
  }
}

export function checkLabel(value, what, limit) {
  if (typeof value !== "string") throw new Refused(`${what} must be a string, not ${describe(value)}`);
  const label = value.trim();
  if (!label) throw new Refused(`${what} must not be empty`);
  if (label.length > limit) {
    throw new Refused(`${what} is ${label.length} characters long; the limit is ${limit}`);
  }
  checkCharacters(label, what);
  checkVisible(label, what);
  return label;
}

export function checkMessage(value) {
  if (typeof value !== "string") {
    throw new Refused(`the message must be a string, not ${describe(value)}`);
  }
  if (!value.trim()) throw new Refused("the message must not be empty");
  if (value.length > LIMITS.message) {
    throw new Refused(
      `the message is ${value.length} characters long; the limit is ${LIMITS.message}`);
  }
  checkCharacters(value, "the message", "\n\t");
  checkVisible(value, "the message");
  return value;
}

export function oneArgument(event, args, what) {
  if (args.length === 0) throw new Refused(`${event} needs ${what}`);
  if (args.length > 1) throw new Refused(`${event} takes one argument (${what}), not ${args.length}`);
  return args[0];
}

export const repr = (text) => `'${text}'`;
