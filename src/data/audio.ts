/**
 * Spoken digits, for the cross-modality experiments: the words "zero".."nine" spoken by a
 * speech SYNTHESISER (Debian's espeak-ng, no human voices), turned into log-mel spectrograms
 * in TypeScript. Same ten classes as MNIST, another modality.
 *
 * Four parts, top to bottom:
 *   1. WAV: `parseWav` reads 16-bit PCM RIFF files (what espeak-ng writes), `encodeWav` writes
 *      them (tests make known tones with it).
 *   2. Features: a radix-2 FFT (`fft`), a short-time power spectrum with a periodic Hann
 *      window, a triangular mel filterbank (HTK mel scale, mel = 2595 log10(1 + f / 700);
 *      each filter's weights are computed from the bins' frequencies, not rounded to bins,
 *      so narrow low filters are never empty; peak weight 1, no area normalisation) and
 *      `logMelSpectrogram`: ln(mel energy + 1e-6), shape [frames, mels].
 *      Fixed length (`fitDuration`): the leading silence (samples below 5% of the peak
 *      amplitude) is cut, so every word starts at frame 0, then the signal is cut or
 *      zero-padded to exactly (frames - 1) hop + nFft samples. Defaults: 22,050 Hz as
 *      espeak-ng writes it (no resampling), nFft 1024 (46 ms), hop 512, 32 frames
 *      (0.77 s), 40 mels from 20 Hz to 8 kHz: a [32, 40] spectrogram.
 *   3. Synthesis (`synthesizeSpokenDigits`, also run by scripts/make-spoken-digits.ts):
 *      `speakers` seeded "speakers", each an espeak-ng accent + voice variant (e.g.
 *      "en-gb-scotland+f3"), a pitch (20..80 of espeak's 0..99) and a speed (120..210 words
 *      per minute), each saying all ten words: `espeak-ng -w FILE -v VOICE -p PITCH -s SPEED
 *      WORD`. Files and a manifest.json (espeak-ng's version, the request, every utterance)
 *      go to data/cache/spoken-digits/; a folder whose manifest matches the request is reused
 *      as is (idempotent), a new one is built in a temporary folder and renamed into place.
 *      The audio depends on the espeak-ng version, which the manifest records.
 *   4. The dataset (`loadSpokenDigits`): split BY SPEAKER (seeded; a test speaker's voice,
 *      pitch and speed combination is never heard in training, though its accent and variant
 *      may be; `trainSpeakers` keeps a seeded subset of the training speakers), features standardised with the training set's mean and standard deviation
 *      (one scalar each), tensors [n, frames, mels, 1] so image models read them too.
 *      The spectrograms of all utterances are cached (src/data/cache.ts) keyed by the
 *      manifest and the feature options.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { tf } from "../backend/index";
import { mulberry32 } from "../util/random";
import { logger } from "../log";
import { readCache, writeCache } from "./cache";

// ---------------------------------------------------------------------------------------
// 1. WAV

export interface Waveform {
  sampleRate: number;
  /** Mono samples in [-1, 1). Multi-channel files are averaged over channels. */
  samples: Float32Array;
}

/**
 * Parses a RIFF/WAVE file holding 16-bit integer PCM (format 1, or WAVE_FORMAT_EXTENSIBLE
 * with the PCM sub-format). A data chunk that claims more bytes than the file has (what a
 * writer streaming to a pipe leaves) is read up to the file's end.
 */
