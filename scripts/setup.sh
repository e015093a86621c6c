#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (Rust by rustup, Node 20 + npm).
# Installs only what is missing or at the wrong version; prints one line per step
# with how long it took. Safe to run again: a second run should take seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# rustup puts cargo in ~/.cargo/bin; a non-login CI shell may not have it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
export PATH="$HOME/.cargo/bin:$PATH"

now() { date +%s.%N; }
step() { # step <name> <detail> <start-time>
  printf 'setup: %-28s %-44s %6.1fs\n' "$1" "$2" "$(awk -v a="$(now)" -v b="$3" 'BEGIN { print a - b }')"
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

for tool in rustup cargo node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup: '$tool' is missing; install Rust with rustup and Node 18+ first" >&2; exit 1; }
done

# 1. The pinned toolchain (rust-toolchain.toml: a dated nightly with rust-src,
# rustfmt, clippy and the wasm target). rustup reads the file; asking for it
# here makes a fresh machine's download one visible step.
t=$(now)
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if rustup toolchain list 2>/dev/null | grep -q "^$toolchain" \
   && rustup component list --installed --toolchain "$toolchain" 2>/dev/null | grep -q '^rust-src' \
   && rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "rust toolchain" "$toolchain already installed" "$t"
else
  rustup toolchain install "$toolchain" --profile minimal \
    --component rust-src,rustfmt,clippy --target wasm32-unknown-unknown >/dev/null
  step "rust toolchain" "$toolchain installed" "$t"
fi

# 2. wasm-bindgen CLI: must equal the wasm-bindgen crate in Cargo.lock exactly.
t=$(now)
wb_version=""
if [ -f Cargo.lock ]; then
  wb_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
fi
if [ -z "$wb_version" ]; then
  # No lockfile yet: take the exact pin from Cargo.toml (`wasm-bindgen = "=X.Y.Z"`).
  wb_version=$(sed -n 's/^wasm-bindgen *= *"=\{0,1\}\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
fi
if [ -z "$wb_version" ]; then
  echo "setup: cannot find the wasm-bindgen version in Cargo.lock or Cargo.toml" >&2; exit 1
fi
if command -v wasm-bindgen >/dev/null 2>&1 && [ "$(wasm-bindgen --version | awk '{print $2}')" = "$wb_version" ]; then
  step "wasm-bindgen-cli" "$wb_version already installed" "$t"
else
  # No --locked: one of its locked dependencies is missing from the registry here.
  cargo install wasm-bindgen-cli --version "=$wb_version" --force
  step "wasm-bindgen-cli" "$wb_version installed" "$t"
fi

# 3. Chromium for the browser tests (playwright-core drives the system one).
t=$(now)
if [ -x /usr/bin/chromium ]; then
  step "chromium" "$(/usr/bin/chromium --version 2>/dev/null | head -n1 || echo present)" "$t"
else
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
  step "chromium" "installed from Debian" "$t"
fi
# Debian's binaryen (wasm-opt 108) emits wasm that fails to load. We never
# install it, and the Makefile puts node_modules/.bin (binaryen 132) first.
if [ -x /usr/bin/wasm-opt ]; then
  echo "setup: warning: /usr/bin/wasm-opt ($(/usr/bin/wasm-opt --version 2>/dev/null)) is present; node_modules/.bin must come first on PATH" >&2
fi

# 4. Node dev dependencies, exactly as locked.
t=$(now)
stamp=node_modules/.sora-edge-setup.stamp
if [ -f package-lock.json ]; then
  want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/wasm-opt ]; then
    step "npm" "node_modules matches package-lock.json" "$t"
  else
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
    step "npm ci" "$(node -e 'console.log(Object.keys(require("./package.json").devDependencies).length)') dev dependencies" "$t"
  fi
else
  npm install --no-audit --no-fund --loglevel=error
  step "npm install" "no lockfile: resolved and wrote one" "$t"
fi
t=$(now)
step "wasm-opt" "$(node_modules/.bin/wasm-opt --version)" "$t"
