// Package jstest tests the browser's proof verifier, web/static/js/verify.js, in headless
// Chromium against vectors the Go verifier produces and checks itself.
//
// vectors_test.go builds a real Tessera log, signs checkpoints with a real note key, and derives
// valid and broken checkpoints, inclusion proofs, consistency proofs, record proofs and lineage
// answers; every vector's expected outcome is first asserted against the Go verifier (ledger/,
// verify/). verify_browser_test.go serves web/static and the vectors to the page
// web/static/test/verify.html, runs it in Chromium (/usr/bin/chromium; scripts/deps-chromium.sh
// installs it) and asserts that the browser reaches the same outcome for every vector.
// BenchmarkBrowserVerify1000 reports the in-page time to verify 1,000 record proofs.
//
// The package holds no code but its tests.
package jstest
