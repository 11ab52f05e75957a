// Call every exported function of a package's main module and of its other requirable files.
// Runs inside the sandbox. Usage: node npm_execute.js NAME PROJECT_DIR.
// package-analysis has this phase for npm only as dead code; here it runs. Classes are
// constructed with `new`, functions called with generated arguments; promises are awaited
// and iterators drained, each call bounded in time. A synchronous call runs through
// vm.runInThisContext with a timeout, whose watchdog also stops an endless loop in package code.
"use strict";
const fs = require("fs");
const path = require("path");
const vm = require("vm");

const CALL_LIMIT_MS = 3000;
const TOTAL_LIMIT_MS = 120000;
const MAX_CALLS = 2000;
const MAX_FILES = 200;
const MAX_ITEMS = 100;

const [name, project] = process.argv.slice(2);
const started = Date.now();
const stats = { calls: 0, ok: 0, raised: 0, timeout: 0, files: 0 };

function packageDir() {
  try {
    return path.dirname(require.resolve(`${name}/package.json`, { paths: [project] }));
  } catch (err) {
    return path.join(project, "node_modules", name);
  }
}

// The main module first, then every other .js/.cjs file of the package (not its dependencies).
function requirableFiles(dir) {
  const files = [];
  try {
    files.push(require.resolve(dir));
  } catch (err) { /* no main: only the files */ }
  const walk = (d, depth) => {
    if (depth > 8 || files.length >= MAX_FILES) return;
    let entries = [];
    try { entries = fs.readdirSync(d, { withFileTypes: true }); } catch (err) { return; }
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== "node_modules" && !e.name.startsWith(".")) walk(full, depth + 1);
      } else if (/\.(c?js)$/.test(e.name) && !files.includes(full) && files.length < MAX_FILES) {
        files.push(full);
      }
    }
  };
  walk(dir, 0);
  return files;
}

function generatedArgs(fn) {
  const args = [];
  for (let i = 0; i < Math.min(fn.length, 6); i++) {
    args.push(i === fn.length - 1 && fn.length > 1 ? () => {} : "osptrack"); // trailing callbacks
  }
  return args;
}

function isClass(fn) {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

function withTimeout(promise) {
  let timer;
  const limit = new Promise((resolve) => { timer = setTimeout(() => resolve("timeout"), CALL_LIMIT_MS); });
  return Promise.race([Promise.resolve(promise).then(() => "ok", () => "raised"), limit])
    .finally(() => clearTimeout(timer));
}

async function drain(value) {
  if (value && typeof value.then === "function") return withTimeout(value);
  if (value && typeof value[Symbol.asyncIterator] === "function") {
    return withTimeout((async () => {
      let n = 0;
      for await (const _ of value) { if (++n >= MAX_ITEMS) break; }
    })());
  }
  if (value && typeof value.next === "function" && typeof value[Symbol.iterator] === "function") {
    let n = 0;
    for (const _ of value) { if (++n >= MAX_ITEMS) break; }
  }
  return "ok";
}

async function callOne(label, fn, self) {
  stats.calls++;
  const args = generatedArgs(fn);
  globalThis.__osptrackCall = isClass(fn) ? () => new fn(...args) : () => fn.apply(self, args);
  let outcome;
  try {
    const value = vm.runInThisContext("__osptrackCall()", { timeout: CALL_LIMIT_MS });
    outcome = await drain(value);
  } catch (err) {
    outcome = err && err.code === "ERR_SCRIPT_EXECUTION_TIMEOUT" ? "timeout" : "raised";
    if (outcome === "raised") console.error(`osptrack-execute: ${label}: ${String(err && err.message || err).slice(0, 200)}`);
  }
  stats[outcome] = (stats[outcome] || 0) + 1;
  if (outcome === "timeout") console.error(`osptrack-execute: ${label}: timed out`);
}

function isNative(fn) {
  return /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(fn));
}

// Built-ins re-exported (a module that exports the global object, Object.keys, ...) are not
// the package's code, and calling them would only add noise.
function exportedFunctions(exported) {
  const found = [];
  if (exported === globalThis) return found;
  if (typeof exported === "function" && !isNative(exported)) found.push(["(default)", exported, undefined]);
  if (exported && (typeof exported === "object" || typeof exported === "function")) {
    for (const key of Object.keys(exported)) {
      let value;
      try { value = exported[key]; } catch (err) { continue; } // throwing getters
      if (typeof value !== "function" || isNative(value) || (key === "default" && value === exported)) continue;
      found.push([key, value, exported]);
    }
  }
  return found;
}

const realExit = process.exit.bind(process);

async function main() {
  // A package function calling process.exit() (CLI helpers do) must not end the phase early.
  process.exit = (code) => { throw new Error(`process.exit(${code}) called`); };
  // A stray rejection or throw from a timer in package code must not end the phase early.
  process.on("unhandledRejection", () => {});
  process.on("uncaughtException", (err) => console.error(`osptrack-execute: uncaught: ${err && err.message}`));
  const dir = packageDir();
  for (const file of requirableFiles(dir)) {
    if (stats.calls >= MAX_CALLS || Date.now() - started > TOTAL_LIMIT_MS) break;
    let exported;
    try {
      exported = require(file);
    } catch (err) {
      if (err && err.code === "ERR_REQUIRE_ESM") {
        try { exported = await import(require("url").pathToFileURL(file).href); } catch (err2) { continue; }
      } else {
        continue;
      }
    }
    stats.files++;
    const rel = path.relative(dir, file);
    for (const [key, fn, self] of exportedFunctions(exported)) {
      if (stats.calls >= MAX_CALLS || Date.now() - started > TOTAL_LIMIT_MS) break;
      await callOne(`${rel}:${key}`, fn, self);
    }
  }
  console.log(`osptrack-execute: ${stats.calls} calls in ${stats.files} files: ${stats.ok} returned, ` +
              `${stats.raised} raised, ${stats.timeout} timed out`);
  // Fire-and-forget work of the last calls gets a moment to happen; servers or intervals
  // started by package code would otherwise keep node alive until the phase timeout.
  setTimeout(() => realExit(0), 1500);
}

main().catch((err) => { console.error(`osptrack-execute: ${err && err.stack || err}`); realExit(1); });
