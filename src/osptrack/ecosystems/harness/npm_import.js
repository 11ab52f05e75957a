// Load a package's main entry the way a user's code would (runs inside the sandbox).
// Usage: node npm_import.js NAME PROJECT_DIR. CommonJS first, then ESM via import().
"use strict";
const path = require("path");
const { pathToFileURL } = require("url");

const [name, project] = process.argv.slice(2);
let resolved;
try {
  resolved = require.resolve(name, { paths: [project] });
} catch (err) {
  // ESM-only packages with an "exports" map but no "require" condition cannot be resolved here.
  resolved = path.join(project, "node_modules", name);
}

async function main() {
  try {
    require(resolved);
    console.log(`osptrack-import: required ${name}`);
    return 0;
  } catch (err) {
    if (err && (err.code === "ERR_REQUIRE_ESM" || err.code === "ERR_REQUIRE_ASYNC_MODULE" ||
                err.code === "MODULE_NOT_FOUND" || err.code === "ERR_PACKAGE_PATH_NOT_EXPORTED")) {
      try {
        const target = err.code === "ERR_REQUIRE_ESM" ? pathToFileURL(resolved).href : name;
        await import(target);
        console.log(`osptrack-import: imported ${name} as ESM`);
        return 0;
      } catch (err2) {
        console.error(`osptrack-import: ${name}: ${err2 && err2.stack || err2}`);
        return 1;
      }
    }
    console.error(`osptrack-import: ${name}: ${err && err.stack || err}`);
    return 1;
  }
}

main().then((code) => { process.exitCode = code; });