export function parseWav(bytes: Uint8Array, name = "WAV data"): Waveform {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (offset: number) => String.fromCharCode(bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]);
  if (bytes.length < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") throw new Error(`${name} is not a RIFF/WAVE file (it should start with "RIFF....WAVE")`);
  let format: { channels: number; sampleRate: number; bits: number } | undefined;
  let offset = 12;
  while (offset + 8 <= bytes.length) {
    const id = tag(offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === "fmt ") {
      if (size < 16) throw new Error(`${name}: its fmt chunk is ${size} bytes, expected at least 16`);
      let code = view.getUint16(body, true);
      if (code === 0xfffe && size >= 26) code = view.getUint16(body + 24, true); // extensible: sub-format GUID starts with the code
      const channels = view.getUint16(body + 2, true);
      const sampleRate = view.getUint32(body + 4, true);
      const bits = view.getUint16(body + 14, true);
      if (code !== 1 || bits !== 16) {
        throw new Error(
          `${name} holds format ${code} with ${bits}-bit samples; only 16-bit integer PCM (format 1) is supported ` +
            "(convert it, e.g. `sox in.wav -b 16 -e signed-integer out.wav`)",
        );
      }
      if (channels < 1 || sampleRate < 1) throw new Error(`${name}: ${channels} channels at ${sampleRate} Hz is not a valid format`);
      format = { channels, sampleRate, bits };
    } else if (id === "data") {
      if (!format) throw new Error(`${name}: the data chunk comes before the fmt chunk`);
      const available = Math.min(size, bytes.length - body);
      const frames = Math.floor(available / (2 * format.channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (let c = 0; c < format.channels; c++) sum += view.getInt16(body + 2 * (i * format.channels + c), true);
        samples[i] = sum / format.channels / 32768;
      }
      return { sampleRate: format.sampleRate, samples };
    }
    offset = body + size + (size % 2); // chunks are padded to an even length
  }
  throw new Error(`${name} has no ${format ? "data" : "fmt"} chunk; the file is truncated or not a PCM WAV file`);
}

/** A mono 16-bit PCM WAV file of `samples` (clipped to [-1, 1]). */
export function encodeWav(samples: Float32Array, sampleRate: number): Uint8Array {
  const bytes = new Uint8Array(44 + 2 * samples.length);
  const view = new DataView(bytes.buffer);
  const ascii = (offset: number, text: string) => [...text].forEach((ch, i) => (bytes[offset + i] = ch.charCodeAt(0)));
  ascii(0, "RIFF");
  view.setUint32(4, 36 + 2 * samples.length, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, 1, true); // mono
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true); // bytes per second
  view.setUint16(32, 2, true); // block align
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, 2 * samples.length, true);
  samples.forEach((s, i) => view.setInt16(44 + 2 * i, Math.round(Math.max(-1, Math.min(1, s)) * 32767), true));
  return bytes;
}

// ---------------------------------------------------------------------------------------
// 2. Features

/** Log-mel spectrogram settings (see the module comment for the defaults' reasons). */
export interface LogMelOptions {
  sampleRate: number;
  /** FFT size = window length, a power of two. */
  nFft: number;
  /** Samples between frame starts. */
  hop: number;
  frames: number;
  mels: number;
  fMin: number;
  fMax: number;
}

export const LOG_MEL_DEFAULTS: LogMelOptions = { sampleRate: 22050, nFft: 1024, hop: 512, frames: 32, mels: 40, fMin: 20, fMax: 8000 };

/** Floor added to mel energies before the log (silence maps to ln 1e-6 ≈ -13.8). */
const LOG_FLOOR = 1e-6;
/** Leading samples below this fraction of the peak amplitude count as silence. */
const SILENCE_FRACTION = 0.05;

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

/**
 * In-place iterative radix-2 FFT (decimation in time) of the complex signal (re, im):
 * X[k] = sum_n x[n] exp(-2 pi i k n / N). N must be a power of two.
 */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (im.length !== n) throw new Error(`fft: real and imaginary parts differ in length (${n} and ${im.length})`);
  if (!isPowerOfTwo(n)) throw new Error(`fft: the length must be a power of two, got ${n}`);
  for (let i = 1, j = 0; i < n; i++) { // bit-reversal permutation
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >> 1;
    const step = (-2 * Math.PI) / size;
    for (let k = 0; k < half; k++) {
      const wr = Math.cos(step * k);
      const wi = Math.sin(step * k);
      for (let start = k; start < n; start += size) {
        const other = start + half;
        const tr = wr * re[other] - wi * im[other];
        const ti = wr * im[other] + wi * re[other];
        re[other] = re[start] - tr;
        im[other] = im[start] - ti;
        re[start] += tr;
        im[start] += ti;
      }
    }
  }
}

/** Periodic Hann window of length n: 0.5 - 0.5 cos(2 pi i / n). */
export function hannWindow(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
}

