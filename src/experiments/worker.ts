/**
 * A worker process of the local pool (pool.ts forks this file). It initialises the backend the
 * parent chose (MERGENET_BACKEND, with TF_NUM_INTRAOP_THREADS already in its environment),
 * registers the scenarios, says `ready`, then trains one run per `job` message with the
 * runner's own trainOne (train-run.ts) and sends back the RunResult, or the error's message. It writes no
 * result file: the parent does. It exits when the parent disconnects (also when the parent
 * dies), and ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and the
 * parent decides what stops.
 *
 * `prepareJob` and trainOne are what the queue worker (queue-worker.ts) runs as well.
 */
import * as path from "path";
import { backendInfo, initBackend, type BackendName } from "../backend/index";
import type { EpochRecord } from "../core/loop";
import { REPO_ROOT } from "../paths";
import { messageOf } from "../log";
import type { MethodSpec } from "./methods";
import type { FromWorker, ToWorker, WorkerJob } from "./pool";
import { RUNNER_VERSION, runHash } from "./run-files";
import { trainOne } from "./train-run";
import { type RunResult } from "./records";
import { getScenario, scenarioNames, type Scenario } from "./scenario";
import "./scenarios/index";

const imported = new Set<string>();

/**
 * Checks that this process can run the job exactly as the submitter would and returns its
 * method and scenario (resolved here once for the job); throws, in words, when it cannot (other code, another TensorFlow backend, a
 * scenario it does not know). Module
 * paths may be relative to the repository (a queue's jobs travel to other machines, where the
 * repository lies elsewhere).
 */
export function prepareJob(job: WorkerJob): { method: MethodSpec; scenario: Scenario } {
  for (const module of job.modules.map((m) => path.resolve(REPO_ROOT, m))) {
    if (imported.has(module)) continue;
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      require(module);
    } catch (err) {
      throw new Error(`the worker cannot import scenario module ${module}: ${messageOf(err)}`, { cause: err });
    }
    imported.add(module);
  }
  if (job.runnerVersion !== RUNNER_VERSION) {
    throw new Error(`the worker's runner version ${RUNNER_VERSION} differs from the submitter's ${job.runnerVersion}; run the same code on both`);
  }
  const backend = backendInfo()?.name ?? "none";
  if (typeof job.backend !== "string") {
    throw new Error(
      `the submitter did not name its TensorFlow backend (its code is older than the worker's, which runs on '${backend}'); run the same code on both`,
    );
  }
  if (job.backend !== backend) {
    throw new Error(
      `the worker runs TensorFlow on the '${backend}' backend, the submitter on '${job.backend}', and a run's results differ between backends; ` +
        `start the worker on '${job.backend}' (MERGENET_BACKEND=${job.backend}; if it cannot load there, ` +
        "fix that backend as the README's 'Backends' says, e.g. `npm ci` for the native one), " +
        `or submit from a process on '${backend}'`,
    );
  }
  const method = job.config.methods.find((m) => m.name === job.methodName);
  if (!method) throw new Error(`the experiment has no method '${job.methodName}'`);
  if (!scenarioNames().includes(job.config.scenario)) {
    throw new Error(
      `scenario '${job.config.scenario}' is not registered in the worker process, which imports src/experiments/scenarios and ` +
        "RunOptions.scenarioModules: name the module that registers it there, or use workers: 1",
    );
  }
  if (runHash(job.config, method, job.seed) !== job.configHash) {
    throw new Error("the worker computes another configuration hash for this run than the submitter: its code differs; run the same code on both");
  }
  return { method, scenario: getScenario(job.config.scenario) };
}

/** Checks the job (prepareJob), then trains it. */
export async function executeJob(job: WorkerJob, onEpoch: (record: EpochRecord, epochs: number) => void = () => undefined): Promise<RunResult> {
  const { method, scenario } = prepareJob(job);
  return trainOne(scenario, { ...job, method }, { epoch: onEpoch });
}

function send(message: FromWorker): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  process.on("SIGINT", () => undefined);
  process.on("disconnect", () => process.exit(0));
  try {
    await initBackend(process.env.MERGENET_BACKEND as BackendName | undefined);
  } catch (err) {
    process.stderr.write(`[mergenet] worker: ${messageOf(err)}\n`);
    process.send?.({ type: "fatal", message: messageOf(err) } satisfies FromWorker, () => process.exit(1));
    return;
  }
  // One run at a time: the parent sends the next job only after this one's answer.
  process.on("message", (message: ToWorker) => {
    if (message?.type !== "job") return;
    executeJob(message.job, (record, epochs) => send({ type: "epoch", record, epochs })).then(
      (run) => send({ type: "result", run }),
      (err) => send({ type: "error", message: messageOf(err), stack: err instanceof Error ? err.stack : undefined }),
    );
  });
  send({ type: "ready" });
}

if (process.send && process.env.MERGENET_POOL_WORKER === "1") void main();
