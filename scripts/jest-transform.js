'use strict';
// jest transform: TypeScript → CommonJS with esbuild (types are checked by `npm run typecheck`).
const crypto = require('node:crypto');
const esbuild = require('esbuild');

module.exports = {
  getCacheKey(src, filename) {
    return crypto.createHash('sha256').update(filename).update('\0').update(src).update(esbuild.version).digest('hex');
  },
  process(src, filename) {
    const out = esbuild.transformSync(src, {
      loader: 'ts', format: 'cjs', target: 'node20', sourcemap: 'inline', sourcefile: filename,
    });
    return { code: out.code };
  },
};