export function hzToMel(hz: number): number {
  return 2595 * Math.log10(1 + hz / 700);
}

export function melToHz(mel: number): number {
  return 700 * (10 ** (mel / 2595) - 1);
}

/** Centre frequencies (Hz) of the mel filters, equally spaced in mel between fMin and fMax. */
export function melCentres(mels: number, fMin: number, fMax: number): number[] {
  const low = hzToMel(fMin);
  const high = hzToMel(fMax);
  return Array.from({ length: mels }, (_, m) => melToHz(low + ((m + 1) * (high - low)) / (mels + 1)));
}

/**
 * Triangular mel filters [mels, nFft / 2 + 1] row-major: filter m rises from edge m to its
 * centre m + 1 and falls to edge m + 2 (edges equally spaced in mel from fMin to fMax),
 * evaluated at each FFT bin's frequency k sampleRate / nFft; peak 1.
 */
export function melFilterbank(o: Pick<LogMelOptions, "sampleRate" | "nFft" | "mels" | "fMin" | "fMax">): Float64Array {
  const bins = o.nFft / 2 + 1;
  const low = hzToMel(o.fMin);
  const high = hzToMel(o.fMax);
  const edges = Array.from({ length: o.mels + 2 }, (_, i) => melToHz(low + (i * (high - low)) / (o.mels + 1)));
  const weights = new Float64Array(o.mels * bins);
  for (let m = 0; m < o.mels; m++) {
    const [left, centre, right] = [edges[m], edges[m + 1], edges[m + 2]];
    for (let k = 0; k < bins; k++) {
      const f = (k * o.sampleRate) / o.nFft;
      const rising = (f - left) / (centre - left);
      const falling = (right - f) / (right - centre);
      weights[m * bins + k] = Math.max(0, Math.min(rising, falling));
    }
  }
  return weights;
}

function checkLogMelOptions(o: LogMelOptions): void {
  if (!isPowerOfTwo(o.nFft) || o.nFft < 16) throw new Error(`nFft must be a power of two >= 16, got ${o.nFft}`);
  for (const key of ["hop", "frames", "mels", "sampleRate"] as const) {
    if (!Number.isInteger(o[key]) || o[key] < 1) throw new Error(`${key} must be a positive whole number, got ${o[key]}`);
  }
  if (!(o.fMin >= 0 && o.fMin < o.fMax && o.fMax <= o.sampleRate / 2)) {
    throw new Error(`need 0 <= fMin < fMax <= sampleRate / 2 (${o.sampleRate / 2} Hz), got fMin ${o.fMin} and fMax ${o.fMax}`);
  }
}

/** Samples a spectrogram with these options reads: (frames - 1) hop + nFft. */
export function samplesNeeded(o: Pick<LogMelOptions, "nFft" | "hop" | "frames">): number {
  return (o.frames - 1) * o.hop + o.nFft;
}

/** Cuts the leading silence (below 5% of the peak), then cuts or zero-pads to `length` samples. */
export function fitDuration(samples: Float32Array, length: number): Float32Array {
  let peak = 0;
  for (const s of samples) peak = Math.max(peak, Math.abs(s));
  const start = peak === 0 ? 0 : samples.findIndex((s) => Math.abs(s) >= SILENCE_FRACTION * peak);
  const out = new Float32Array(length);
  out.set(samples.subarray(start, start + length));
  return out;
}

/** Everything a spectrogram of these options reuses: the window and the filterbank. */
interface LogMelPlan {
  options: LogMelOptions;
  window: Float64Array;
  filters: Float64Array;
}

function logMelPlan(options: LogMelOptions): LogMelPlan {
  checkLogMelOptions(options);
  return { options, window: hannWindow(options.nFft), filters: melFilterbank(options) };
}

