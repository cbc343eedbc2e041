#!/usr/bin/env bash
# npm run test:asan — builds the addon with AddressSanitizer + UndefinedBehaviorSanitizer
# through cmake-js (build-asan/), then runs the native-heavy tests against that build
# with the sanitizer runtimes preloaded. Any sanitizer report aborts the process that
# made it, which fails the test (children are checked for exit 0 and no signal).
set -euo pipefail
cd "$(dirname "$0")/.."

npx cmake-js compile --out build-asan --CDSHMQ_SANITIZE=ON >/dev/null
npx tsc -p tsconfig.json

libasan="$(gcc -print-file-name=libasan.so)"
libubsan="$(gcc -print-file-name=libubsan.so)"
for lib in "$libasan" "$libubsan"; do
  [ -f "$lib" ] || { echo "test:asan: sanitizer runtime $lib not found (install gcc's libasan/libubsan)" >&2; exit 1; }
done

export SHMQ_NATIVE="$PWD/build-asan/Release/shmq.node"
export LD_PRELOAD="$libasan:$libubsan"
# Node itself is not built with ASan and keeps memory until exit: leak checking would only report Node
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

# prove the sanitized addon and the runtimes are what actually gets loaded
node -e "require('./dist/index.js'); const maps = require('fs').readFileSync('/proc/self/maps', 'utf8');
  if (!maps.includes('libasan') || !maps.includes('build-asan/Release/shmq.node')) { console.error('test:asan: sanitized addon not loaded'); process.exit(1) }"

# the tests that drive native code hardest: segment create/open/close cycles,
# futex and FIFO wake-ups, and every error path
npx vitest run ${SHMQ_ASAN_TESTS:-test/native.test.mjs test/errors.test.mjs test/leaks.test.mjs test/liveness.test.mjs test/views.test.mjs}
