// `node --import ./test/helpers/record-modules.mjs ENTRY`: appends the URL of every ES module the process loads,
// one a line, to the file named by RECORD_MODULES_TO. Plain JavaScript, so that it runs with the built entry
// points exactly as users start them (no tsx). Used by test/e2e/module-loading.test.ts.
import { register } from 'node:module';

const file = process.env.RECORD_MODULES_TO;
if (!file) throw new Error('record-modules.mjs: set RECORD_MODULES_TO to the file that receives the module URLs');
register('./module-recorder-hooks.mjs', import.meta.url, { data: { file } });