function logMelWith(plan: LogMelPlan, samples: Float32Array): Float32Array {
  const { nFft, hop, frames, mels } = plan.options;
  const bins = nFft / 2 + 1;
  const out = new Float32Array(frames * mels);
  const re = new Float64Array(nFft);
  const im = new Float64Array(nFft);
  const power = new Float64Array(bins);
  for (let t = 0; t < frames; t++) {
    for (let i = 0; i < nFft; i++) {
      const index = t * hop + i;
      re[i] = index < samples.length ? samples[index] * plan.window[i] : 0;
      im[i] = 0;
    }
    fft(re, im);
    for (let k = 0; k < bins; k++) power[k] = re[k] * re[k] + im[k] * im[k];
    for (let m = 0; m < mels; m++) {
      let energy = 0;
      const row = m * bins;
      for (let k = 0; k < bins; k++) energy += plan.filters[row + k] * power[k];
      out[t * mels + m] = Math.log(energy + LOG_FLOOR);
    }
  }
  return out;
}

/**
 * The log-mel spectrogram [frames, mels] (row-major) of `samples`, read from sample 0 with
 * no padding at the start; frames past the signal's end see zeros. Call `fitDuration`
 * first for a word-aligned, fixed-length input.
 */
export function logMelSpectrogram(samples: Float32Array, options: Partial<LogMelOptions> = {}): Float32Array {
  return logMelWith(logMelPlan({ ...LOG_MEL_DEFAULTS, ...options }), samples);
}

// ---------------------------------------------------------------------------------------
// 3. Synthesis

export const DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"] as const;

/** espeak-ng's English accents used (its own voices, no mbrola). */
export const ESPEAK_ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"] as const;
/** espeak-ng's voice variants used (male m1..m7, female f1..f5). */
export const ESPEAK_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"] as const;

/** One synthetic speaker: says all ten words with the same settings. */
export interface SpokenDigitSpeaker {
  id: number;
  /** espeak-ng voice, accent+variant, e.g. "en-us+f3". */
  voice: string;
  /** espeak-ng -p, 0..99. */
  pitch: number;
  /** espeak-ng -s, words per minute. */
  speed: number;
}

export interface SpokenDigitUtterance {
  /** File name inside the manifest's folder. */
  file: string;
  /** The digit 0..9 (the class). */
  digit: number;
  speaker: number;
}

export interface SpokenDigitsRequest {
  /** Seeds the speakers' voices, pitches and speeds. */
  seed: number;
  speakers: number;
}

export interface SpokenDigitsManifest {
  format: number;
  generator: string;
  /** `espeak-ng --version`'s first line. */
  espeakVersion: string;
  request: SpokenDigitsRequest;
  speakers: SpokenDigitSpeaker[];
  utterances: SpokenDigitUtterance[];
}

export const SPOKEN_DIGITS_DEFAULTS: SpokenDigitsRequest = { seed: 0, speakers: 80 };

const MANIFEST_FORMAT = 1;
const DEFAULT_CACHE_DIR = path.resolve(__dirname, "..", "..", "data", "cache");
const INSTALL_ESPEAK = "espeak-ng is not installed: run `apt-get install espeak-ng` (Debian/Ubuntu; it is listed in .ci/apt-packages.txt)";

/** The seeded speakers of a request (pure: the same request gives the same speakers). */
export function spokenDigitSpeakers(request: SpokenDigitsRequest): SpokenDigitSpeaker[] {
  const rand = mulberry32(request.seed);
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)];
  const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  return Array.from({ length: request.speakers }, (_, id) => ({
    id, voice: `${pick(ESPEAK_ACCENTS)}+${pick(ESPEAK_VARIANTS)}`, pitch: between(20, 80), speed: between(120, 210),
  }));
}

/** espeak-ng's version line (e.g. "eSpeak NG text-to-speech: 1.51"), or an Error saying how to install it. */
export function espeakVersion(): string {
  const result = spawnSync("espeak-ng", ["--version"], { encoding: "utf8" });
  if (result.error) throw new Error(`${INSTALL_ESPEAK} (${result.error.message})`);
  if (result.status !== 0) throw new Error(`\`espeak-ng --version\` failed (exit ${result.status}): ${result.stderr.trim()}`);
  return result.stdout.trim().split("\n")[0].replace(/\s+Data at:.*$/, ""); // drop the data folder: it is a path, not a version
}

