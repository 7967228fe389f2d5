'use strict';
// Builds dist/ once so that tests running the real `tidemark` binary never run stale code.
module.exports = async function globalSetup() {
  require('../../scripts/build.js');
};
