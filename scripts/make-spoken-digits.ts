/**
 * `npx tsx scripts/make-spoken-digits.ts [--seed N] [--speakers N] [--cache-dir DIR] [--force]`
 *
 * Synthesises the spoken-digit audio ("zero".."nine", each said by `speakers` seeded espeak-ng
 * voices) into <cache-dir>/spoken-digits/ with a manifest.json, and prints the manifest's
 * summary. The speech is synthetic: espeak-ng, Debian package `espeak-ng`. Idempotent: a
 * folder whose manifest matches the request is left as it is (--force rebuilds it). The
 * dataset loader (loadSpokenDigits in src/data/audio.ts) runs the same synthesis by itself
 * when the folder is missing, so this script is only needed to make the audio ahead of time.
 */
import { SPOKEN_DIGITS_DEFAULTS, synthesizeSpokenDigits, type SynthesisOptions } from "../src/data/audio";

function parseArgs(argv: string[]): SynthesisOptions {
  const options: SynthesisOptions = { ...SPOKEN_DIGITS_DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const integer = (): number => {
      const v = Number(value());
      if (!Number.isInteger(v)) throw new Error(`${flag} needs a whole number, got '${argv[i]}'`);
      return v;
    };
    if (flag === "--seed") options.seed = integer();
    else if (flag === "--speakers") options.speakers = integer();
    else if (flag === "--cache-dir") options.cacheDir = value();
    else if (flag === "--force") options.force = true;
    else throw new Error(`unknown option '${flag}'; use --seed N, --speakers N, --cache-dir DIR, --force`);
  }
  return options;
}

async function main(): Promise<void> {
  const result = await synthesizeSpokenDigits(parseArgs(process.argv.slice(2)));
  const { manifest } = result;
  const summary = {
    folder: result.folder,
    generated: result.generated,
    seconds: result.seconds,
    espeakVersion: manifest.espeakVersion,
    request: manifest.request,
    utterances: manifest.utterances.length,
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`make-spoken-digits: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