function checkRequest(request: SpokenDigitsRequest): void {
  if (!Number.isInteger(request.seed)) throw new Error(`the synthesis seed must be an integer, got ${request.seed}`);
  if (!Number.isInteger(request.speakers) || request.speakers < 2 || request.speakers > 1000) {
    throw new Error(`speakers must be a whole number from 2 to 1000, got ${request.speakers}`);
  }
}

/** The manifest in `folder` when it was made for `request` and all its files exist; else undefined. */
function existingManifest(folder: string, request: SpokenDigitsRequest): SpokenDigitsManifest | undefined {
  const file = path.join(folder, "manifest.json");
  if (!fs.existsSync(file)) return undefined;
  try {
    const manifest = JSON.parse(fs.readFileSync(file, "utf8")) as SpokenDigitsManifest;
    const matches = manifest.format === MANIFEST_FORMAT && JSON.stringify(manifest.request) === JSON.stringify(request) &&
      manifest.utterances.length === request.speakers * DIGIT_WORDS.length &&
      manifest.utterances.every((u) => fs.existsSync(path.join(folder, u.file)));
    return matches ? manifest : undefined;
  } catch {
    return undefined;
  }
}

export interface SynthesisOptions extends Partial<SpokenDigitsRequest> {
  /** Parent folder; the audio goes to `<cacheDir>/spoken-digits`. Default `<repo>/data/cache`. */
  cacheDir?: string;
  /** Rebuild even when the manifest matches. */
  force?: boolean;
}

export interface SynthesisResult {
  folder: string;
  manifest: SpokenDigitsManifest;
  /** False when an existing folder was reused. */
  generated: boolean;
  seconds: number;
}

/** One `espeak-ng` call; rejects with the install hint when the program is missing, with its stderr when it fails. */
function espeak(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("espeak-ng", args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.on("error", (error) => reject(new Error(`${INSTALL_ESPEAK} (${error.message})`)));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`\`espeak-ng ${args.join(" ")}\` failed (exit ${code}): ${stderr.trim()}`))));
  });
}

/**
 * Calls `task` on every item, at most `limit` at once; on the first failure starts no further
 * item, waits for the ones running, then rejects with that failure.
 */
async function eachAtMost<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure) throw failure.error;
}

/**
 * Makes (or reuses) the spoken-digit WAV files and their manifest (see the module comment).
 * The espeak-ng calls run as child processes, one per core at once: the calling process's
 * event loop stays free (a test runner's or a notebook kernel's messages are answered) and the
 * files are the same as one call at a time would write.
 */
export async function synthesizeSpokenDigits(options: SynthesisOptions = {}): Promise<SynthesisResult> {
  const start = Date.now();
  const request: SpokenDigitsRequest = { seed: options.seed ?? SPOKEN_DIGITS_DEFAULTS.seed, speakers: options.speakers ?? SPOKEN_DIGITS_DEFAULTS.speakers };
  checkRequest(request);
  const folder = path.join(options.cacheDir ?? DEFAULT_CACHE_DIR, "spoken-digits");
  const existing = options.force ? undefined : existingManifest(folder, request);
  if (existing) return { folder, manifest: existing, generated: false, seconds: (Date.now() - start) / 1000 };
  const version = espeakVersion();
  const speakers = spokenDigitSpeakers(request);
  const temp = `${folder}.tmp-${process.pid}-${Date.now()}`;
  fs.mkdirSync(temp, { recursive: true });
  try {
    const utterances: SpokenDigitUtterance[] = speakers.flatMap((speaker) =>
      DIGIT_WORDS.map((word, digit) => ({ file: `${word}-s${String(speaker.id).padStart(3, "0")}.wav`, digit, speaker: speaker.id })),
    );
    await eachAtMost(utterances, os.availableParallelism(), (u) => {
      const speaker = speakers[u.speaker];
      return espeak(["-w", path.join(temp, u.file), "-v", speaker.voice, "-p", String(speaker.pitch), "-s", String(speaker.speed), DIGIT_WORDS[u.digit]]);
    });
    const manifest: SpokenDigitsManifest = {
      format: MANIFEST_FORMAT, generator: "scripts/make-spoken-digits.ts (synthesizeSpokenDigits in src/data/audio.ts)",
      espeakVersion: version, request, speakers, utterances,
    };
    fs.writeFileSync(path.join(temp, "manifest.json"), `${JSON.stringify(manifest, null, 1)}\n`);
    fs.rmSync(folder, { recursive: true, force: true });
    try {
      fs.renameSync(temp, folder);
    } catch (err) {
      // Another process finished the same synthesis between our rm and rename: keep theirs.
      const theirs = existingManifest(folder, request);
      if (!theirs) throw err;
      fs.rmSync(temp, { recursive: true, force: true });
      return { folder, manifest: theirs, generated: false, seconds: (Date.now() - start) / 1000 };
    }
    const seconds = (Date.now() - start) / 1000;
    logger.info(`spoken digits: synthesised ${utterances.length} utterances with ${version} in ${seconds.toFixed(1)} s into ${folder}`);
    return { folder, manifest, generated: true, seconds };
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw err;
  }
}

