// Importing this module registers every scenario with the runner.
import "./cross-architecture";
import "./cross-task";
import "./cross-modality";
import "./positive-control";
