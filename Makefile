# GOTOOLCHAIN=auto lets go.mod's "go 1.26.10" fetch that toolchain from the module proxy.
export GOTOOLCHAIN ?= auto
ifeq ($(GOTOOLCHAIN),local)
export GOTOOLCHAIN := auto
endif

.PHONY: test deps check build demo generate bench fuzz vendor-oidc-client-ts dashboard-screenshot

## test: install what the tests need (apt when root, tools, Dex), then run every test.
test: deps check

deps:
	scripts/install-deps.sh

check:
	scripts/test.sh

build:
	go build -o bin/pbench-auth ./cmd/pbench-auth

## demo: the whole seed sequence on one machine (serve --dev, login, call), no browser needed.
demo:
	go run ./cmd/pbench-auth demo

## generate: regenerate completions/ and docs/ reference pages from the command tree.
generate:
	scripts/generate.sh

## fuzz: exploratory fuzzing, not part of `test`: every fuzz target for FUZZTIME (default 5m) each,
## FUZZPARALLEL workers (default 2). A finding is left under testdata/fuzz/<target>/: commit it with the fix.
fuzz:
	scripts/fuzz.sh

## bench: the performance benchmark (issues 7 and 19): installs wrk, hyperfine, gunicorn, Flask, PyJWT when
## root, builds oauth2-proxy (and kubelogin, given its source: BENCH_KUBELOGIN_SRC), then prints figures,
## ratios and PASS/FAIL per target from one run and redraws docs/performance-gateway.svg (see docs/performance.md).
bench:
	BENCH_PLOT=$${BENCH_PLOT:-docs/performance-gateway.svg} bench/run.sh

## vendor-oidc-client-ts: vendor oidc-client-ts's browser build for the dashboard again from npm, checked
## against the registry's integrity; V=3.x.y moves to another exact version. CI checks the file matches the pin.
vendor-oidc-client-ts:
	scripts/vendor-oidc-client-ts.sh $(V)

## dashboard-screenshot: regenerate docs/dashboard.png (the logged-in dashboard on serve --dev, in Chromium).
dashboard-screenshot:
	scripts/dashboard-screenshot.sh
