/**
 * Checkpoint files: a folder holding `manifest.json` (what each tensor is, where its bytes
 * are, a SHA-256 of the bytes, and any JSON metadata) and `tensors.bin` (the raw float32 /
 * int32 data, little-endian, back to back).
 *
 * Writes are atomic: the folder is built under a temporary name beside the target and
 * renamed into place, so a crash mid-write leaves the previous checkpoint intact. Reads
 * verify the format, every size and the checksum, and say which file is damaged and what
 * to do, instead of loading garbage.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { tf } from "../backend/index";

const FORMAT = "mergenet-checkpoint";
const VERSION = 1;

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: "float32" | "int32";
  offset: number;
  bytes: number;
}

interface Manifest {
  format: string;
  version: number;
  createdAt: string;
  sha256: string;
  tensors: TensorEntry[];
  meta: unknown;
}

export interface CheckpointData {
  meta: unknown;
  /** Loaded tensors by name; the caller disposes them. */
  tensors: Map<string, tf.Tensor>;
}

/** Writes a checkpoint folder atomically (replacing any previous one at `dir`). */
export async function writeCheckpoint(dir: string, tensors: Record<string, tf.Tensor>, meta: unknown): Promise<void> {
  const entries: TensorEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    if (tensor.dtype !== "float32" && tensor.dtype !== "int32") {
      throw new Error(`checkpoint tensor '${name}' has dtype ${tensor.dtype}; only float32 and int32 are stored`);
    }
    const data = await tensor.data();
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    entries.push({ name, shape: tensor.shape.slice(), dtype: tensor.dtype, offset, bytes: buffer.byteLength });
    chunks.push(buffer);
    offset += buffer.byteLength;
  }
  const blob = Buffer.concat(chunks);
  const manifest: Manifest = {
    format: FORMAT,
    version: VERSION,
    createdAt: new Date().toISOString(),
    sha256: crypto.createHash("sha256").update(blob).digest("hex"),
    tensors: entries,
    meta,
  };
  const parent = path.dirname(path.resolve(dir));
  fs.mkdirSync(parent, { recursive: true });
  const staging = fs.mkdtempSync(path.join(parent, `.${path.basename(dir)}.tmp-`));
  try {
    fs.writeFileSync(path.join(staging, "tensors.bin"), blob);
    fs.writeFileSync(path.join(staging, "manifest.json"), JSON.stringify(manifest));
    const previous = `${dir}.previous`;
    fs.rmSync(previous, { recursive: true, force: true });
    if (fs.existsSync(dir)) fs.renameSync(dir, previous);
    fs.renameSync(staging, dir);
    fs.rmSync(previous, { recursive: true, force: true });
  } catch (err) {
    fs.rmSync(staging, { recursive: true, force: true });
    throw err;
  }
}

/** True when `dir` holds a checkpoint (complete or not). */
export function checkpointExists(dir: string): boolean {
  return fs.existsSync(path.join(dir, "manifest.json"));
}

/** Reads and verifies a checkpoint folder. */
export function readCheckpoint(dir: string): CheckpointData {
  const manifestPath = path.join(dir, "manifest.json");
  const blobPath = path.join(dir, "tensors.bin");
  const damaged = (what: string) =>
    new Error(`checkpoint at ${dir} is damaged (${what}). Delete that folder to start the run over, or restore it from a copy; nothing else was touched.`);
  if (!fs.existsSync(manifestPath)) throw new Error(`no checkpoint at ${dir} (no manifest.json)`);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8")) as Manifest;
  } catch {
    throw damaged("manifest.json is not valid JSON");
  }
  if (manifest.format !== FORMAT) throw damaged(`manifest.json is not a ${FORMAT} manifest`);
  if (manifest.version !== VERSION) throw new Error(`checkpoint at ${dir} has format version ${manifest.version}; this code reads version ${VERSION}`);
  if (!fs.existsSync(blobPath)) throw damaged("tensors.bin is missing");
  const blob = fs.readFileSync(blobPath);
  const total = manifest.tensors.reduce((sum, t) => sum + t.bytes, 0);
  if (blob.byteLength !== total) throw damaged(`tensors.bin holds ${blob.byteLength} bytes, the manifest lists ${total}`);
  if (crypto.createHash("sha256").update(blob).digest("hex") !== manifest.sha256) throw damaged("tensors.bin fails its checksum");
  const tensors = new Map<string, tf.Tensor>();
  for (const t of manifest.tensors) {
    const bytes = blob.subarray(t.offset, t.offset + t.bytes);
    const copy = new Uint8Array(bytes).buffer; // aligned copy
    const values = t.dtype === "int32" ? new Int32Array(copy) : new Float32Array(copy);
    if (values.length !== t.shape.reduce((a, b) => a * b, 1)) throw damaged(`tensor '${t.name}' has the wrong size`);
    tensors.set(t.name, tf.tensor(values, t.shape, t.dtype));
  }
  return { meta: manifest.meta, tensors };
}
