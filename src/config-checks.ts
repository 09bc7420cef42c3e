/**
 * Pieces shared by the configuration validators (experiment, methods, MergeNet, scenarios).
 * A misspelt key is the commonest mistake in a hand-written configuration, and an ignored one
 * silently runs the defaults under the user's name for them: so unknown keys are refused, with
 * the known name the typo most likely meant. A value of the wrong type is shown with its type,
 * since a message that prints the string "2" as 2 reads as a contradiction.
 */

/**
 * Edits (insert, delete, substitute, or swap two neighbours) that turn `a` into `b`: the
 * swap counts once, so `cylce` is one edit from `cycle`.
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The known name `name` most likely meant: the nearest (ignoring case) within a third of its
 * length, at least one edit and at most three; undefined when none is that close.
 */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  const limit = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  let best: { name: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance <= limit && (!best || distance < best.distance)) best = { name: candidate, distance };
  }
  return best?.name;
}

/**
 * One problem per key of `value` that is not among `known`, with the likely intended name or
 * else the list of known ones. `where` prefixes each message (e.g. "adapter: "); `noun` is what
 * a key is called there (a scenario's "option"). Keys holding
 * undefined are passed over: JSON drops them, so they change nothing.
 */
export function unknownKeyProblems(value: unknown, known: readonly string[], where = "", noun = "key"): string[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value)
    .filter(([key, v]) => v !== undefined && !known.includes(key))
    .map(([key]) => {
      const near = nearestName(key, known);
      return `${where}unknown ${noun} '${key}': ${near ? `did you mean '${near}'?` : `the ${noun}s are ${known.join(", ")}`}`;
    });
}

/** A value as a message shows it, with its type where the value alone would mislead: `the string "2"`, `a list [1]`. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  let json: string;
  try {
    json = JSON.stringify(value) ?? String(value);
  } catch {
    json = String(value);
  }
  if (json.length > 60) json = `${json.slice(0, 57)}...`;
  return Array.isArray(value) ? `a list ${json}` : typeof value === "object" ? `an object ${json}` : `${typeof value} ${json}`;
}

/** True for a whole number >= `min` (a number, not a string that looks like one). */
export function isWholeAtLeast(value: unknown, min: number): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= min;
}

/** The problem with a value that must be one of `choices`, or undefined when it is. */
export function choiceProblem(key: string, value: unknown, choices: readonly unknown[]): string | undefined {
  if (choices.includes(value)) return undefined;
  const near = typeof value === "string" ? nearestName(value, choices.filter((c): c is string => typeof c === "string")) : undefined;
  const hint = near ? ` (did you mean ${JSON.stringify(near)}?)` : "";
  return `${key} must be one of ${choices.map((c) => JSON.stringify(c)).join(", ")}; got ${describeValue(value)}${hint}`;
}
