// `node --import ./test/helpers/record-modules.mjs ENTRY`: appends the URL of every ES module the process loads,
// one a line, to the file named by RECORD_MODULES_TO. Plain JavaScript, so that it runs with the built entry
// points exactly as users start them (no tsx). Used by test/e2e/module-loading.test.ts.
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';

const file = process.env.RECORD_MODULES_TO;
if (!file) throw new Error('record-modules.mjs: set RECORD_MODULES_TO to the file that receives the module URLs');
register('./module-recorder-hooks.mjs', import.meta.url, { data: { file } });
// Node's own modules are loaded outside the hooks: the internal ones the process loaded, as `builtin:<id>` (e.g.
// `builtin:internal/deps/undici/undici`, Node's bundled undici), written when SIGTERM arrives (what the running
// service loaded, before its shutdown loads more), or else at exit.
let recorded = false;
const recordBuiltins = () => {
  if (recorded) return;
  recorded = true;
  const builtins = process.moduleLoadList.filter((entry) => entry.startsWith('NativeModule ')).map((entry) => `builtin:${entry.slice(13)}`);
  appendFileSync(file, `${builtins.join('\n')}\n`);
};
process.prependListener('SIGTERM', recordBuiltins);
process.on('exit', recordBuiltins);
