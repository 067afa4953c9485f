'use strict';
// Node 20's `node --test clients/js/` only picks files named *.test.js, test-*.js, ...;
// the suite itself lives in test_wsring_ring.js.
require('./test_wsring_ring.js');
