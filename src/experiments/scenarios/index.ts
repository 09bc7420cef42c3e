// Importing this module registers every scenario with the runner.
import { imagePairScenario } from "./cross-architecture";
import { brownPosGenreScenario, sentimentSiteScenario } from "./cross-task";
import { digitsImageAudioScenario, emojiImageTextScenario } from "./cross-modality";
import { positiveControlScenario } from "./positive-control";
import { markBuiltInScenarios, type Scenario } from "../scenario";

// Worker processes import this module too, so they build these scenarios as this process does:
// the runner's default spreads their runs over worker processes (pool.ts, defaultWorkers). A new
// scenario module: import it here and add its scenario to the list (test/default-workers.test.ts
// fails on a scenario registered here but not listed).
markBuiltInScenarios(
  [
    imagePairScenario,
    sentimentSiteScenario,
    brownPosGenreScenario,
    emojiImageTextScenario,
    digitsImageAudioScenario,
    positiveControlScenario,
  ] as unknown as Scenario<never>[],
);