// ---------------------------------------------------------------------------------------
// 4. The dataset

export interface SpokenDigitsOptions extends SynthesisOptions {
  /** Seeds the split by speaker. Default 0. */
  splitSeed?: number;
  /** Fraction of the speakers held out for testing. Default 0.25. */
  testFraction?: number;
  /** Training speakers to use (a seeded subset of the rest); default all of them. */
  trainSpeakers?: number;
  features?: Partial<LogMelOptions>;
}

export interface AudioSplit {
  /** [n, frames, mels, 1] float32, standardised with the training set's mean and std. */
  x: tf.Tensor4D;
  /** [n] int32 digits. */
  y: tf.Tensor1D;
  count: number;
}

export interface SpokenDigitsData {
  classes: string[];
  /** [frames, mels]. */
  featureShape: [number, number];
  features: LogMelOptions;
  train: AudioSplit;
  test: AudioSplit;
  trainSpeakers: number[];
  testSpeakers: number[];
  /** The scalar standardisation applied (from the training spectrograms). */
  normalisation: { mean: number; std: number };
  manifest: SpokenDigitsManifest;
  /** Whether the spectrograms came from data/cache/, and whether the audio was synthesised now. */
  fromCache: boolean;
  synthesised: boolean;
  dispose(): void;
}

/**
 * The spectrograms of every utterance of a manifest, [utterances, frames, mels] in manifest
 * order, from the feature cache or computed from the WAV files (and cached).
 */
export function spokenDigitFeatures(synthesis: SynthesisResult, features: LogMelOptions, cacheDir: string): { values: Float32Array; fromCache: boolean } {
  const { manifest, folder } = synthesis;
  const plan = logMelPlan(features);
  const size = features.frames * features.mels;
  const files = manifest.utterances.map((u) => u.file);
  const key = { format: 1, manifest: { espeakVersion: manifest.espeakVersion, request: manifest.request, files }, features };
  const cacheFile = path.join(cacheDir, "spoken-digits-logmel.bin");
  const cached = readCache(cacheFile, key);
  if (cached && cached.length === 1 && cached[0].length === manifest.utterances.length * size * 4) {
    const copy = new Uint8Array(cached[0]); // aligned copy for the Float32Array view
    return { values: new Float32Array(copy.buffer), fromCache: true };
  }
  const values = new Float32Array(manifest.utterances.length * size);
  const length = samplesNeeded(features);
  manifest.utterances.forEach((u, i) => {
    const file = path.join(folder, u.file);
    const wave = parseWav(fs.readFileSync(file), file);
    if (wave.sampleRate !== features.sampleRate) {
      throw new Error(`${file} is sampled at ${wave.sampleRate} Hz but the features expect ${features.sampleRate} Hz; ` +
          `set features.sampleRate to ${wave.sampleRate}`);
    }
    values.set(logMelWith(plan, fitDuration(wave.samples, length)), i * size);
  });
  try {
    writeCache(cacheFile, key, [new Uint8Array(values.buffer)]);
  } catch (err) {
    logger.warn(`could not write the spectrogram cache ${cacheFile} (${err instanceof Error ? err.message : String(err)}); loading continues without it`);
  }
  return { values, fromCache: false };
}

