// The evaluation API: loss and perplexity, SQuAD exact match and F1, base-versus-adapter view.
export { evaluateLoss, batchLoss, batchLossSum, countTargets, type LossReport } from "./loss.js";
export {
  answerQuestions,
  evaluateSquad,
  extractAnswer,
  squadPrompts,
  type AnswerOptions,
  type SquadEvaluation,
  type SquadPrompt,
} from "./squad.js";
export { compareWithBase, formatComparison, type Comparison } from "./compare.js";
export * from "./squad-metric.js";
