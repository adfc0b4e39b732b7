// Adds up the pytest (JUnit XML) and vitest (JSON, one per project run) reports
// of `npm test` into one closing line: "tests: N passed, N failed, N skipped".
// A report that is missing (`npm test -- PATTERN` matched no file of that
// runner, or a runner that died) counts nothing.
import { existsSync, readFileSync } from "node:fs";

const [junitFile, ...vitestFiles] = process.argv.slice(2);
const none = { passed: 0, failed: 0, skipped: 0 };

function pytestCounts(file) {
  if (!existsSync(file)) return none;
  const xml = readFileSync(file, "utf8");
  const suite = /<testsuite\b([^>]*)>/.exec(xml)?.[1] ?? "";
  const attr = (name) => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(suite)?.[1] ?? 0);
  const failed = attr("failures") + attr("errors");
  const skipped = attr("skipped");
  return { passed: attr("tests") - failed - skipped, failed, skipped };
}

function vitestCounts(file) {
  if (!existsSync(file)) return none;
  const report = JSON.parse(readFileSync(file, "utf8"));
  return { passed: report.numPassedTests, failed: report.numFailedTests, skipped: report.numPendingTests + report.numTodoTests };
}

const parts = [pytestCounts(junitFile), ...vitestFiles.map(vitestCounts)];
const total = (key) => parts.reduce((sum, p) => sum + p[key], 0);
console.log(`tests: ${total("passed")} passed, ${total("failed")} failed, ${total("skipped")} skipped`);