/**
 * Speaker ids split by one seeded shuffle: the first round(speakers * testFraction) are the
 * test speakers, the next `trainLimit` (default: all the rest) the training speakers; both sorted.
 */
export function splitSpeakers(speakers: number, seed: number, testFraction: number, trainLimit?: number): { train: number[]; test: number[] } {
  if (!Number.isInteger(seed)) throw new Error(`splitSeed must be an integer, got ${seed}`);
  if (!(testFraction > 0 && testFraction < 1)) throw new Error(`testFraction must be between 0 and 1 (exclusive), got ${testFraction}`);
  const held = Math.max(1, Math.round(speakers * testFraction));
  const available = speakers - held;
  if (trainLimit !== undefined && (!Number.isInteger(trainLimit) || trainLimit < 1 || trainLimit > available)) {
    throw new Error(`trainSpeakers must be a whole number from 1 to ${available} (${speakers} speakers, ${held} held out for testing), got ${trainLimit}`);
  }
  const ids = Array.from({ length: speakers }, (_, i) => i);
  const rand = mulberry32(seed);
  for (let i = ids.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return { train: ids.slice(held, held + (trainLimit ?? available)).sort((a, b) => a - b), test: ids.slice(0, held).sort((a, b) => a - b) };
}

/**
 * The spoken-digit dataset as tensors: synthesises the audio if the cache lacks it (needs
 * espeak-ng), computes or reads the spectrograms, splits by speaker and standardises.
 */
export async function loadSpokenDigits(options: SpokenDigitsOptions = {}): Promise<SpokenDigitsData> {
  const start = Date.now();
  const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
  const features: LogMelOptions = { ...LOG_MEL_DEFAULTS, ...options.features };
  checkLogMelOptions(features);
  const testFraction = options.testFraction ?? 0.25;
  const split = splitSpeakers(options.speakers ?? SPOKEN_DIGITS_DEFAULTS.speakers, options.splitSeed ?? 0, testFraction, options.trainSpeakers);
  const synthesis = await synthesizeSpokenDigits({ ...options, cacheDir });
  const { values, fromCache } = spokenDigitFeatures(synthesis, features, cacheDir);
  const size = features.frames * features.mels;
  const testSet = new Set(split.test);
  const trainSet = new Set(split.train);
  const rows = { train: [] as number[], test: [] as number[] };
  synthesis.manifest.utterances.forEach((u, i) => {
    if (testSet.has(u.speaker)) rows.test.push(i);
    else if (trainSet.has(u.speaker)) rows.train.push(i);
  });
  let sum = 0;
  let squares = 0;
  for (const i of rows.train) {
    for (let j = i * size; j < (i + 1) * size; j++) {
      sum += values[j];
      squares += values[j] * values[j];
    }
  }
  const n = rows.train.length * size;
  const mean = sum / n;
  const std = Math.sqrt(Math.max(squares / n - mean * mean, 1e-12));
  const toSplit = (indices: number[]): AudioSplit => {
    const x = new Float32Array(indices.length * size);
    indices.forEach((i, r) => {
      for (let j = 0; j < size; j++) x[r * size + j] = (values[i * size + j] - mean) / std;
    });
    const labels = Int32Array.from(indices, (i) => synthesis.manifest.utterances[i].digit);
    return { x: tf.tensor4d(x, [indices.length, features.frames, features.mels, 1], "float32"), y: tf.tensor1d(labels, "int32"), count: indices.length };
  };
  const train = toSplit(rows.train);
  const test = toSplit(rows.test);
  logger.info(`spoken digits: ${train.count} training and ${test.count} test utterances ` +
      `(${fromCache ? "spectrograms from the cache" : "spectrograms computed"}) in ${Date.now() - start} ms`);
  return {
    classes: [...DIGIT_WORDS], featureShape: [features.frames, features.mels], features, train, test,
    trainSpeakers: split.train, testSpeakers: split.test, normalisation: { mean, std }, manifest: synthesis.manifest,
    fromCache, synthesised: synthesis.generated,
    dispose() {
      tf.dispose([train.x, train.y, test.x, test.y]);
    },
  };
}
