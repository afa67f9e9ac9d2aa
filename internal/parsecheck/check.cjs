// Parses PowerShell and JavaScript files with real grammars and prints one line
// per syntax error, "FILE:LINE:COL: message", exiting 1 if there is any.
//
//   node check.cjs MODULES_DIR --powershell FILE... --javascript FILE...
//
// PowerShell: the tree-sitter PowerShell grammar (tree-sitter-powershell, its
// prebuilt .wasm) run by web-tree-sitter, so no compiler or native build is needed.
// JavaScript: acorn with ecmaVersion 5 and sourceType "script": the ServiceNow
// scripts are global-scope Script Includes, business rules and script actions,
// which the platform runs on Rhino in ES5 mode (ES2021 is only for scoped apps
// that opt in), so let/const/arrow functions would be refused by the instance and
// must be refused here too.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const [modulesDir, ...args] = process.argv.slice(2);
if (!modulesDir) {
  console.error('usage: node check.cjs MODULES_DIR --powershell FILE... --javascript FILE...');
  process.exit(2);
}
// The tools live in the cache directory, not beside this file.
const load = createRequire(path.join(path.resolve(modulesDir), 'package.json'));

const files = { powershell: [], javascript: [] };
let kind = null;
for (const a of args) {
  if (a === '--powershell' || a === '--javascript') kind = a.slice(2);
  else if (kind) files[kind].push(a);
  else { console.error(`check.cjs: ${a}: say --powershell or --javascript first`); process.exit(2); }
}

const problems = [];
const report = (file, line, col, msg) => problems.push(`${file}:${line}:${col}: ${msg}`);

function checkJavaScript(file) {
  const acorn = load('acorn');
  const src = fs.readFileSync(file, 'utf8');
  try {
    acorn.parse(src, { ecmaVersion: 5, sourceType: 'script', locations: true, allowReturnOutsideFunction: false });
  } catch (e) {
    if (!e.loc) throw e;
    // acorn appends " (line:col)" to its message; the position is printed first already.
    report(file, e.loc.line, e.loc.column + 1, e.message.replace(/ \(\d+:\d+\)$/, ''));
  }
}

// snippet shows the start of the text a node covers, on one line.
const snippet = (text) => JSON.stringify(text.split(/\r?\n/)[0].slice(0, 40));

async function checkPowerShell(list) {
  if (list.length === 0) return;
  const { Parser, Language } = load('web-tree-sitter');
  await Parser.init();
  const lang = await Language.load(load.resolve('tree-sitter-powershell/tree-sitter-powershell.wasm'));
  const parser = new Parser();
  parser.setLanguage(lang);
  for (const file of list) {
    const src = fs.readFileSync(file, 'utf8');
    const tree = parser.parse(src);
    if (!tree.rootNode.hasError) continue;
    // Report the innermost ERROR and MISSING nodes: each marks where the
    // grammar gave up or had to invent a token.
    const visit = (node) => {
      if (!node.hasError && !node.isMissing) return;
      if (node.isMissing) {
        report(file, node.startPosition.row + 1, node.startPosition.column + 1, `missing ${node.type}`);
        return;
      }
      const before = problems.length;
      for (const child of node.children) visit(child);
      if (node.isError && problems.length === before) {
        report(file, node.startPosition.row + 1, node.startPosition.column + 1, `syntax error at ${snippet(node.text)}`);
      }
    };
    visit(tree.rootNode);
    tree.delete();
  }
}

(async () => {
  for (const f of files.javascript) checkJavaScript(f);
  await checkPowerShell(files.powershell);
  for (const p of problems) console.log(p);
  const n = files.powershell.length + files.javascript.length;
  if (problems.length > 0) {
    console.error(`check.cjs: ${problems.length} syntax error(s) in ${n} files`);
    process.exit(1);
  }
  console.error(`check.cjs: ${files.powershell.length} PowerShell and ${files.javascript.length} JavaScript files parse`);
})().catch((e) => { console.error('check.cjs:', e); process.exit(2); });
