// esbuild's CommonJS output has no import.meta; code that asks for import.meta.url gets the
// executable's own location instead, which is what a bundled program means by it.
export const importMetaUrl = require('node:url').pathToFileURL(__filename).href;
